"""Loading generator weights from files made elsewhere, the official pretrained models above all.

The official CycleGAN files (``latest_net_G.pth``, e.g. horse2zebra) are bare state_dicts of a
``resnet_9blocks`` generator. Those saved with PyTorch < 0.4 (2018-19) also carry
``running_mean``, ``running_var`` and ``num_batches_tracked`` for every InstanceNorm layer, which
today's InstanceNorm (no running statistics) does not have; files saved from a DataParallel model
prefix every key with ``module.``. :func:`load_generator` handles both and infers the architecture.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import torch
from torch import nn

from .networks import ResnetGenerator, UnetGenerator, set_test_time_mode

LEGACY_NORM_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")
# How every file torch.save writes begins: a zip archive (PyTorch >= 1.6) or, before, a pickle
# (protocol 2 and up), the format of the official 2017-19 pretrained files.
TORCH_FILE_STARTS = (b"PK\x03\x04", b"\x80")
EXPECTED = "expected a generator's weights, such as an official latest_net_G.pth"


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state_dict from ``path`` loaded with ``weights_only=True``, ``module.`` prefixes stripped.
    A cyclegan_edu training checkpoint is refused with a pointer to ``load_model``; an empty file or
    one that torch.save did not write (text, an HTML error page) with a line naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    with path.open("rb") as file:
        start = file.read(4)
    if not start.startswith(TORCH_FILE_STARTS):  # torch.load would say "EOFError" or "pop from empty list"
        what = "is empty" if not start else "is not a file that torch.save wrote"
        raise ValueError(f"{path} {what}, so not a PyTorch state_dict; {EXPECTED}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated files, pickles with code
        raise ValueError(f"cannot read weights file {path}: {load_error(err)}") from None
    if isinstance(state, dict) and state.get("format", "").startswith("cyclegan_edu.checkpoint"):
        raise ValueError(f"{path} is a cyclegan_edu training checkpoint; load it with --run "
                         "(cyclegan_edu.train.load_model)")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} does not hold a state_dict (a mapping of names to tensors); {EXPECTED}")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_error(err: Exception) -> str:
    """One line saying why ``torch.load(..., weights_only=True)`` failed (torch's own text runs to many)."""
    text = str(err).strip()
    if text.startswith("Weights only load failed"):
        return ("it holds Python objects besides tensors, or is not a PyTorch file at all "
                "(only tensors are loaded, weights_only=True, so no code in a file can run)")
    return text.splitlines()[0] if text else type(err).__name__


def load_generator(path: str | os.PathLike, dropout: bool = False, upsample: str = "deconv",
                   device: str | torch.device = "cpu", eval_mode: bool | None = None) -> nn.Module:
    """A generator with the weights of ``path``, loaded with ``strict=True``, ready to translate.

    The architecture is read from the keys: a ResNet generator (``model.1.weight`` …; the number of
    residual blocks, ngf and channel counts inferred) or pix2pix's U-Net (``model.model.…``, its depth
    inferred). Legacy InstanceNorm statistics are dropped. Any other mismatch raises ValueError
    naming the missing and unexpected keys.

    ``eval_mode`` chooses how it runs (:func:`~cyclegan_edu.networks.set_test_time_mode`). By default
    a U-Net runs as the official test.py runs pix2pix's generators (``eval_mode=False``): dropout on,
    batch norm with the statistics of the batch it is given (test.py gives one image at a time;
    :func:`~cyclegan_edu.networks.run_at_test_time` does too), its running statistics kept but not
    used or updated; ``eval_mode=True`` is the official ``--eval``, deterministic. A ResNet (CycleGAN)
    generator is returned in eval mode by default: without dropout both modes compute the same
    function for it (instance norm keeps no running statistics).
    """
    state = read_state_dict(path)
    if "model.model.0.weight" in state:
        net = _unet_for(state, path)
    elif "model.1.weight" in state:
        first, last = state["model.1.weight"], _head_weight(state, path)
        blocks = {int(m.group(1)) for k in state if (m := re.match(r"model\.(\d+)\.conv_block\.", k))}
        net = ResnetGenerator(first.shape[1], last.shape[0], first.shape[0], len(blocks), "instance",
                              dropout, upsample)
    else:
        raise ValueError(f"{path}: not a CycleGAN/pix2pix generator (no model.1.weight or model.model.0.weight key); "
                         f"first keys: {list(state)[:5]}")
    expected = net.state_dict().keys()
    state = {k: v for k, v in state.items() if k in expected or not k.endswith(LEGACY_NORM_SUFFIXES)}
    _check_keys(path, state, net)
    net.load_state_dict(state, strict=True)
    if eval_mode is None:
        eval_mode = not isinstance(net, UnetGenerator)
    return set_test_time_mode(net.to(device), eval_mode)


def _head_weight(state: dict, path) -> torch.Tensor:
    convs = sorted((int(m.group(1)), k) for k in state if (m := re.fullmatch(r"model\.(\d+)\.weight", k)))
    if not convs:
        raise ValueError(f"{path}: no output layer found")
    return state[convs[-1][1]]


def _unet_for(state: dict, path) -> UnetGenerator:
    first = state["model.model.0.weight"]
    out_nc = state["model.model.3.weight"].shape[1] if "model.model.3.weight" in state else 3
    norm = "batch" if "model.model.1.model.2.weight" in state else "instance"
    for num_downs in range(5, 10):
        net = UnetGenerator(first.shape[1], out_nc, num_downs, first.shape[0], norm)
        expected = net.state_dict().keys()
        if {k for k in state if k in expected or not k.endswith(LEGACY_NORM_SUFFIXES)} == expected:
            return net
    raise ValueError(f"{path}: looks like a U-Net generator, but no depth from 5 to 9 levels matches its keys")


def _check_keys(path, state: dict, net: nn.Module) -> None:
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
             if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        hint = (" (conv_block.6 keys mean it was trained with dropout: pass dropout=True)"
                if any(".conv_block.6." in k for k in unexpected) else "")
        raise ValueError(f"{path} does not fit a {type(net).__name__}{hint}: "
                         f"missing keys {missing[:6]}{'…' if len(missing) > 6 else ''}, "
                         f"unexpected keys {unexpected[:6]}{'…' if len(unexpected) > 6 else ''}, "
                         f"wrong shapes {wrong[:4]}")
