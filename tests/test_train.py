"""The Trainer: learning-rate schedule, bit-exact resume, run directories, checkpoints, history,
callbacks, the train-or-load cache, and that training on a tiny folder lowers the cycle loss."""
from __future__ import annotations

import csv
import json
import os
import signal

import pytest
import torch

from cyclegan_edu.config import Config, get_preset
from cyclegan_edu.data import UnpairedImageFolder
from cyclegan_edu.train import Trainer, linear_decay, load_model, read_checkpoint, train_or_load

LOSS_KEYS = ("G_AB_gan", "G_BA_gan", "cycle_A", "cycle_B", "idt_A", "idt_B", "G_total", "D_A", "D_B")


def tiny(**changes) -> Config:
    """Seconds-fast nets; batch 6 over 16 images = 3 steps per epoch, the last batch short."""
    base = Config(image_size=32, load_size=36, ngf=4, ndf=4, n_blocks=1, batch_size=6, pool_size=10,
                  iters=8, iters_decay=4, device="cpu", precision="fp32")
    return base.replace(**changes)


def without_time(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in record.items() if k != "seconds"} for record in history]


# --- the schedule -------------------------------------------------------------------------

def test_linear_decay_is_the_official_rule():
    # official: 1 - max(0, epoch + epoch_count - n_epochs) / (n_epochs_decay + 1), epoch_count = 1
    values = {t: linear_decay(t, 100, 100) for t in (0, 50, 99, 100, 101, 150, 199)}
    assert values == pytest.approx({0: 1.0, 50: 1.0, 99: 1.0, 100: 1 - 1 / 101, 101: 1 - 2 / 101,
                                    150: 1 - 51 / 101, 199: 1 / 101})
    assert [linear_decay(t, 2, 3) for t in range(5)] == pytest.approx([1, 1, 0.75, 0.5, 0.25])


def test_trainer_learning_rate_per_step_counted_in_steps(tiny_folder):
    trainer = Trainer(tiny(iters=6, iters_decay=3), tiny_folder, progress=False)
    trainer.fit()
    assert [r["lr"] for r in trainer.history] == pytest.approx([2e-4 * f for f in (1, 1, 1, 0.75, 0.5, 0.25)])
    assert trainer.model.optimizers["D"].param_groups[0]["lr"] == pytest.approx(0.0)


def test_trainer_learning_rate_per_epoch(tiny_folder):
    # 16 images, batch 8: 2 steps an epoch; 1 constant epoch, then 2 decaying ones
    trainer = Trainer(tiny(iters=None, batch_size=8, n_epochs=1, n_epochs_decay=2), tiny_folder, progress=False)
    assert trainer.total_steps == 6
    trainer.fit()
    assert [r["epoch"] for r in trainer.history] == [0, 0, 1, 1, 2, 2]
    assert [r["lr"] for r in trainer.history] == pytest.approx([2e-4 * f for f in (1, 1, 2 / 3, 2 / 3, 1 / 3, 1 / 3)])


# --- resume equivalence -------------------------------------------------------------------

def _interrupt_at(step):
    def callback(trainer, record):
        if record["step"] == step:
            raise KeyboardInterrupt
    return callback


@pytest.mark.parametrize("changes, split, how", [
    ({}, 4, "fit"),                                            # mid-epoch; the rest crosses an epoch boundary
    ({"iters": None, "n_epochs": 1, "n_epochs_decay": 2}, 5, "interrupt"),   # epoch-based schedule
    ({"iters": None, "n_epochs": 1, "n_epochs_decay": 2}, 6, "interrupt"),   # Ctrl-C on an epoch's last step
    ({"precision": "bf16"}, 4, "fit"),                         # bf16 autocast, the default on AMX CPUs
])
def test_resume_gives_the_same_losses_and_weights(tiny_folder, tmp_path, changes, split, how):
    config = tiny(dropout=True, **changes)       # dropout draws from torch's RNG, the pool from Python's
    whole = Trainer(config, tiny_folder, out=tmp_path / "whole", progress=False)
    whole.fit()
    assert whole.step == whole.total_steps > split

    first = Trainer(config, tiny_folder, out=tmp_path / "split", progress=False)
    if how == "fit":
        first.fit(split)
    else:
        first.add_callback(_interrupt_at(split))
        with pytest.raises(KeyboardInterrupt):
            first.fit()
    assert read_checkpoint(tmp_path / "split")["step"] == split
    second = Trainer(config, tiny_folder, out=tmp_path / "split", resume=True, progress=False)
    assert second.step == split
    second.fit()

    assert without_time(second.history) == without_time(whole.history)
    ours, theirs = second.model.state_dict(), whole.model.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert second.model.optimizers["G"].state_dict()["state"][0]["exp_avg"].equal(
        whole.model.optimizers["G"].state_dict()["state"][0]["exp_avg"])


