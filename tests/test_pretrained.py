"""Loading generator files made elsewhere: legacy official checkpoints above all."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from cyclegan_edu.networks import ResnetGenerator, UnetGenerator
from cyclegan_edu.pretrained import load_generator, read_state_dict


def legacy_state_dict(net: ResnetGenerator) -> dict[str, torch.Tensor]:
    """``net``'s weights as a 2018-19 official file saved from DataParallel: every key prefixed with
    ``module.`` and every InstanceNorm layer carrying running statistics."""
    state = {}
    for name, module in net.named_modules():
        for key, value in module.named_parameters(recurse=False):
            state[f"module.{name}.{key}"] = value.detach().clone()
        if isinstance(module, nn.InstanceNorm2d):
            c = module.num_features
            state[f"module.{name}.running_mean"] = torch.zeros(c)
            state[f"module.{name}.running_var"] = torch.ones(c)
            state[f"module.{name}.num_batches_tracked"] = torch.tensor(0)
    return state


def random_generator(**kwargs) -> ResnetGenerator:
    torch.manual_seed(0)
    net = ResnetGenerator(**kwargs)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.05)
    return net.eval()


def test_legacy_checkpoint_loads_and_infers_the_architecture(tmp_path):
    source = random_generator(ngf=8, n_blocks=3)
    state = legacy_state_dict(source)
    legacy_keys = [k for k in state if k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert len(legacy_keys) == 3 * (1 + 2 + 2 * 3 + 2)      # 11 InstanceNorm layers for 3 blocks
    torch.save(state, tmp_path / "latest_net_G.pth")
    net = load_generator(tmp_path / "latest_net_G.pth")
    assert isinstance(net, ResnetGenerator) and not net.training
    assert net.model[1].out_channels == 8                    # ngf inferred
    assert sum(1 for k in net.state_dict() if k.endswith("conv_block.1.weight")) == 3   # n_blocks inferred
    x = torch.rand(1, 3, 20, 20) * 2 - 1
    with torch.no_grad():
        assert torch.equal(net(x), source(x))


def test_nine_block_legacy_file_carries_69_legacy_keys():
    with torch.device("meta"):
        state = legacy_state_dict(ResnetGenerator())
    assert len(state) == 48 + 69


def test_plain_state_dict_with_other_channel_counts(tmp_path):
    source = random_generator(input_nc=1, output_nc=3, ngf=4, n_blocks=1)
    torch.save(source.state_dict(), tmp_path / "g.pth")
    net = load_generator(tmp_path / "g.pth")
    assert net.model[1].in_channels == 1 and net.model[-2].out_channels == 3


def test_dropout_checkpoint_error_names_the_key(tmp_path):
    source = random_generator(ngf=4, n_blocks=2, dropout=True)
    torch.save(source.state_dict(), tmp_path / "dropout.pth")
    with pytest.raises(ValueError, match=r"dropout\.pth.*conv_block\.6.*dropout=True") as err:
        load_generator(tmp_path / "dropout.pth")
    assert "model.10.conv_block.6.weight" in str(err.value) and "model.10.conv_block.5.weight" in str(err.value)
    net = load_generator(tmp_path / "dropout.pth", dropout=True)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(net(x), source(x))


def test_wrong_shape_is_named(tmp_path):
    state = random_generator(ngf=4, n_blocks=1).state_dict()
    state["model.4.weight"] = torch.zeros(8, 4, 5, 5)
    torch.save(state, tmp_path / "odd.pth")
    with pytest.raises(ValueError, match=r"model\.4\.weight \(8, 4, 5, 5\)"):
        load_generator(tmp_path / "odd.pth")


def test_unet_file_loads(tmp_path):
    torch.manual_seed(0)
    source = UnetGenerator(3, 3, 6, 4, "batch").eval()
    torch.save({"module." + k: v for k, v in source.state_dict().items()}, tmp_path / "unet.pth")
    net = load_generator(tmp_path / "unet.pth", eval_mode=True)   # the default is pix2pix's test mode
    assert isinstance(net, UnetGenerator) and net.num_downs == 6
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(net(x), source(x))


def test_files_that_are_not_generators(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_generator(tmp_path / "missing.pth")
    torch.save({"format": "cyclegan_edu.checkpoint/1"}, tmp_path / "checkpoint.pt")
    with pytest.raises(ValueError, match="--run"):
        read_state_dict(tmp_path / "checkpoint.pt")
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "classifier.pth")
    with pytest.raises(ValueError, match=r"classifier\.pth: not a CycleGAN/pix2pix generator"):
        load_generator(tmp_path / "classifier.pth")


def test_pickled_code_is_refused(tmp_path):
    torch.save({"model.1.weight": torch.zeros(1), "extra": ResnetGenerator}, tmp_path / "code.pth")
    with pytest.raises(ValueError, match=r"cannot read weights file .*no code in a file can run") as err:
        load_generator(tmp_path / "code.pth")
    assert "\n" not in str(err.value)


EXPECTED = "expected a generator's weights, such as an official latest_net_G.pth"


@pytest.mark.parametrize("content, what", [(b"", "is empty"), (b"hello\n", "is not a file that torch.save wrote"),
                                           (b"abc", "is not a file that torch.save wrote")],
                         ids=["empty", "text", "three-bytes"])
def test_empty_and_text_files_are_named_as_not_a_state_dict(tmp_path, content, what):
    (tmp_path / "latest_net_G.pth").write_bytes(content)  # torch.load: "EOFError", "101", "pop from empty list"
    with pytest.raises(ValueError) as err:
        load_generator(tmp_path / "latest_net_G.pth")
    assert str(err.value) == f"{tmp_path / 'latest_net_G.pth'} {what}, so not a PyTorch state_dict; {EXPECTED}"


@pytest.mark.parametrize("content, what", [(b"", "is empty"), (b"<html>404</html>", "is not a file that torch.save wrote")],
                         ids=["empty", "text"])
def test_cli_translate_weights_empty_or_text_file_is_one_line_exit_2(tmp_path, capsys, content, what):
    from PIL import Image
    from cyclegan_edu import cli
    weights = tmp_path / "g.pth"
    weights.write_bytes(content)
    Image.new("RGB", (8, 8)).save(tmp_path / "x.png")
    code = cli.main(["translate", "--weights", str(weights), "--input", str(tmp_path / "x.png"),
                     "--output", str(tmp_path / "out")])
    assert code == 2
    assert capsys.readouterr().err == f"cyclegan-edu: error: {weights} {what}, so not a PyTorch state_dict; {EXPECTED}\n"
    assert not (tmp_path / "out").exists()
