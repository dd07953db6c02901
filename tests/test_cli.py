"""The command line end to end: train, resume, translate (a run or a weights file), info, and one
clear line with exit code 2 for every bad argument."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import torch
from PIL import Image

from cyclegan_edu.cli import main
from cyclegan_edu.train import load_model, read_checkpoint


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """``main(argv)``'s exit code (argparse's own exits included), stdout and stderr."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit:
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cyclegan-edu") and " error: " in lines[0], err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


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
