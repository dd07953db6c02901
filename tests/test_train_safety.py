"""Nothing a user has is lost in training: a failed start leaves --out as it was (and --force keeps
the old run until the new one has a checkpoint); SIGTERM, SIGHUP and errors between steps save the
steps done; NaN losses stop the run without overwriting the last good checkpoint; resuming on other
data is refused; a full disk is one line and leaves the previous checkpoint whole."""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

import cyclegan_edu.train as train
from cyclegan_edu.cli import main
from cyclegan_edu.config import Config
from cyclegan_edu.data import EpochSampler, UnpairedImageFolder
from cyclegan_edu.train import Trainer, read_checkpoint
from test_cli import run_cli
from test_train import tiny, without_time

# fast CLI runs: the ci preset with the smallest nets, exact fp32 numbers on the CPU
FAST = ("--preset", "ci", "--ngf", "4", "--n-blocks", "1", "--device", "cpu", "--precision", "fp32", "--no-progress")
RUN_FILES = ["checkpoint.pt", "config.json", "history.csv"]


def error_line(err: str) -> str:
    """The one line a failed command printed on stderr."""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cyclegan-edu: error: "), err
    return lines[0]


def snapshot(run) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run.iterdir())}


def same_run(a: dict, b: dict) -> bool:
    """Same loss history (wall-clock seconds aside) and bit-identical weights."""
    return (without_time(a["history"]) == without_time(b["history"]) and a["nets"].keys() == b["nets"].keys()
            and all(torch.equal(a["nets"][k], b["nets"][k]) for k in a["nets"]))


def with_bad_A_image(tiny_folder, root, index: int):
    """A copy of the tiny folder whose ``index``-th A training image cannot be read."""
    shutil.copytree(tiny_folder, root)
    (root / "trainA" / f"a{index:03d}.png").write_bytes(b"not an image")
    return root


@pytest.fixture(scope="module")
def finished_run(tiny_folder, tmp_path_factory):
    run = tmp_path_factory.mktemp("safety") / "run"
    assert main(["train", "--data", str(tiny_folder), "--out", str(run), *FAST, "--iters", "2"]) == 0
    return run


# --- 1. --force replaces the old run only once the new one has a checkpoint -------------------

