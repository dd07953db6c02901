"""Training on several processes (cyclegan_edu.distributed): how the sampler shares an epoch,
DistributedDataParallel on one process changes nothing, the frozen-D generator step all-reduces each
network once a step, resuming on another number of processes, and two Gloo processes on 127.0.0.1
started by torchrun: identical weights on both, one run directory, and the maths of one process with a
batch twice as large."""
from __future__ import annotations

import collections
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch import nn

import cyclegan_edu
from cyclegan_edu.config import get_preset
from cyclegan_edu.data import EpochSampler, UnpairedImageFolder, load_folder
from cyclegan_edu.train import Trainer, read_checkpoint

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="this torch has no torch.distributed")

LOSSES = ("G_AB_gan", "G_BA_gan", "cycle_A", "cycle_B", "idt_A", "idt_B", "G_total", "D_A", "D_B")


def tiny(**changes):
    """The ci preset with seconds-fast nets, in fp32 (bf16 would round the two runs apart)."""
    return get_preset("ci", ngf=4, ndf=4, n_blocks=1, device="cpu", precision="fp32", **changes)


def without_time(history):
    return [{k: v for k, v in record.items() if k != "seconds"} for record in history]


class one_process_group:
    """A Gloo process group of one process, in this process (no network)."""

    def __enter__(self):
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)

    def __exit__(self, *exc):
        dist.destroy_process_group()


# --- the sampler ---------------------------------------------------------------------------------

@pytest.mark.parametrize("n, world, batch", [(16, 2, 1), (10, 3, 2), (2, 4, 1)])
def test_the_processes_share_each_batch_of_one_process_with_their_whole_batch(n, world, batch):
    one = list(EpochSampler(n, seed=3))
    shares = [list(EpochSampler(n, seed=3, rank=r, world_size=world)) for r in range(world)]
    per_rank = -(-n // world)
    assert [len(share) for share in shares] == [per_rank] * world
    padded = (one * world)[:per_rank * world]            # an uneven epoch is padded with its first images
    for k in range(-(-per_rank // batch)):
        together = [i for share in shares for i in share[k * batch:(k + 1) * batch]]
        assert sorted(together) == sorted(padded[k * world * batch:(k + 1) * world * batch])
    resumed = EpochSampler(n, seed=3, rank=world - 1, world_size=world)
    resumed.set_epoch(0, start=1)                        # a resumed run starts within the process's share
    assert list(resumed) == shares[-1][1:] and len(resumed) == per_rank - 1
    with pytest.raises(ValueError, match="rank=2: must lie between 0 and world_size - 1 = 1"):
        EpochSampler(n, rank=2, world_size=2)


# --- DDP in this process -------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["cyclegan", "pix2pix"])
def test_ddp_on_one_process_trains_bit_identically(tiny_folder, model):
    """The wrappers average gradients over one process: exactly the plain run's step, for CycleGAN's
    order (G with D frozen, then D) and pix2pix's (D, then G with D frozen; batch norm's buffers)."""
    config = tiny(batch_size=2, iters=3, iters_decay=1, pool_size=2)
    if model == "pix2pix":
        config = get_preset("ci", model="pix2pix", ngf=4, ndf=4, device="cpu", precision="fp32", batch_size=2,
                            iters=3, iters_decay=1)
    data = UnpairedImageFolder(tiny_folder, image_size=32, load_size=36)   # any {"A", "B"} items will do
    plain = Trainer(config, data, model=model, progress=False)
    plain.fit()
    with one_process_group():
        wrapped = Trainer(config, data, model=model, progress=False)
        assert set(wrapped.model.ddp) == ({"G_AB", "G_BA", "D_A", "D_B"} if model == "cyclegan" else {"G", "D"})
        wrapped.fit()
    assert without_time(wrapped.history) == without_time(plain.history)
    ours, theirs = wrapped.model.state_dict(), plain.model.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_the_generator_step_all_reduces_no_discriminator(tiny_folder):
    """Each network's gradients are averaged once a step: G's and F's in the generator step, with the
    discriminators frozen, and the discriminators' in their own step. Were D not frozen in the G step,
    its gradients would be all-reduced twice a step, the first time for nothing."""
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
    with one_process_group():
        trainer = Trainer(tiny(batch_size=2, iters=3, iters_decay=1), tiny_folder, progress=False)
        reduced = collections.Counter()
        for name, wrapper in trainer.model.ddp.items():
            def hook(state, bucket, name=name):
                if bucket.is_last():                   # one count per backward pass through the network
                    reduced[name, "D trainable" if trainer.model.D_A.model[0].weight.requires_grad else "D frozen"] += 1
                return allreduce_hook(None, bucket)
            wrapper.register_comm_hook(None, hook)
        trainer.fit()
    assert reduced == {("G_AB", "D frozen"): 3, ("G_BA", "D frozen"): 3, ("D_A", "D trainable"): 3,
                       ("D_B", "D trainable"): 3}


def test_resuming_on_another_number_of_processes_keeps_the_epoch_and_its_fraction(tiny_folder, tmp_path):
    """16 images, batch 2: an epoch is 8 steps on one process and 4 on two. Step 6 of a two-process
    run (halfway through epoch 1) is step 12 of one process; config.json then records one process."""
    config = tiny(batch_size=2, iters=None, n_epochs=1, n_epochs_decay=1)
    run = tmp_path / "run"
    Trainer(config, tiny_folder, out=run, progress=False).fit(6)
    state = read_checkpoint(run)
    assert state["world_size"] == 1
    state["world_size"] = 2                             # as if two processes had written the run
    torch.save(state, run / "checkpoint.pt")
    config_json = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config_json, "world_size": 2, "effective_batch_size": 4}))
    resumed = Trainer(config, tiny_folder, out=run, resume=True, progress=False)
    assert (resumed.step, resumed.epoch, resumed.total_steps) == (12, 1, 16)
    resumed.fit(1)
    config_json = json.loads((run / "config.json").read_text())
    assert (config_json["world_size"], config_json["effective_batch_size"]) == (1, 2)