def test_fit_for_minutes_stops_after_the_running_step_and_resumes_exactly(tiny_folder, tmp_path, monkeypatch):
    """fit(minutes=1) on a clock that a callback moves 25 s a step: the budget is used up during step 3,
    which is finished and saved; the resumed run then matches one trained without a budget."""
    import types
    from cyclegan_edu import train as train_module
    clock = [1000.0]
    monkeypatch.setattr(train_module, "time", types.SimpleNamespace(monotonic=lambda: clock[0],
                                                                    perf_counter=train_module.time.perf_counter))
    config = tiny()
    whole = Trainer(config, tiny_folder, out=tmp_path / "whole", progress=False)
    whole.fit()
    budgeted = Trainer(config, tiny_folder, out=tmp_path / "budget", progress=False)
    budgeted.add_callback(lambda trainer, record: clock.__setitem__(0, clock[0] + 25))
    budgeted.fit(minutes=1)
    assert budgeted.step == 3 and read_checkpoint(tmp_path / "budget")["step"] == 3
    resumed = Trainer(config, tiny_folder, out=tmp_path / "budget", resume=True, progress=False)
    resumed.fit()
    assert without_time(resumed.history) == without_time(whole.history)


@pytest.mark.parametrize("kwargs, fragment", [({"minutes": 0}, "minutes=0"), ({"minutes": -1.5}, "minutes=-1.5"),
                                              ({"minutes": float("nan")}, "minutes=nan"), ({"steps": 0}, "steps=0")])
def test_fit_refuses_a_budget_that_trains_nothing(tiny_folder, kwargs, fragment):
    trainer = Trainer(tiny(), tiny_folder, progress=False)
    with pytest.raises(ValueError, match=fragment):
        trainer.fit(**kwargs)
    assert trainer.step == 0


def test_ctrl_c_in_the_middle_of_a_step_finishes_the_step_first(tiny_folder, tmp_path):
    """SIGINT between the generator and the discriminator update: the step is completed, then the run
    stops with a checkpoint of whole steps, and resuming matches the uninterrupted run."""
    config = tiny(iters=5, iters_decay=2)
    whole = Trainer(config, tiny_folder, progress=False)
    whole.fit()
    first = Trainer(config, tiny_folder, out=tmp_path / "run", progress=False)
    sent = []

    def ctrl_c_once_G_is_updated(module, inputs, output):
        D_phase = next(module.parameters()).requires_grad      # D is frozen during the G update
        if first.step == 2 and D_phase and not sent:           # the third step, G already updated
            sent.append(os.kill(os.getpid(), signal.SIGINT))

    first.model.D_A.register_forward_hook(ctrl_c_once_G_is_updated)
    with pytest.raises(KeyboardInterrupt):
        first.fit()
    assert sent and first.step == 3 and read_checkpoint(tmp_path / "run")["step"] == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler      # handler restored
    second = Trainer(config, tiny_folder, out=tmp_path / "run", resume=True, progress=False)
    second.fit()
    assert without_time(second.history) == without_time(whole.history)
    assert all(torch.equal(v, whole.model.state_dict()[k]) for k, v in second.model.state_dict().items())