def test_force_keeps_the_old_run_when_the_new_one_fails_to_start(finished_run, tiny_folder, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = snapshot(run)
    assert list(before) == RUN_FILES
    bad_first_batch = with_bad_A_image(tiny_folder, tmp_path / "bad", 0)
    attempts = [(["--data", tmp_path / "nope", "--iters", "3"], "nope"),
                (["--data", tiny_folder, "--epochs", "0"], "n_epochs=0"),
                (["--data", bad_first_batch, "--iters", "3", "--batch-size", "16"], "a000.png")]  # in the first step
    if not torch.cuda.is_available():
        attempts.append((["--data", tiny_folder, "--iters", "3", "--device", "cuda"], "CUDA is not available"))
    for argv, fragment in attempts:
        code, _, err = run_cli(capsys, "train", "--out", run, "--force", *FAST, *argv)
        assert code == 2 and fragment in error_line(err), (argv, err)
        assert snapshot(run) == before, argv                  # byte-identical, no debris
    code, _, _ = run_cli(capsys, "train", "--data", tiny_folder, "--out", run, "--force", *FAST, "--iters", "3")
    assert code == 0 and read_checkpoint(run)["step"] == 3 and sorted(os.listdir(run)) == RUN_FILES


# --- 6. a failed start leaves nothing behind; --epochs 0 ---------------------------------------

def test_failed_start_leaves_no_trace_and_the_corrected_command_runs(tiny_folder, tmp_path, capsys):
    out = tmp_path / "runs" / "new"
    code, _, err = run_cli(capsys, "train", "--data", tmp_path / "nope", "--out", out, *FAST)
    assert code == 2 and "nope" in error_line(err)
    assert not (tmp_path / "runs").exists()
    # an unreadable image in the first batch (one batch holds all 16): the message names the file and the flag
    bad = with_bad_A_image(tiny_folder, tmp_path / "bad", 5)
    code, _, err = run_cli(capsys, "train", "--data", bad, "--out", out, *FAST, "--batch-size", "16", "--iters", "2")
    line = error_line(err)
    assert code == 2 and "a005.png" in line and "--skip-bad" in line
    assert not (tmp_path / "runs").exists()
    code, _, err = run_cli(capsys, "train", "--data", bad, "--out", out, *FAST, "--batch-size", "16",
                           "--iters", "2", "--skip-bad")
    assert "cyclegan-edu: note: skipping unreadable image: cannot read image" in err
    assert code == 0 and read_checkpoint(out)["step"] == 2 and read_checkpoint(out)["config"]["skip_bad"] is True


def test_an_unreadable_image_in_a_dataloader_worker_is_one_line(tiny_folder, tmp_path, capsys):
    bad = with_bad_A_image(tiny_folder, tmp_path / "bad", 5)
    code, _, err = run_cli(capsys, "train", "--data", bad, "--out", tmp_path / "run", *FAST, "--batch-size", "16",
                           "--iters", "2", "--workers", "2")
    line = error_line(err)          # not the worker's traceback
    assert code == 2 and line.startswith(f"cyclegan-edu: error: cannot read image {bad / 'trainA' / 'a005.png'}")
    assert "--skip-bad" in line


def test_epochs_0_is_refused(tiny_folder, tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "--data", tiny_folder, "--out", tmp_path / "run", *FAST, "--epochs", "0")
    assert code == 2 and "n_epochs=0" in error_line(err) and "at least one epoch" in err
    assert not (tmp_path / "run").exists()


# --- 5. an unreadable image reached mid-run --------------------------------------------------

def test_bad_image_mid_epoch_saves_the_steps_done_and_names_the_flag(tiny_folder, tmp_path, capsys):
    second_batch = list(EpochSampler(16, seed=0))[8:]          # ci: batch 8, epoch 0 in this order
    bad = with_bad_A_image(tiny_folder, tmp_path / "bad", second_batch[0])
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--data", bad, "--out", out, *FAST, "--iters", "4")
    line = error_line(err)
    assert code == 2, err
    for fragment in (f"a{second_batch[0]:03d}.png", "--skip-bad", "checkpoint of step 1 saved", "--resume"):
        assert fragment in line, (fragment, line)
    assert read_checkpoint(out)["step"] == 1
    code, _, err = run_cli(capsys, "train", "--data", bad, "--out", out, "--resume", "--skip-bad", "--no-progress")
    assert code == 0 and "note: skipping unreadable image" in err and read_checkpoint(out)["step"] == 4


# --- 2. errors and signals between steps save the steps done -----------------------------------

class FailingFolder(UnpairedImageFolder):
    """The tiny folder, failing on its ``fail_at``-th item load (counted over the whole run)."""

    def __init__(self, root, fail_at: int):
        super().__init__(root, image_size=32, load_size=36)
        self.loads, self.fail_at = 0, fail_at

    def __getitem__(self, index):
        self.loads += 1
        if self.loads == self.fail_at:
            raise OSError(f"item {index} went missing")
        return super().__getitem__(index)


def test_an_error_while_loading_a_batch_saves_the_last_whole_step(tiny_folder, tmp_path):
    config = tiny(dropout=True)
    whole = Trainer(config, FailingFolder(tiny_folder, fail_at=0), out=tmp_path / "whole", progress=False)
    whole.fit()
    # 16 images in batches of 6, 6, 4: the 20th load belongs to step 4's batch
    broken = Trainer(config, FailingFolder(tiny_folder, fail_at=20), out=tmp_path / "split", progress=False)
    with pytest.raises(OSError, match="went missing"):
        broken.fit()
    assert read_checkpoint(tmp_path / "split")["step"] == 3
    resumed = Trainer(config, FailingFolder(tiny_folder, fail_at=0), out=tmp_path / "split", resume=True,
                      progress=False)
    resumed.fit()
    assert same_run(read_checkpoint(tmp_path / "split"), read_checkpoint(tmp_path / "whole"))


@pytest.mark.parametrize("error", [RuntimeError("out of memory"), KeyboardInterrupt()])
def test_an_error_inside_a_step_saves_nothing_of_it(tiny_folder, tmp_path, error):
    trainer = Trainer(tiny(checkpoint_every=2), tiny_folder, out=tmp_path / "run", progress=False)
    saved = []

    def fail_in_step_3_once_G_is_updated(module, inputs, output):
        D_phase = next(module.parameters()).requires_grad      # D is frozen during the G update
        if trainer.step == 2 and D_phase:
            saved.append((tmp_path / "run" / "checkpoint.pt").read_bytes())
            raise error

    trainer.model.D_A.register_forward_hook(fail_in_step_3_once_G_is_updated)
    with pytest.raises(type(error)):
        trainer.fit()
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == saved[0]     # step 2's, not half of step 3


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_finish_the_step_then_save(tiny_folder, tmp_path, name):
    signum = getattr(signal, name)
    before = signal.getsignal(signum)
    trainer = Trainer(tiny(), tiny_folder, out=tmp_path / "run", progress=False)
    sent = []

    def signal_in_step_3(module, inputs, output):
        if trainer.step == 2 and not sent:
            sent.append(os.kill(os.getpid(), signum))

    trainer.model.D_A.register_forward_hook(signal_in_step_3)
    with pytest.raises(KeyboardInterrupt) as stopped:
        trainer.fit()
    assert stopped.value.signum == signum
    assert sent and trainer.step == 3 and read_checkpoint(tmp_path / "run")["step"] == 3
    assert signal.getsignal(signum) == before


def test_a_second_signal_stops_at_once_without_a_checkpoint(tiny_folder, tmp_path):
    trainer = Trainer(tiny(checkpoint_every=2), tiny_folder, out=tmp_path / "run", progress=False)

    def two_signals_in_step_3(module, inputs, output):
        if trainer.step == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    trainer.model.D_A.register_forward_hook(two_signals_in_step_3)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert read_checkpoint(tmp_path / "run")["step"] == 2


def test_an_ignored_sighup_stays_ignored(tiny_folder):
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)     # as under nohup
    try:
        trainer = Trainer(tiny(iters=3, iters_decay=0), tiny_folder, progress=False)
        trainer.add_callback(lambda t, record: os.kill(os.getpid(), signal.SIGHUP))
        trainer.fit()
        assert trainer.step == 3 and signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_sigterm_to_the_cli_saves_and_resume_matches_an_uninterrupted_run(tiny_folder, tmp_path, capsys):
    """The acceptance test: a real training process gets SIGTERM once its first checkpoint exists."""
    steps = 8
    argv = ["train", "--data", str(tiny_folder), "--preset", "ci", "--precision", "fp32", "--device", "cpu",
            "--iters", str(steps), "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "whole")]) == 0
    out = tmp_path / "split"
    process = subprocess.Popen([sys.executable, "-m", "cyclegan_edu", *argv, "--out", str(out),
                                "--checkpoint-every", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (out / "checkpoint.pt").exists():               # written whole, by a rename
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no checkpoint after 5 minutes"
        time.sleep(0.005)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 128 + signal.SIGTERM, err
    stopped = read_checkpoint(out)["step"]
    assert 1 <= stopped < steps
    assert f"SIGTERM at step {stopped}: stopped; checkpoint of step {stopped} saved. Continue with --resume" in err
    capsys.readouterr()
    assert main([*argv, "--out", str(out), "--resume"]) == 0
    assert same_run(read_checkpoint(out), read_checkpoint(tmp_path / "whole"))


def test_checkpoint_minutes_saves_by_the_clock(tiny_folder, tmp_path, monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    trainer = Trainer(tiny(checkpoint_minutes=1), tiny_folder, out=tmp_path / "run", progress=False)
    saved = []
    trainer.add_callback(lambda t, record: saved.append(t.checkpoint_step))
    trainer.add_callback(lambda t, record: clock.__setitem__(0, clock[0] + 61), every=3)   # a minute passes
    trainer.fit()
    assert saved == [None, None, None, 3, 3, 3, 6, 6]
    assert Config().checkpoint_minutes == 10 and "checkpoint_minutes" in train.RESUMABLE_CHANGES


# --- 3. NaN and infinite numbers ---------------------------------------------------------------

def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tiny_folder, tmp_path):
    trainer = Trainer(tiny(checkpoint_every=2), tiny_folder, out=tmp_path / "run", progress=False)

    def nan_in_step_4(module, inputs, output):
        return output * float("nan") if trainer.step == 3 else output

    trainer.model.D_B.register_forward_hook(nan_in_step_4)
    with pytest.raises(train.TrainingDiverged,
                       match=r"^step 4: loss G_AB_gan is nan; the last good checkpoint \(step 2\) is kept; "
                             r"start again with a lower learning rate \(lr\)$"):
        trainer.fit()
    state = read_checkpoint(tmp_path / "run")
    assert state["step"] == 2 and all(v.isfinite().all() for v in state["nets"].values() if v.is_floating_point())
    assert (tmp_path / "run" / "history.csv").read_text().count("\n") == 3


def test_an_infinite_loss_in_the_cli_exits_1_with_one_line(tiny_folder, tmp_path, capsys):
    # λ_cycle·λ_id = 1e40 overflows float32: G_total is inf in the first step
    code, _, err = run_cli(capsys, "train", "--data", tiny_folder, "--out", tmp_path / "run", *FAST,
                           "--iters", "2", "--lambda-identity", "1e39")
    assert code == 1
    assert "step 1: loss G_total is inf; nothing was saved" in error_line(err)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("field, value", [("lambda_cycle", float("inf")), ("lr", float("nan")),
                                          ("checkpoint_minutes", float("inf")), ("beta1", float("nan"))])
def test_non_finite_settings_are_refused(field, value):
    with pytest.raises(ValueError, match=f"^{field}={value}: must be a finite number$"):
        Config(**{field: value})


def test_non_finite_flags_give_one_line(tiny_folder, tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "--data", tiny_folder, "--out", tmp_path / "run", *FAST,
                           "--lambda-cycle", "inf")
    assert code == 2 and "lambda_cycle=inf: must be a finite number" in error_line(err)


# --- 4. resuming on other data ------------------------------------------------------------------

def test_resume_on_other_data_is_refused_and_a_moved_copy_is_fine(tiny_folder, tmp_path, capsys):
    data, run = tmp_path / "data", tmp_path / "run"
    shutil.copytree(tiny_folder, data)
    assert main(["train", "--data", str(data), "--out", str(run), *FAST, "--iters", "4"]) == 0
    recorded = json.loads((run / "config.json").read_text())["data"]
    assert recorded["path"] == str(data.resolve()) and recorded["folders"]["trainA"]["images"] == 16
    assert read_checkpoint(run)["data"] == recorded

    fewer = tmp_path / "fewer"
    shutil.copytree(data, fewer)
    (fewer / "trainA" / "a003.png").unlink()
    code, _, err = run_cli(capsys, "train", "--data", fewer, "--out", run, "--resume", "--no-progress")
    line = error_line(err)
    assert code == 2 and "trainA 16 → 15 images" in line and str(data.resolve()) in line

    renamed = tmp_path / "renamed"
    shutil.copytree(data, renamed)
    (renamed / "trainB" / "b003.png").rename(renamed / "trainB" / "b103.png")
    with pytest.raises(ValueError, match=r"holds other images \(trainB other file names or sizes\)"):
        Trainer(Config.from_dict(read_checkpoint(run)["config"]), renamed, out=run, resume=True, progress=False)

    moved = tmp_path / "moved"
    data.rename(moved)
    code, out, err = run_cli(capsys, "train", "--data", moved, "--out", run, "--resume", "--no-progress")
    assert code == 0 and "steps 4 → 4" in out
    assert err.strip() == (f"cyclegan-edu: note: --data {moved.resolve()} holds the same images as {data.resolve()}, "
                           "where this run started (moved or copied); continuing with it")


def test_checkpoints_without_a_data_record_still_resume(tiny_folder, tmp_path):
    trainer = Trainer(tiny(), tiny_folder, out=tmp_path / "run", progress=False)
    trainer.fit(2)
    state = read_checkpoint(tmp_path / "run")
    del state["data"]                                          # as written before the record existed
    torch.save(state, tmp_path / "run" / "checkpoint.pt")
    assert Trainer(tiny(), tiny_folder, out=tmp_path / "run", resume=True, progress=False).step == 2


# --- 7. a full disk -------------------------------------------------------------------------------

def test_a_full_disk_is_one_line_and_keeps_the_previous_checkpoint(tiny_folder, tmp_path, capsys, monkeypatch):
    real_save, calls = torch.save, []

    def second_save_fails(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            f.write(b"the start of a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", second_save_fails)
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--data", tiny_folder, "--out", run, *FAST, "--iters", "4",
                           "--checkpoint-every", "2")
    assert code == 1
    assert error_line(err) == (f"cyclegan-edu: error: could not write checkpoint {run / 'checkpoint.pt'}: "
                               "No space left on device; free space or choose another --out; "
                               "the previous checkpoint is intact")
    assert read_checkpoint(run)["step"] == 2 and sorted(os.listdir(run)) == RUN_FILES
    assert (run / "history.csv").read_text().count("\n") == 3


def test_a_full_disk_at_the_first_checkpoint_leaves_no_run_directory(tiny_folder, tmp_path, monkeypatch):
    def full(obj, f, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    trainer = Trainer(tiny(iters=1, iters_decay=0), tiny_folder, out=tmp_path / "runs" / "run", progress=False)
    with pytest.raises(OSError, match="No space left on device; .*; nothing was written$"):
        trainer.fit()
    assert not (tmp_path / "runs").exists()


def test_the_reason_behind_torchs_failed_write_is_reported(tmp_path, monkeypatch):
    """torch.save turns a failed write into a RuntimeError without the reason; the OSError is kept."""
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    with pytest.raises(OSError, match="No space left on device"):
        train._torch_save({"x": torch.zeros(100_000)}, "/dev/full")