# --- two processes -------------------------------------------------------------------------------

# Runs the `train` command of each argument in one process group, then saves each rank's networks and
# history next to the runs, which only rank 0 writes into.
WORKER = textwrap.dedent("""
    import sys
    import torch
    from pathlib import Path
    from cyclegan_edu import cli, distributed, train

    fit = train.Trainer.fit
    def fit_and_keep(self, *args, **kwargs):
        try:
            return fit(self, *args, **kwargs)
        finally:
            torch.save({"nets": self.model.state_dict(), "history": self.history},
                       Path(sys.argv[1]) / f"{self.out.name}-rank{self.rank}.pt")
    train.Trainer.fit = fit_and_keep

    with distributed.process_group("cpu"):
        codes = [cli.main(argv.split()) for argv in sys.argv[2:]]
    sys.exit(max(codes))
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def biases_before_instance_norm(net: nn.Module, prefix: str) -> set[str]:
    """The biases of the convolutions that instance norm follows: it subtracts them again, so the loss
    does not depend on them and their exact gradient is 0."""
    names = set()
    for name, module in net.named_modules():
        if isinstance(module, nn.Sequential):
            layers = list(module.named_children())
            for (conv_name, conv), (_, after) in zip(layers, layers[1:]):
                if isinstance(after, nn.InstanceNorm2d) and getattr(conv, "bias", None) is not None:
                    names.add(".".join(filter(None, (prefix, name, conv_name, "bias"))))
    return names


@pytest.fixture(scope="module")
def two_processes(tiny_folder, tmp_path_factory):
    """Two Gloo processes, started by torchrun, train (1) a fresh run, batch 1 each, and (2) continue a
    run that one process started, batch 2 each."""
    root = tmp_path_factory.mktemp("ddp")
    (root / "kept").mkdir()
    (root / "worker.py").write_text(WORKER)
    Trainer(tiny(batch_size=2, iters=4, iters_decay=2), tiny_folder, out=root / "resumed", progress=False).fit(2)
    fresh = (f"train --data {tiny_folder} --out {root / 'fresh'} --preset ci --ngf 4 --ndf 4 --n-blocks 1 "
             "--batch-size 1 --iters 3 --device cpu --precision fp32 --no-progress")
    resumed = f"train --data {tiny_folder} --out {root / 'resumed'} --resume --no-progress"
    package_root = str(Path(cyclegan_edu.__file__).resolve().parents[1])
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
                           "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
                           str(root / "worker.py"), str(root / "kept"), fresh, resumed],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    kept = {path.stem: torch.load(path) for path in (root / "kept").iterdir()}
    return root, done.stdout, kept


def test_both_processes_end_with_the_same_weights(two_processes):
    _, _, kept = two_processes
    assert sorted(kept) == ["fresh-rank0", "fresh-rank1", "resumed-rank0", "resumed-rank1"]
    for run in ("fresh", "resumed"):
        rank0, rank1 = kept[f"{run}-rank0"]["nets"], kept[f"{run}-rank1"]["nets"]
        assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)


def test_rank_0_alone_writes_the_run_and_prints(two_processes):
    root, stdout, _ = two_processes
    assert sorted(p.name for p in (root / "fresh").iterdir()) == ["checkpoint.pt", "config.json", "history.csv"]
    assert (root / "fresh" / "history.csv").read_text().count("\n") == 1 + 3      # header and 3 steps, once
    config = json.loads((root / "fresh" / "config.json").read_text())
    assert (config["world_size"], config["effective_batch_size"], config["batch_size"]) == (2, 2, 1)
    assert stdout.count("training cyclegan") == 2 and stdout.count("done: ") == 2   # two runs, one process speaking
    assert ("distributed: 2 processes (gloo) × batch 1 = effective batch 2; learning rate 0.0002, not scaled"
            in stdout)


def test_two_processes_continue_a_single_process_run(two_processes):
    root, stdout, kept = two_processes
    state = read_checkpoint(root / "resumed")
    assert state["step"] == 4 and state["world_size"] == 2
    assert [r["step"] for r in state["history"]] == [1, 2, 3, 4]
    config = json.loads((root / "resumed" / "config.json").read_text())
    assert (config["world_size"], config["effective_batch_size"]) == (2, 4)
    assert "steps 2 → 4" in stdout and "effective batch 4" in stdout
    assert torch.equal(state["nets"]["G_AB.model.1.weight"], kept["resumed-rank0"]["nets"]["G_AB.model.1.weight"])


def test_two_processes_with_batch_1_train_as_one_with_batch_2(two_processes, tiny_folder):
    """The same images each step (EpochSampler's shares, B partners drawn per image), and DDP's mean of
    the two gradients is the gradient of the mean loss over both images: instance norm normalises each
    image by itself, and the pools (50 images) return this step's fakes until full. So the mean of
    the two processes' losses is the one process's loss at every step, and the networks compute the
    same functions. The weights differ in one place only: the biases of convolutions followed by
    instance norm. Their exact gradient is 0, so their computed gradients are rounding noise (about
    1e-7, where the others are about 1), above Adam's ε = 1e-8, which Adam divides by its own size:
    steps of about ±lr in a direction the rounding decides, which the norm subtracts again, so no
    output changes. (With batch norm, pix2pix's default, each process normalises its own batch; and
    the pools differ once full.)"""
    _, _, kept = two_processes
    one = Trainer(tiny(batch_size=2, iters=3, iters_decay=1), tiny_folder, progress=False)
    one.fit()
    rank0, rank1 = kept["fresh-rank0"]["history"], kept["fresh-rank1"]["history"]
    for r0, r1, single in zip(rank0, rank1, one.history, strict=True):
        assert {k: (r0[k] + r1[k]) / 2 for k in LOSSES} == pytest.approx({k: single[k] for k in LOSSES},
                                                                           rel=1e-5, abs=1e-6)
    ours, theirs = kept["fresh-rank0"]["nets"], one.model.state_dict()
    invisible = set().union(*(biases_before_instance_norm(getattr(one.model, n), n)
                              for n in ("G_AB", "G_BA", "D_A", "D_B")))
    assert invisible and all(torch.allclose(ours[k], theirs[k], atol=2e-5) for k in ours if k not in invisible)
    assert max((ours[k] - theirs[k]).abs().max() for k in invisible) < 0.01      # Adam's steps, a few lr
    two = Trainer(tiny(batch_size=2, iters=3, iters_decay=1), tiny_folder, progress=False).model
    two.load_state_dict(ours)
    x, y = load_folder(tiny_folder / "testA", 32), load_folder(tiny_folder / "testB", 32)
    with torch.no_grad():
        for a, b in ((two.G_AB(x), one.model.G_AB(x)), (two.G_BA(y), one.model.G_BA(y)),
                     (two.D_A(x), one.model.D_A(x)), (two.D_B(y), one.model.D_B(y))):
            # measured: at most 7e-5 apart; the 3 steps moved each output by 0.2 to 0.4, and training on
            # other images (seed 1) ends 0.1 to 0.35 away
            assert torch.allclose(a, b, atol=5e-4)