def test_resume_with_other_settings_is_refused(tiny_folder, tmp_path):
    Trainer(tiny(), tiny_folder, out=tmp_path / "run", progress=False).fit(2)
    with pytest.raises(ValueError, match=r"other settings \(ngf 4 → 8, ndf 4 → 8\)"):
        Trainer(tiny(ngf=8, ndf=8), tiny_folder, out=tmp_path / "run", resume=True, progress=False)
    with pytest.raises(ValueError, match="holds a cyclegan model, not pix2pix"):
        Trainer(tiny(), UnpairedImageFolder(tiny_folder, image_size=32, load_size=36), out=tmp_path / "run",
                model="pix2pix", resume=True, progress=False)


# --- run directories and checkpoints ------------------------------------------------------

def test_non_empty_run_directory_is_protected(tiny_folder, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("someone else's run")
    with pytest.raises(FileExistsError, match=r"run.*is not empty.*--resume.*--force"):
        Trainer(tiny(), tiny_folder, out=out, progress=False)
    assert (out / "notes.txt").exists() and not (out / "config.json").exists()
    Trainer(tiny(), tiny_folder, out=out, force=True, progress=False).fit(1)
    assert (out / "config.json").exists() and (out / "notes.txt").exists()
    (tmp_path / "file").write_text("")
    with pytest.raises(FileExistsError, match="is a file"):
        Trainer(tiny(), tiny_folder, out=tmp_path / "file", progress=False)


def test_force_starts_over_and_replaces_the_old_run_at_its_first_checkpoint(tiny_folder, tmp_path):
    Trainer(tiny(), tiny_folder, out=tmp_path / "run", progress=False).fit(2)
    again = Trainer(tiny(lambda_cycle=5.0), tiny_folder, out=tmp_path / "run", force=True, progress=False)
    assert again.step == 0 and read_checkpoint(tmp_path / "run")["step"] == 2      # the old run, untouched so far
    again.fit(1)
    assert read_checkpoint(tmp_path / "run")["step"] == 1
    assert json.loads((tmp_path / "run" / "config.json").read_text())["lambda_cycle"] == 5.0
    assert (tmp_path / "run" / "history.csv").read_text().count("\n") == 2


def test_checkpoint_files_and_weights_only_loading(tiny_folder, tmp_path):
    trainer = Trainer(tiny(iters=3, iters_decay=0), tiny_folder, out=tmp_path / "run", progress=False)
    trainer.fit()
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["checkpoint.pt", "config.json", "history.csv"]
    state = torch.load(tmp_path / "run" / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert state["step"] == 3 and set(state["optimizers"]) == {"G", "D"} and len(state["history"]) == 3
    assert set(state["pools"]) == {"fake_A", "fake_B"} and len(state["pools"]["fake_A"]["images"]) == 10
    assert json.loads((tmp_path / "run" / "config.json").read_text())["ngf"] == 4
    model = load_model(tmp_path / "run", device="cpu")
    assert all(torch.equal(v, trainer.model.state_dict()[k]) for k, v in model.state_dict().items())
    x = torch.zeros(1, 3, 32, 32)
    assert torch.equal(model.translate(x), trainer.model.translate(x))


def test_checkpoints_with_pickled_code_are_refused(tmp_path):
    torch.save({"format": "cyclegan_edu.checkpoint/1", "config": Config}, tmp_path / "checkpoint.pt")
    with pytest.raises(ValueError, match="cannot read checkpoint") as err:
        read_checkpoint(tmp_path)
    assert "\n" not in str(err.value)
    torch.save({"G": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a cyclegan_edu training checkpoint"):
        read_checkpoint(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        read_checkpoint(tmp_path / "nowhere")


def test_failed_checkpoint_write_keeps_the_previous_one_and_leaves_no_temp_file(tiny_folder, tmp_path, monkeypatch):
    trainer = Trainer(tiny(), tiny_folder, out=tmp_path / "run", progress=False)
    trainer.fit(2)
    before = (tmp_path / "run" / "checkpoint.pt").read_bytes()

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        trainer.fit(1)
    monkeypatch.undo()
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == before
    assert read_checkpoint(tmp_path / "run")["step"] == 2
    assert not list((tmp_path / "run").glob("*.tmp"))


# --- history and callbacks ------------------------------------------------------------------

def test_history_records_every_step_and_exports(tiny_folder, tmp_path):
    trainer = Trainer(tiny(iters=3, iters_decay=0), tiny_folder, progress=False)
    history = trainer.fit()
    assert [r["step"] for r in history] == [1, 2, 3]
    assert all(set(LOSS_KEYS) <= set(r) for r in history)
    trainer.export_history(tmp_path / "h.csv")
    with open(tmp_path / "h.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and list(rows[0])[:3] == ["step", "epoch", "lr"]
    assert [float(r["cycle_A"]) for r in rows] == [r["cycle_A"] for r in history]
    trainer.export_history(tmp_path / "h.json")
    assert json.loads((tmp_path / "h.json").read_text()) == history


def test_log_every_thins_the_history_but_keeps_the_last_step(tiny_folder):
    trainer = Trainer(tiny(iters=5, iters_decay=0, log_every=2), tiny_folder, progress=False)
    assert [r["step"] for r in trainer.fit()] == [2, 4, 5]


def test_callbacks_run_every_k_steps(tiny_folder):
    trainer = Trainer(tiny(iters=7, iters_decay=0), tiny_folder, progress=False)
    calls = []
    trainer.add_callback(lambda t, record: calls.append((t.step, record["step"], "cycle_A" in record)), every=3)
    trainer.fit()
    assert calls == [(3, 3, True), (6, 6, True)]
    with pytest.raises(ValueError, match="every=0"):
        trainer.add_callback(print, every=0)



# --- loss weights changed between steps (the dashboard's sliders) ----------------------------

def used_weight(record: dict, term: str = "cycle_A") -> float:
    """The weight a step actually gave ``term`` in G_total (the logged weighted term over the unweighted)."""
    return record[f"{term}_weighted"] / record[term]


def test_set_loss_weights_takes_effect_at_the_next_step_and_leaves_the_config_as_started(tiny_folder):
    config = tiny(iters=4, iters_decay=0)
    trainer = Trainer(config, tiny_folder, progress=False)
    trainer.fit(2)
    trainer.set_loss_weights(lambda_cycle=1.0, lambda_identity=2.0)
    assert trainer.model.config.lambda_cycle == 10.0             # queued, not applied between calls
    trainer.fit(1)
    trainer.set_loss_weights(lambda_cycle=3.0)
    trainer.fit(1)
    assert [used_weight(r) for r in trainer.history] == pytest.approx([10, 10, 1, 3])
    assert [used_weight(r, "idt_A") for r in trainer.history] == pytest.approx([5, 5, 2, 6])   # λ·λ_id
    assert trainer.loss_weight_changes == [{"step": 3, "lambda_cycle": 1.0, "lambda_identity": 2.0},
                                           {"step": 4, "lambda_cycle": 3.0}]
    assert (trainer.model.config.lambda_cycle, trainer.model.config.lambda_identity) == (3.0, 2.0)
    assert trainer.config == config and config.lambda_cycle == 10.0            # the run's settings as started
    assert get_preset("ci").lambda_cycle == 10.0


def test_weight_changes_are_checkpointed_and_replayed_on_resume(tiny_folder, tmp_path):
    """A run whose λ changed at step 3 and was saved at step 4, resumed with its own settings, continues
    with the changed λ and matches a run that was never interrupted; a change asked for after the last
    step is saved too and taken at the first step after resuming."""
    config = tiny(iters=6, iters_decay=0)
    whole = Trainer(config, tiny_folder, progress=False)
    whole.add_callback(lambda t, record: t.set_loss_weights(lambda_cycle=2.0) if record["step"] == 2 else None)
    whole.add_callback(lambda t, record: t.set_loss_weights(lambda_gan=0.5) if record["step"] == 4 else None)
    whole.fit()

    first = Trainer(config, tiny_folder, out=tmp_path / "run", progress=False)
    first.fit(2)
    first.set_loss_weights(lambda_cycle=2.0)
    first.fit(2)
    first.set_loss_weights(lambda_gan=0.5)
    first.save_checkpoint()
    saved = read_checkpoint(tmp_path / "run")
    assert saved["config"]["lambda_cycle"] == 10.0 and json.loads((tmp_path / "run" / "config.json").read_text())[
        "lambda_cycle"] == 10.0
    assert saved["loss_weight_changes"] == [{"step": 3, "lambda_cycle": 2.0}, {"step": 5, "lambda_gan": 0.5}]

    second = Trainer(config, tiny_folder, out=tmp_path / "run", resume=True, progress=False)
    assert (second.model.config.lambda_cycle, second.model.config.lambda_gan) == (2.0, 0.5)
    second.fit()
    assert without_time(second.history) == without_time(whole.history)
    assert [used_weight(r) for r in second.history] == pytest.approx([10, 10, 2, 2, 2, 2])
    assert all(torch.equal(v, whole.model.state_dict()[k]) for k, v in second.model.state_dict().items())


def test_bad_loss_weight_changes_are_refused_in_one_line_and_change_nothing(tiny_folder):
    trainer = Trainer(tiny(iters=2, iters_decay=0), tiny_folder, progress=False)
    with pytest.raises(ValueError, match="lambda_cycle=-1.0: must not be negative"):
        trainer.set_loss_weights(lambda_cycle=-1.0)
    with pytest.raises(ValueError, match="cyclegan has no live loss weight lambda_l1, ngf; choose among lambda_gan"):
        trainer.set_loss_weights(lambda_l1=5.0, ngf=8)
    trainer.fit(1)
    assert trainer.loss_weight_changes == [] and trainer.model.config == trainer.config

    grey_to_colour = Trainer(tiny(iters=1, iters_decay=0, input_nc=1, lambda_identity=0.0), tiny_folder,
                             progress=False)
    with pytest.raises(ValueError, match="needs input_nc == output_nc; set lambda_identity=0"):
        grey_to_colour.set_loss_weights(lambda_identity=0.5)
    pix2pix = Trainer(tiny(iters=1, iters_decay=0, lambda_identity=0.0), UnpairedImageFolder(
        tiny_folder, image_size=32, load_size=36), model="pix2pix", progress=False)
    with pytest.raises(ValueError, match="pix2pix has no live loss weight lambda_cycle; choose among lambda_l1"):
        pix2pix.set_loss_weights(lambda_cycle=1.0)
    pix2pix.set_loss_weights(lambda_l1=7.0)
    (record,) = pix2pix.fit()
    assert record["G_total"] == pytest.approx(record["G_gan"] + 7.0 * record["G_L1"], rel=1e-5)

# --- the notebooks' cache -------------------------------------------------------------------

def test_train_or_load_trains_once(tiny_folder, tmp_path, monkeypatch):
    config = tiny(iters=3, iters_decay=0)
    model, history = train_or_load("tiny", config, tiny_folder, progress=False, root=tmp_path)
    assert len(history) == 3
    (run,) = tmp_path.iterdir()
    assert run.name.startswith("tiny-")

    def no_training(self, steps=None):
        raise AssertionError("train_or_load trained again instead of loading")

    monkeypatch.setattr(Trainer, "fit", no_training)
    again, cached = train_or_load("tiny", config, tiny_folder, progress=False, root=tmp_path)
    assert cached == history
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in again.state_dict().items())
    with pytest.raises(AssertionError, match="trained again"):   # another knob: another run
        train_or_load("tiny", config.replace(lambda_cycle=5.0), tiny_folder, progress=False, root=tmp_path)


def test_train_or_load_uses_the_runs_environment_variable(tiny_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("CYCLEGAN_EDU_RUNS", str(tmp_path / "cache"))
    train_or_load("env", tiny(iters=1, iters_decay=0), tiny_folder, progress=False)
    assert [p.name[:4] for p in (tmp_path / "cache").iterdir()] == ["env-"]


# --- it learns ------------------------------------------------------------------------------

def test_ci_preset_lowers_the_cycle_loss_on_a_tiny_folder(tiny_folder):
    config = get_preset("ci", iters=40, iters_decay=0, device="cpu")
    history = Trainer(config, tiny_folder, progress=False).fit()
    cycle = [r["cycle_A"] + r["cycle_B"] for r in history]
    first, last = sum(cycle[:5]) / 5, sum(cycle[-10:]) / 10
    assert last < 0.5 * first, (first, last)
    assert all(r["D_A"] < 1 and r["D_B"] < 1 for r in history[-10:])   # nothing diverged
