"""The command line end to end: train, resume, translate (a run or a weights file), info, and one
clear line with exit code 2 for every bad argument."""
from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import typing

import pytest
import torch
from PIL import Image

from cyclegan_edu.cli import build_parser, main, train_config
from cyclegan_edu.config import PRESETS, Config, get_preset
from cyclegan_edu.train import CHECKPOINT, Trainer, load_model, read_checkpoint


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """``main(argv)``'s exit code (argparse's own exits included), stdout and stderr."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit:
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *fragments: str) -> str:
    """Exit code 2 and one line on stderr holding every fragment; returns the line."""
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cyclegan-edu") and " error: " in lines[0], err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def trained_run(tiny_folder, tmp_path_factory):
    run = tmp_path_factory.mktemp("cli") / "run"
    code = main(["train", "--data", str(tiny_folder), "--out", str(run), "--preset", "ci", "--iters", "6",
                 "--no-progress"])
    assert code == 0
    return run


def test_train_writes_a_finished_run(trained_run):
    state = read_checkpoint(trained_run)
    assert state["step"] == 6 and len(state["history"]) == 6
    assert state["config"]["ngf"] == 16 and state["config"]["iters"] == 6 and state["config"]["iters_decay"] == 3
    assert (trained_run / "history.csv").read_text().count("\n") == 7


def test_resume_uses_the_runs_own_settings(trained_run, tiny_folder, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    code, out, _ = run_cli(capsys, "train", "--data", tiny_folder, "--out", run, "--resume", "--no-progress")
    assert code == 0 and "steps 6 → 6" in out              # not the preset's 300 steps
    code, _, err = run_cli(capsys, "train", "--data", tiny_folder, "--out", run, "--resume", "--ngf", "8")
    assert_one_line_error(code, err, "other settings", "ngf 16 → 8")


def test_minutes_budget_saves_and_resume_finishes_the_run(tiny_folder, tmp_path, capsys):
    """--minutes: a session-sized budget. Used up after the first step (a budget of 6 ms), the run saves
    that step and says how to continue; --resume then trains to the end of the schedule."""
    run = tmp_path / "run"
    code, out, _ = run_cli(capsys, "train", "--data", tiny_folder, "--out", run, "--preset", "ci", "--iters", "6",
                           "--no-progress", "--minutes", "0.0001")
    assert code == 0
    assert read_checkpoint(run)["step"] == 1
    assert "--minutes 0.0001 used up at step 1 of 6; checkpoint of step 1 saved. Continue with --resume" in out
    code, out, _ = run_cli(capsys, "train", "--data", tiny_folder, "--out", run, "--resume", "--no-progress")
    assert code == 0 and "done: 6 steps" in out
    assert read_checkpoint(run)["step"] == 6


def test_translate_a_run(trained_run, tiny_folder, tmp_path, capsys):
    out_dir = tmp_path / "out"
    code, out, _ = run_cli(capsys, "translate", "--run", trained_run, "--direction", "AtoB",
                           "--input", tiny_folder / "testA", "--output", out_dir)
    assert code == 0 and "wrote 4 image(s)" in out
    names = sorted(p.name for p in out_dir.iterdir())
    assert names == sorted(p.name for p in (tiny_folder / "testA").iterdir())
    with Image.open(out_dir / names[0]) as img:
        assert img.mode == "RGB" and img.size == (32, 32)
    code, _, err = run_cli(capsys, "translate", "--run", trained_run, "--input", tiny_folder / "testA",
                           "--output", out_dir)
    assert_one_line_error(code, err, "exist already", "--force")
    code, _, _ = run_cli(capsys, "translate", "--run", trained_run, "--direction", "BtoA",
                         "--input", tiny_folder / "testB", "--output", out_dir, "--force")
    assert code == 0


def test_translate_official_style_weights_keeps_odd_sizes(trained_run, tmp_path, capsys):
    model = load_model(trained_run, device="cpu")
    torch.save({"module." + k: v for k, v in model.G_AB.state_dict().items()}, tmp_path / "latest_net_G.pth")
    Image.new("RGB", (30, 22), (90, 40, 40)).save(tmp_path / "odd.jpg")
    code, out, _ = run_cli(capsys, "translate", "--weights", tmp_path / "latest_net_G.pth",
                           "--input", tmp_path / "odd.jpg", "--output", tmp_path / "out", "--device", "cpu")
    assert code == 0 and "wrote 1 image(s)" in out
    with Image.open(tmp_path / "out" / "odd.png") as img:
        assert img.size == (30, 22)


def test_info(trained_run, capsys):
    code, out, _ = run_cli(capsys, "info", trained_run)
    assert code == 0
    assert "model      cyclegan: 32px, ngf 16, 3 blocks, gan lsgan" in out
    assert "steps      6 of 6" in out and "cycle_A" in out


@pytest.mark.parametrize("argv, fragments", [
    (["train", "--data", "{data}"], ["--out"]),                                  # argparse: missing option
    (["train", "--data", "{data}", "--out", "{tmp}/r", "--gan-mode", "wgan"], ["wgan"]),
    (["train", "--data", "{data}", "--out", "{tmp}/r", "--iters", "many"], ["many"]),
    (["train", "--data", "{data}", "--out", "{tmp}/r", "--size", "30"], ["image_size=30", "multiple of 4"]),
    (["train", "--data", "{data}", "--out", "{tmp}/r", "--size", "16"], ["image_size=16", "at least 24", "n_layers_D"]),
    (["train", "--data", "{data}", "--out", "{tmp}/r", "--size", "20"], ["image_size=20", "at least 24"]),
    (["train", "--data", "{data}", "--out", "{tmp}/r", "--iters", "0"], ["iters=0"]),
    (["train", "--data", "{tmp}/nowhere", "--out", "{tmp}/r"], ["nowhere", "does not exist"]),
    (["train", "--data", "{data}", "--out", "{run}"], ["not empty", "--resume"]),
    (["translate", "--run", "{tmp}/nowhere", "--input", "{data}/testA", "--output", "{tmp}/o"], ["nowhere"]),
    (["translate", "--run", "{run}", "--weights", "{tmp}/g.pth", "--input", "x", "--output", "y"], ["--weights"]),
    (["translate", "--run", "{run}", "--direction", "sideways", "--input", "x", "--output", "y"], ["sideways"]),
    (["translate", "--run", "{run}", "--input", "{tmp}/missing", "--output", "{tmp}/o"], ["input {tmp}/missing does not exist", "give --input an image file"]),
    (["translate", "--weights", "{tmp}/g.pth", "--input", "{data}/testA", "--output", "{tmp}/o"], ["g.pth"]),
    (["train", "--data", "{data}", "--out", "{tmp}/r", "--minutes", "0"], ["--minutes", "'0'", "positive number"]),
    (["train", "--data", "{data}", "--out", "{tmp}/r", "--minutes", "soon"], ["--minutes", "'soon'"]),
    (["info", "{tmp}"], ["no checkpoint"]),
    (["bake"], ["bake"]),
])
def test_bad_arguments_give_one_line_and_exit_code_2(argv, fragments, trained_run, tiny_folder, tmp_path, capsys):
    (tmp_path / "g.pth").write_text("not weights")
    fill = {"data": tiny_folder, "tmp": tmp_path, "run": trained_run}
    code, _, err = run_cli(capsys, *[a.format(**fill) for a in argv])
    assert_one_line_error(code, err, *[f.format(**fill) for f in fragments])


def test_python_dash_m_exits_2_with_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "cyclegan_edu", "train", "--data", str(tmp_path / "nowhere"),
                             "--out", str(tmp_path / "run"), "--no-progress"],
                            capture_output=True, text=True, timeout=120)
    assert_one_line_error(result.returncode, result.stderr, "nowhere")
    assert result.stdout == ""


# --- the train options: one per Config field, made from the dataclass ---------------------------

def train_config_of(tmp_path, *options):
    """The Config ``cyclegan-edu train --preset ci OPTIONS`` would train with (nothing is trained)."""
    args = build_parser().parse_args(["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"),
                                      "--preset", "ci", *[str(o) for o in options]])
    return train_config(args)


def another_value(f: dataclasses.Field, current):
    """A valid value for field ``f`` other than ``current``."""
    if f.metadata["choices"]:
        return next(choice for choice in f.metadata["choices"] if choice != current)
    if f.name == "device":
        return "cpu"
    if f.name == "n_layers_D":         # more layers need larger images than the ci preset's
        return current - 1
    kind = typing.get_type_hints(Config)[f.name]
    if kind is bool:
        return not current
    if kind is float:
        return current / 2 if current else 0.5
    return (current or 0) + 4          # int and int | None: keeps sizes multiples of 4


def test_every_config_field_is_a_train_option_and_reaches_the_config(tmp_path, capsys):
    preset = PRESETS["ci"]
    wanted = {f.name: another_value(f, getattr(preset, f.name)) for f in dataclasses.fields(Config)}
    options = []
    for name, value in wanted.items():
        flag = "--" + name.replace("_", "-")
        options += ([flag] if value else ["--no-" + flag[2:]]) if isinstance(value, bool) else [flag, value]
    config = train_config_of(tmp_path, *options)
    for name, value in wanted.items():
        assert value != getattr(preset, name) and getattr(config, name) == value, name
    code, out, _ = run_cli(capsys, "train", "--help")
    assert code == 0
    for f in dataclasses.fields(Config):
        assert f"--{f.name.replace('_', '-')} " in out or f"--{f.name.replace('_', '-')}," in out, f.name


def test_options_not_given_keep_the_presets_values(tmp_path):
    assert train_config_of(tmp_path) == PRESETS["ci"]
    assert train_config_of(tmp_path, "--ngf", 8).ndf == PRESETS["ci"].ndf        # --ngf no longer sets ndf
    assert train_config_of(tmp_path, "--ngf", 8) == PRESETS["ci"].replace(ngf=8)


@pytest.mark.parametrize("options, expected", [
    (["--size", 64], {"image_size": 64, "load_size": 72}),
    (["--size", 64, "--load-size", 80], {"image_size": 64, "load_size": 80}),        # the field's own wins
    (["--iters", 100], {"iters": 100, "iters_decay": 50}),
    (["--iters", 100, "--iters-decay", 10], {"iters": 100, "iters_decay": 10}),
    (["--epochs", 5], {"iters": None, "n_epochs": 3, "n_epochs_decay": 2}),
    (["--epochs", 5, "--n-epochs-decay", 7], {"iters": None, "n_epochs": 3, "n_epochs_decay": 7}),
    (["--workers", 3], {"num_workers": 3}),
    (["--no-flip", "--compile"], {"flip": False, "compile": True}),
    (["--iters", 300, "--lambda-identity", 0], {"iters": 300, "iters_decay": 150, "lambda_identity": 0.0}),  # README
])
def test_shorthands_and_explicit_options(tmp_path, options, expected):
    assert train_config_of(tmp_path, *options) == PRESETS["ci"].replace(**expected)


def test_model_pix2pix_starts_from_pix2pixs_own_settings(tmp_path):
    assert train_config_of(tmp_path, "--model", "pix2pix") == get_preset("ci", model="pix2pix")
    assert train_config_of(tmp_path, "--model", "pix2pix", "--gan-mode", "lsgan").gan_mode == "lsgan"


def test_iters_and_epochs_together_is_one_clear_error(tiny_folder, tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "--data", tiny_folder, "--out", tmp_path / "r", "--iters", 3,
                           "--epochs", 2)
    assert_one_line_error(code, err, "--epochs", "--iters")


def test_a_pix2pix_run_saved_before_lambda_l1_and_direction_resumes(tmp_path, capsys):
    """Such a run was trained with pix2pix's own settings, whatever its config said: resuming and
    loading it use them, and other settings are still refused."""
    data = tmp_path / "paired"
    (data / "train").mkdir(parents=True)
    for i in range(4):
        Image.new("RGB", (64, 32), (40 * i, 90, 200 - 40 * i)).save(data / "train" / f"{i}.png")
    run = tmp_path / "run"
    Trainer(get_preset("ci", model="pix2pix", iters=4, iters_decay=2, device="cpu"), data, out=run, model="pix2pix",
            progress=False).fit(2)
    state = torch.load(run / CHECKPOINT, weights_only=True)
    for added in ("lambda_l1", "direction"):
        del state["config"][added]
    state["config"].update(norm="instance", dropout=False, gan_mode="lsgan", pool_size=50, lambda_identity=0.5)
    torch.save(state, run / CHECKPOINT)

    code, _, err = run_cli(capsys, "train", "--data", data, "--out", run, "--model", "pix2pix", "--resume",
                           "--pool-size", 3)
    assert_one_line_error(code, err, "other settings", "pool_size 0 → 3")
    code, out, _ = run_cli(capsys, "train", "--data", data, "--out", run, "--model", "pix2pix", "--resume",
                           "--no-progress")
    assert code == 0 and "steps 2 → 4" in out
    assert load_model(run, device="cpu").config == get_preset("ci", model="pix2pix", iters=4, iters_decay=2,
                                                                device="cpu")


@pytest.mark.parametrize("stop, code, name", [(KeyboardInterrupt(), 130, "SIGINT"), ("SIGTERM", 143, "SIGTERM"),
                                              ("SIGHUP", 129, "SIGHUP")])
def test_a_stopped_results_run_exits_with_its_signals_code(stop, code, name, monkeypatch, capsys):
    """``results run`` under SIGTERM exits 143 as ``train`` does (it said 130, Ctrl-C's code, for any signal)."""
    import signal

    from cyclegan_edu import experiments
    from cyclegan_edu.train import Stopped

    def stopped_run(*args, **kwargs):
        raise stop if isinstance(stop, BaseException) else Stopped(getattr(signal, stop))

    monkeypatch.setattr(experiments, "run", stopped_run)
    with pytest.raises(SystemExit) as exit_:
        main(["results", "run", next(iter(experiments.EXPERIMENTS)), "--no-progress"])
    assert exit_.value.code == code
    assert capsys.readouterr().err.strip() == (f"{name} stopped the run; its checkpoint is saved: "
                                               "the same command continues it")
