"""The experiment store: declarations, running at the ci scale, skipping, loading, staleness, reproduce,
and the honesty of the committed results."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from cyclegan_edu import evaluation, experiments
from cyclegan_edu.config import get_preset
from cyclegan_edu.devices import cpu_has_native_bf16
from cyclegan_edu.experiments import EXPERIMENTS, Experiment, Variant

TINY = Experiment("test-tiny", 0, "shapes", "a tiny grid for the tests",
                  (Variant("a", "λ = 10", {"lambda_cycle": 10.0}), Variant("b", "λ = 1", {"lambda_cycle": 1.0})),
                  steps=5, base={"lambda_identity": 0.0, "precision": "fp32"})


@pytest.fixture()
def tiny(monkeypatch):
    monkeypatch.setitem(EXPERIMENTS, TINY.name, TINY)
    return TINY


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory):
    """TINY run once at the ci scale into a module folder: 2 variants × 2 seeds."""
    root = tmp_path_factory.mktemp("results")
    EXPERIMENTS[TINY.name] = TINY
    try:
        written = experiments.run(TINY.name, "ci", out=root, progress=False)
    finally:
        del EXPERIMENTS[TINY.name]
    return root, written


def test_declarations_are_complete():
    from cyclegan_edu import domains
    for name, e in EXPERIMENTS.items():
        assert name == e.name
        assert len(e.seeds) >= 3, f"{name}: a table the text reads needs at least 3 seeds"
        keys = [v.key for v in e.variants]
        assert len(keys) == len(set(keys)), f"{name}: variant keys repeat"
        assert all(k.replace("-", "").isalnum() for k in keys), f"{name}: keys must be folder- and CLI-safe"
        assert e.sheet_way in (None, "AtoB") and (e.sheet_images or 1) >= 1 and e.d_maps <= (e.sheet_images or 6)
        domains.task(e.task)                                    # a registered domain
        for v in e.variants:
            config = e.config("cpu", v, e.seeds[0])
            assert config.iters == e.steps and config.iters_decay == e.steps // 2
            size, blocks = e.base.get("image_size", 64), v.changes.get("n_blocks", 6)       # the cpu scale, or
            assert (config.image_size, config.ngf, config.n_blocks) == (size, 32, blocks)  # what it declares


def test_config_is_preset_then_experiment_then_variant():
    v = TINY.variants[1]
    config = TINY.config("ci", v, seed=1)
    assert (config.lambda_cycle, config.lambda_identity, config.precision, config.seed) == (1.0, 0.0, "fp32", 1)
    assert config.iters == experiments.CI_STEPS and config.image_size == 32
    assert TINY.seeds_for("ci") == (0, 1) and TINY.seeds_for("cpu") == (0, 1, 2)
    big = Experiment("test-128", 5, "labels", "128 px", (Variant("a", "a", {"n_blocks": 9}),), steps=5,
                     base={"image_size": 128, "load_size": 143})
    assert (big.config("cpu", big.variants[0], 0).image_size, big.config("cpu", big.variants[0], 0).load_size) == (128, 143)
    ci = big.config("ci", big.variants[0], 0)
    assert (ci.image_size, ci.load_size, ci.n_blocks) == (32, get_preset("ci").load_size, 9)   # ci keeps its size


def test_unknown_names_give_one_clear_error(tiny):
    with pytest.raises(ValueError, match="unknown experiment 'nope'.*known"):
        experiments.get("nope")
    with pytest.raises(ValueError, match="has no variant 'zzz'; its variants: a, b"):
        experiments.run(TINY.name, "ci", variant="zzz")
    with pytest.raises(ValueError, match="no run with variant=None seed=7"):
        experiments.run(TINY.name, "ci", seed=7)


def test_run_writes_a_record_and_a_sample_sheet(tiny_results):
    root, written = tiny_results
    assert len(written) == 4
    record = json.loads((root / "test-tiny" / "b" / "seed1" / "run.json").read_text())
    assert record["format"] == experiments.FORMAT
    assert (record["variant"], record["seed"], record["preset"], record["steps"]) == ("b", 1, "ci", experiments.CI_STEPS)
    assert record["config"]["lambda_cycle"] == 1.0 and record["config"]["seed"] == 1
    for key in ("G L1 to truth", "F L1 to truth", "G mask IoU", "G KID", "G KID se", "G diversity", "G cycle L1"):
        assert isinstance(record["metrics"][key], float), key
    assert len(record["history"]) == experiments.CI_STEPS and record["history"][-1]["step"] == experiments.CI_STEPS
    assert {"cpu", "threads", "torch", "autocast"} <= set(record["machine"]) and record["machine"]["autocast"] == "fp32"
    assert record["machine"]["threads"] == experiments.THREADS          # the count it trained with
    assert record["samples"] == [] and not (root / "test-tiny" / "b" / "seed1" / "samples.png").exists()
    assert record["data"]["counts"]["trainA"] > 0 and len(record["data"]["pixels_sha1"]) == 16
    assert not list(root.rglob("*.tmp")) and not list(root.rglob("*.pt"))     # no debris, no weights
    assert record["train_seconds"] > 0


def test_sample_sheet_round_trips(tiny, tiny_results):
    root, _ = tiny_results
    results = experiments.load(TINY.name, "ci", root)
    rows = results.samples("a", 0)
    with pytest.raises(ValueError, match="kept no sample sheet .*ask for seed 0"):
        results.samples("a", 1)
    assert list(rows) == ["x", "G(x)", "F(G(x))", "truth of x", "y", "F(y)", "G(F(y))", "truth of y"]
    from cyclegan_edu import domains
    from cyclegan_edu.data import load_folder
    folder = domains.get("shapes", size=32)
    x = load_folder(folder / "testA", 32, limit=evaluation.N_SAMPLES)
    assert rows["x"].shape == x.shape
    assert (rows["x"] - x).abs().max() <= 1 / 127.5 + 1e-6          # 8-bit PNG: within one grey level


def test_load_table_and_spread(tiny, tiny_results):
    root, _ = tiny_results
    results = experiments.load(TINY.name, "ci", root)
    assert results.complete
    values = results.values("G L1 to truth", "a")
    mean, std, n = results.summary("G L1 to truth", "a")
    assert n == 2 and mean == pytest.approx(sum(values) / 2) and std == pytest.approx(abs(values[0] - values[1]) / 2 ** 0.5)
    table = results.table(["G L1 to truth", "G mask IoU"])
    assert table.splitlines()[1].startswith("λ = 10") and f"{mean:.3f} ± {std:.3f}" in table
    # rows of another experiment's results and one-value reference rows follow the experiment's own
    table = results.table(["G L1 to truth", "G mask IoU"], variants=["b"], also=[(results, "a", "other: a")],
                          extra={"truth": {"G L1 to truth": 0.0}})
    rows = table.splitlines()
    assert [r.split("  ")[0] for r in rows[1:]] == ["λ = 1", "other: a", "truth"]
    assert f"{mean:.3f} ± {std:.3f}" in rows[2] and rows[2].rstrip().endswith("2")
    assert "0.000" in rows[3] and "—" in rows[3]


def test_finished_runs_are_skipped(tiny, tiny_results, capsys):
    root, _ = tiny_results
    before = {p: p.stat().st_mtime_ns for p in root.rglob("run.json")}
    assert experiments.run(TINY.name, "ci", out=root, progress=True) == []
    assert "done already" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in root.rglob("run.json")} == before


def test_interrupted_run_resumes_and_matches(tiny, tmp_path, monkeypatch):
    """A run stopped mid-training continues from its checkpoint and ends with the same scores as one that
    was never stopped (fp32: bit-exact)."""
    monkeypatch.setenv("CYCLEGAN_EDU_RUNS", str(tmp_path / "runs"))
    from cyclegan_edu.train import Trainer
    v = TINY.variants[0]
    config = TINY.config("ci", v, 0)
    folder = experiments.task_folder(TINY, v, config)
    work = experiments.runs_dir() / "ci" / TINY.name / v.key / "seed0"
    threads = torch.get_num_threads()
    torch.set_num_threads(experiments.THREADS)         # as run_one trains: the thread count changes the sums
    try:
        partial = Trainer(config, folder, out=work, progress=False)
        partial.fit(steps=2)                               # stopped after 2 of CI_STEPS steps
    finally:
        torch.set_num_threads(threads)
    resumed = experiments.run(TINY.name, "ci", variant="a", seed=0, out=tmp_path / "r1", progress=False)[0]
    fresh = experiments.run_one(TINY, "ci", v, 0, tmp_path / "r2" / "run", progress=False,
                                checkpoints=tmp_path / "fresh")
    one, two = (json.loads((p / "run.json").read_text()) for p in (resumed, fresh))
    assert one["metrics"] == two["metrics"]
    assert [h["G_total"] for h in one["history"]] == [h["G_total"] for h in two["history"]]


def test_stale_records_are_named_with_the_command_to_rerun(tiny, tiny_results, tmp_path):
    import shutil
    root, _ = tiny_results
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    path = copy / TINY.name / "a" / "seed0" / "run.json"
    record = json.loads(path.read_text())
    assert experiments.stale_reason(record) is None
    record["config"]["lambda_cycle"] = 3.0                 # as if the declaration had changed since
    path.write_text(json.dumps(record))
    assert "lambda_cycle: 3.0 → 10.0" in experiments.stale_reason(record)
    with pytest.raises(ValueError, match="stale: config changed.*results run test-tiny --preset ci --variant a --seed 0"):
        experiments.load(TINY.name, "ci", copy)
    line = experiments.describe(TINY, "ci", copy)                  # results list names it, and goes on
    assert "3/4 runs stored (1 stale: results run test-tiny recomputes them)" in line
    record["config"]["lambda_cycle"] = 10.0
    record["evaluation_version"] = -1
    assert "evaluation version -1" in experiments.stale_reason(record)
    record["evaluation_version"] = evaluation.version(TINY.task)
    del record["config"]["upsample"]                       # a field added later, at its default: not stale
    assert experiments.stale_reason(record) is None
    del record["eval_mode"]                                # a record from before eval_mode: scored in eval mode
    assert experiments.stale_reason(record) is None
    record["eval_mode"] = False                            # scored in the official test.py's mode instead
    assert "test-time mode changed: eval_mode False → True" in experiments.stale_reason(record)


def test_reproduce_same_machine_matches_and_catches_a_changed_number(tiny, tiny_results, tmp_path):
    import shutil
    root, _ = tiny_results
    ok, report = experiments.reproduce(TINY.name, progress=False, preset="ci", root=root)
    assert ok, report
    assert "same machine kind" in report and "G L1 to truth" in report
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    path = copy / TINY.name / "a" / "seed0" / "run.json"
    record = json.loads(path.read_text())
    record["metrics"]["G L1 to truth"] += 0.001
    path.write_text(json.dumps(record))
    ok, report = experiments.reproduce(TINY.name, progress=False, preset="ci", root=copy)
    assert not ok
    assert [line for line in report.splitlines() if line.startswith("G L1 to truth")][0].endswith("NO")


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="needs a CPU that computes bf16 natively")
def test_reproduce_at_another_precision_compares_against_the_seeds_spread(tiny, tiny_results):
    root, _ = tiny_results
    ok, report = experiments.reproduce(TINY.name, progress=False, preset="ci", root=root, precision="bf16")
    lines = report.splitlines()
    assert "(fp32), recomputed on" in lines[0] and lines[0].endswith("(bfloat16)")
    assert lines[1].startswith("another machine kind: every score must lie within 3 sd")
    mean, std, _ = experiments.load(TINY.name, "ci", root).summary("G L1 to truth", "a")
    allowed = [line for line in lines if line.startswith("G L1 to truth")][0].split()[-2]
    assert float(allowed) == pytest.approx(3 * std + 0.01, rel=0.05)


def test_cli_results_list_and_errors():
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "cyclegan_edu", "results", *args], capture_output=True, text=True)
    listing = cli("list")
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == list(EXPERIMENTS)
    assert all(" cpu " in line and "× 3 seeds" in line for line in lines)
    bad = cli("run", "nope")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "unknown experiment 'nope'" in bad.stderr
    missing = cli("reproduce")
    assert missing.returncode == 2 and "needs an experiment NAME" in missing.stderr
    misplaced = cli("run", "ch0-shapes", "--precision", "fp32")
    assert misplaced.returncode == 2 and "--precision is an option of results reproduce only" in misplaced.stderr


def _build_task_folders(runs: list[tuple[str, str, int]]) -> None:
    """Build the cpu-scale folders of ``runs`` (experiment, variant, seed) in order, in one process."""
    for name, variant, seed in runs:
        experiment = EXPERIMENTS[name]
        declared = experiment.variant(variant)
        experiments.task_folder(experiment, declared, experiment.config("cpu", declared, seed))


def test_committed_results_are_current():
    """Every committed run must equal what its declaration produces today (config, model, scoring) and
    must have been trained on the data the task builds today. A failure names the command to re-run."""
    import concurrent.futures
    import multiprocessing
    records = {path: json.loads(path.read_text()) for path in sorted(experiments.RESULTS_DIR.rglob("run.json"))}
    # Building every task's data at the cpu scale takes about a minute on one core: build it on two, one task's
    # folders per process (folders of different tasks never share a path), before the checks below find it.
    by_task: dict[str, list] = {}
    for record in records.values():
        if experiments.stale_reason(record) is None:           # a stale record is named by the checks below
            by_task.setdefault(EXPERIMENTS[record["experiment"]].task, []).append(
                (record["experiment"], record["variant"], record["seed"]))
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(_build_task_folders, by_task.values()))
    fingerprints = {}
    for path, record in records.items():
        rerun = (f"cyclegan-edu results run {record['experiment']} --preset cpu --variant {record['variant']} "
                 f"--seed {record['seed']} --force")
        assert record["preset"] == experiments.COMMITTED_PRESET, f"{path}: not a cpu-preset run"
        reason = experiments.stale_reason(record)
        assert reason is None, f"{path} is stale: {reason}; re-run: {rerun}"
        experiment = EXPERIMENTS[record["experiment"]]
        variant = experiment.variant(record["variant"])
        config = experiment.config("cpu", variant, record["seed"])
        key = experiments.task_folder(experiment, variant, config)      # shuffled pairs have their own folder
        if key not in fingerprints:
            fingerprints[key] = experiments.data_fingerprint(key)
        assert record["data"] == fingerprints[key], f"{path}: the task's data changed since; re-run: {rerun}"
        first = record["seed"] == experiment.seeds[0]
        assert (path.parent / "samples.png").exists() == first, f"{path.parent}: sample sheet of the first seed only"
        filmed = first and experiment.film_frames > 0
        assert (path.parent / "film.json").exists() == filmed, f"{path.parent}: a film {'is' if filmed else 'is not'} declared; re-run: {rerun}"
    # Every declared experiment complete comes to about 16 MB (≈ 120 runs): a run's record is ~35 kB, a sample
    # sheet 0.1-0.4 MB and a film 0.9 MB. The limits catch a sheet or series that grows by accident.
    files = [p for p in experiments.RESULTS_DIR.rglob("*") if p.is_file()]
    for file in files:
        assert file.stat().st_size < 1e6, f"{file} takes {file.stat().st_size / 1e6:.1f} MB; keep each file under 1 MB"
    size = sum(p.stat().st_size for p in files)
    assert size < 20e6, f"committed results take {size / 1e6:.1f} MB; keep them small (JSON + small PNGs)"


def test_two_processes_never_train_the_same_run(tiny, tmp_path):
    import os
    v = TINY.variants[0]
    work = tmp_path / "checkpoints" / "ci" / TINY.name / v.key / "seed0"
    work.mkdir(parents=True)
    (work / "running.pid").write_text(str(os.getppid()))          # a live process holds the run
    with pytest.raises(FileExistsError, match=f"being trained by process {os.getppid()}; wait for it"):
        experiments.run_one(TINY, "ci", v, 0, tmp_path / "out", progress=False, checkpoints=tmp_path / "checkpoints" / "ci")
    assert not (tmp_path / "out").exists()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (work / "running.pid").write_text(str(gone.pid))              # left by a killed process: taken over
    experiments.run_one(TINY, "ci", v, 0, tmp_path / "out", progress=False, checkpoints=tmp_path / "checkpoints" / "ci")
    assert (tmp_path / "out" / "run.json").exists() and not (work / "running.pid").exists()


@pytest.mark.skipif(not cpu_has_native_bf16(),
                    reason="bf16 autocast is the default only on CPUs with native bf16")
def test_a_bf16_run_is_bit_reproducible_on_one_machine(tmp_path, monkeypatch):
    """The committed results train under bf16 autocast on one thread: retraining gives the same numbers."""
    bf16 = Experiment("test-bf16", 0, "shapes", "bf16", (Variant("a", "a"),), steps=5,
                      base={"lambda_identity": 0.0, "precision": "bf16"})
    monkeypatch.setitem(EXPERIMENTS, bf16.name, bf16)
    records = []
    for attempt in ("one", "two"):
        path = experiments.run_one(bf16, "ci", bf16.variants[0], 0, tmp_path / attempt, progress=False,
                                   checkpoints=tmp_path / f"checkpoints-{attempt}")
        records.append(json.loads((path / "run.json").read_text()))
    assert records[0]["machine"]["autocast"] == "bfloat16"
    assert records[0]["metrics"] == records[1]["metrics"]
    assert [h["G_total"] for h in records[0]["history"]] == [h["G_total"] for h in records[1]["history"]]


def test_seed_curves_draw_the_mean_over_seeds_of_each_variant(tiny, tiny_results):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from cyclegan_edu import viz
    root, _ = tiny_results
    results = experiments.load(TINY.name, "ci", root)
    ax = viz.seed_curves(results, "G L1 to truth", ylabel="L1 to truth (lower is better)")
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines) == ["λ = 10", "λ = 1"] and len(ax.collections) == 2       # a band per variant
    steps, mean, _ = results.curve("G L1 to truth", "b")
    per_seed = [[p["G L1 to truth"] for p in results.records[("b", s)]["curve"]] for s in (0, 1)]
    assert list(lines["λ = 1"].get_xdata()) == list(steps)
    assert lines["λ = 1"].get_ydata() == pytest.approx([(u + v) / 2 for u, v in zip(*per_seed)])
    assert ax.get_ylabel() == "L1 to truth (lower is better)" and "mean ± sd over seeds" in ax.get_title()
    plt.close(ax.figure)


FILMED = Experiment("test-film", 0, "shapes", "a filmed grid", (Variant("a", "λ = 10", {"lambda_cycle": 10.0}),),
                    steps=5, base={"lambda_identity": 0.0, "precision": "fp32"}, film_frames=3)


def test_a_declared_film_is_recorded_for_the_first_seed_and_changes_no_number(tiny, tiny_results, tmp_path, monkeypatch):
    """film_frames: frames every total_steps // film_frames steps of the first seed, stored beside run.json,
    played by training_film; recording it (extra generator passes in eval mode) leaves the run unchanged."""
    from cyclegan_edu import widgets
    monkeypatch.setitem(EXPERIMENTS, FILMED.name, FILMED)
    written = experiments.run(FILMED.name, "ci", out=tmp_path / "results", progress=False)
    assert [p.name for p in written] == ["seed0", "seed1"]
    assert not (written[1] / "film.json").exists()
    results = experiments.load(FILMED.name, "ci", tmp_path / "results")
    film = results.film("a")
    every = experiments.CI_STEPS // 3
    assert film["every"] == every and [f["step"] for f in film["frames"]] == [2, 4, 6]
    assert all(f["png"] and 0 < f["diversity"] for f in film["frames"])
    assert "step 6" in widgets.training_film(film).data
    # the same run without a film: the same numbers (tiny_results' variant a is the same config)
    plain = json.loads((tiny_results[0] / TINY.name / "a" / "seed0" / "run.json").read_text())
    assert results.records[("a", 0)]["metrics"] == plain["metrics"]
    with pytest.raises(ValueError, match="test-tiny a seed 0 has no stored film .its experiment records none"):
        experiments.load(TINY.name, "ci", tiny_results[0]).film("a")


RECORDED = Experiment("test-series", 0, "shapes", "a filmed grid with measured dynamics",
                      (Variant("a", "λ = 10", {"lambda_cycle": 10.0}),), steps=5,
                      base={"lambda_identity": 0.0, "precision": "fp32"}, film_frames=3, dynamics_every=25)
SERIES = ("curve.json", "dynamics.json", "film.json")      # the series a run keeps beside its checkpoint


@pytest.fixture()
def recorded(tmp_path, monkeypatch):
    """RECORDED declared, with its checkpoints under tmp_path: the (created) checkpoint folder of its first run."""
    monkeypatch.setitem(EXPERIMENTS, RECORDED.name, RECORDED)
    monkeypatch.setenv("CYCLEGAN_EDU_RUNS", str(tmp_path / "runs"))
    work = experiments.runs_dir() / "ci" / RECORDED.name / RECORDED.variants[0].key / "seed0"
    work.mkdir(parents=True)
    return work


def _train_by_hand(work, steps: int):
    """RECORDED's first run trained ``steps`` steps in ``work``, its three series recorded as run_one
    records them. Returns the trainer and the film."""
    from cyclegan_edu.train import Trainer
    v = RECORDED.variants[0]
    config = RECORDED.config("ci", v, 0)
    trainer = Trainer(config, experiments.task_folder(RECORDED, v, config), out=work, progress=False)
    scored_on = experiments.test_folder(RECORDED, config)
    experiments._track_curve(trainer, scored_on, v, work / "curve.json")
    experiments._track_dynamics(trainer, scored_on, config, RECORDED.dynamics_every, work / "dynamics.json")
    film = experiments._record_film(trainer, scored_on, config, RECORDED.film_frames, work / "film.json")
    trainer.fit(steps=steps)
    return trainer, film


def _resume(tmp_path) -> tuple[dict, dict]:
    """experiments.run on RECORDED's first run: its record and its film."""
    path = experiments.run(RECORDED.name, "ci", variant="a", seed=0, out=tmp_path / "results", progress=False)[0]
    return json.loads((path / "run.json").read_text()), json.loads((path / "film.json").read_text())


def test_a_resumed_run_keeps_its_series_points_once(recorded, tmp_path):
    """Stopped at its step-3 checkpoint, the run continues its curve (a point every step of the ci run),
    dynamics (every 2) and film (a frame every 2): the points up to the checkpoint are kept as stored;
    points stored after it (a process killed between the two) are dropped and measured again, never doubled."""
    work = recorded
    trainer, film = _train_by_hand(work, steps=3)
    assert trainer.checkpoint_step == 3
    saved = {name: json.loads((work / name).read_text()) for name in SERIES}
    assert [p["step"] for p in saved["curve.json"]] == [0, 1, 2, 3]
    assert [p["step"] for p in saved["dynamics.json"]] == [0, 2]
    assert [f["step"] for f in saved["film.json"]["frames"]] == [2] and saved["film.json"]["frames"] == film.frames
    # a point past the checkpoint in each: step 4, a copy of the first point
    past = {"curve.json": saved["curve.json"][0], "dynamics.json": saved["dynamics.json"][0],
            "film.json": saved["film.json"]["frames"][0]}
    (work / "curve.json").write_text(json.dumps(saved["curve.json"] + [dict(past["curve.json"], step=4)]))
    (work / "dynamics.json").write_text(json.dumps(saved["dynamics.json"] + [dict(past["dynamics.json"], step=4)]))
    (work / "film.json").write_text(json.dumps(dict(saved["film.json"],
                                                    frames=saved["film.json"]["frames"] + [dict(past["film.json"], step=4)])))
    record, film = _resume(tmp_path)
    curve, dynamics, frames = record["curve"], record["dynamics"], film["frames"]
    assert [p["step"] for p in curve] == list(range(experiments.CI_STEPS + 1))
    assert [p["step"] for p in dynamics] == [0, 2, 4, 6]
    assert [f["step"] for f in frames] == [2, 4, 6]
    assert curve[:4] == saved["curve.json"] and dynamics[:2] == saved["dynamics.json"]
    assert frames[:1] == saved["film.json"]["frames"]
    # step 4 measured again on the resumed model, not the stored copy of the first point
    assert {k: v for k, v in curve[4].items() if k != "step"} != {k: v for k, v in past["curve.json"].items() if k != "step"}
    assert {k: v for k, v in dynamics[2].items() if k != "step"} != {k: v for k, v in past["dynamics.json"].items() if k != "step"}
    assert frames[1]["png"] != past["film.json"]["png"]


def test_a_series_write_cut_short_leaves_the_previous_file_for_the_resume(recorded, tmp_path, monkeypatch):
    """Every series is replaced whole (written to ``<name>.tmp``, then renamed): a stop or a full disk in the
    middle of a write leaves the previous file whole, and the run resumes from it."""
    import errno
    from pathlib import Path
    work = recorded
    trainer, _ = _train_by_hand(work, steps=2)
    before = {name: (work / name).read_text() for name in SERIES}
    write_text = Path.write_text

    def cut_short(self, text, *args, **kwargs):          # half the text reaches the disk, then the write fails
        write_text(self, text[:len(text) // 2], *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device", str(self))
    assert len(trainer.callbacks) == len(SERIES)
    with monkeypatch.context() as patched:
        patched.setattr(Path, "write_text", cut_short)
        for _, measure in trainer.callbacks:
            with pytest.raises(OSError, match="No space left"):
                measure(trainer, trainer.history[-1])
    assert {name: (work / name).read_text() for name in SERIES} == before
    record, film = _resume(tmp_path)                      # from the step-2 checkpoint
    assert [p["step"] for p in record["curve"]] == list(range(experiments.CI_STEPS + 1))
    assert [p["step"] for p in record["dynamics"]] == [0, 2, 4, 6] and [f["step"] for f in film["frames"]] == [2, 4, 6]


def test_a_checkpoint_older_than_its_series_is_trained_again_from_step_0(recorded, tmp_path, capsys):
    """A checkpoint trained before the experiment declared its dynamics and film (or by an older version)
    cannot give them their early points: the run says so in one line and trains again from step 0."""
    work = recorded
    _train_by_hand(work, steps=3)
    for name in ("dynamics.json", "film.json"):
        (work / name).unlink()
    record, film = _resume(tmp_path)
    assert [p["step"] for p in record["dynamics"]] == [0, 2, 4, 6] and [f["step"] for f in film["frames"]] == [2, 4, 6]
    assert [p["step"] for p in record["curve"]] == list(range(experiments.CI_STEPS + 1))
    err = capsys.readouterr().err
    assert (f"{RECORDED.name} a seed 0: its checkpoint of step 3 has no dynamics.json and no film.json from step 0 "
            "(trained before the experiment recorded them); training it again from step 0") in err


@pytest.mark.parametrize("name", SERIES)
def test_a_series_file_cut_short_by_an_older_version_is_one_clear_error(name, recorded, tmp_path):
    """Older versions wrote the curve and the dynamics in place: a file they left cut short stops the resume
    with one line naming it and what to do, and is left as it is."""
    work = recorded
    damaged = '{"format": "cyclegan_edu.film/1", "frames": [{"step": 2, "lr"' if name == "film.json" else '[{"step": 0, "G'
    (work / name).write_text(damaged)
    with pytest.raises(ValueError) as err:
        _resume(tmp_path)
    message = str(err.value)
    assert message.startswith(f"{work / name} is not whole JSON (") and "\n" not in message
    assert message.endswith(f"delete the folder {work} to train this run again from step 0")
    assert (work / name).read_text() == damaged


MEASURED = Experiment("test-dynamics", 0, "shapes", "a grid with measured dynamics",
                      (Variant("a", "λ = 10", {"lambda_cycle": 10.0}),), steps=5,
                      base={"lambda_identity": 0.0, "precision": "fp32"}, dynamics_every=25,
                      sheet_images=3, sheet_way="AtoB")


def test_declared_dynamics_are_measured_every_k_steps_without_changing_the_run(tiny, tiny_results, tmp_path, monkeypatch):
    """dynamics_every: D's mean scores on fixed real images and translations, and the diversity ratio, for
    both generators at step 0 and every k steps (here k = 25 > the ci run's 6 steps: every 6 // 3, so that
    a short run still has MIN_DYNAMICS_POINTS points); the step-0 point equals a hand computation on the freshly
    initialised model; measuring changes no number of the run (tiny's variant a has the same config)."""
    from cyclegan_edu.data import load_folder
    from cyclegan_edu.metrics import output_diversity
    from cyclegan_edu.train import Trainer
    monkeypatch.setitem(EXPERIMENTS, MEASURED.name, MEASURED)
    experiments.run(MEASURED.name, "ci", seed=0, out=tmp_path / "results", progress=False)
    results = experiments.load(MEASURED.name, "ci", tmp_path / "results")
    points = results.dynamics("a", 0)
    assert [p["step"] for p in points] == [0, 2, 4, 6]
    assert set(points[0]) == {"step"} | {f"{g} {k}" for g in "GF" for k in ("D real", "D fake", "diversity ratio")}
    plain = json.loads((tiny_results[0] / TINY.name / "a" / "seed0" / "run.json").read_text())
    assert results.records[("a", 0)]["metrics"] == plain["metrics"]
    # by hand, at step 0: D_B on real B and on G(A); diversity of G(A) over that of A
    config = MEASURED.config("ci", MEASURED.variants[0], 0)
    folder = experiments.test_folder(MEASURED, config)
    model = Trainer(config, experiments.task_folder(MEASURED, MEASURED.variants[0], config), progress=False).model
    A = load_folder(folder / "testA", config.image_size, limit=experiments.DYNAMICS_IMAGES)
    B = load_folder(folder / "testB", config.image_size, limit=experiments.DYNAMICS_IMAGES)
    with torch.no_grad():
        fake = model.translate(A, "AtoB")
        model.D_B.eval()
        real_score, fake_score = model.D_B(B).mean().item(), model.D_B(fake).mean().item()
    assert points[0]["G D real"] == pytest.approx(real_score, abs=1e-5)
    assert points[0]["G D fake"] == pytest.approx(fake_score, abs=1e-5)
    assert points[0]["G diversity ratio"] == pytest.approx(output_diversity(fake) / output_diversity(A), abs=1e-5)
    # its sample sheet: the A → B rows only, 3 images (sheet_way, sheet_images)
    assert results.records[("a", 0)]["samples"] == list(experiments.A_TO_B_ROWS)
    sheet = results.samples("a")
    assert list(sheet) == list(experiments.A_TO_B_ROWS) and sheet["x"].shape == (3, 3, 32, 32)
    assert (sheet["x"] - A[:3]).abs().max() <= 1 / 127.5 + 1e-6
    with pytest.raises(ValueError, match="test-tiny a seed 0 has no measured dynamics"):
        experiments.load(TINY.name, "ci", tiny_results[0]).dynamics("a", 0)


def test_the_recorded_commit_is_dirty_for_changed_code_not_for_new_results(tmp_path):
    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)
    (tmp_path / "cyclegan_edu" / "results").mkdir(parents=True)
    (tmp_path / "cyclegan_edu" / "code.py").write_text("x = 1\n")
    git("init", "-q")
    git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "init", "--allow-empty")
    git("add", "-A")
    git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "code")
    (tmp_path / "cyclegan_edu" / "results" / "run.json").write_text("{}")      # another run's record
    clean = experiments._git_commit(tmp_path)
    assert clean and not clean.endswith("+dirty")
    (tmp_path / "cyclegan_edu" / "code.py").write_text("x = 2\n")
    assert experiments._git_commit(tmp_path) == clean + "+dirty"


MAPPED = Experiment("test-maps", 0, "shapes", "a grid that keeps D's maps",
                    (Variant("a", "pix2pix", {}, model="pix2pix"),), steps=5,
                    base={"precision": "fp32"}, d_maps=3)


def test_declared_d_maps_are_kept_for_the_first_seed_and_read_back(tmp_path, monkeypatch):
    """d_maps: the final D's score maps on the sample sheet's first truths and translations, as an 8-bit
    PNG of the first seed; read back within one grey level of the scores the trained D gives."""
    monkeypatch.setitem(EXPERIMENTS, MAPPED.name, MAPPED)
    monkeypatch.setenv("CYCLEGAN_EDU_RUNS", str(tmp_path / "runs"))
    written = experiments.run(MAPPED.name, "ci", out=tmp_path / "results", progress=False)
    assert (written[0] / "d_maps.png").exists() and not (written[1] / "d_maps.png").exists()
    results = experiments.load(MAPPED.name, "ci", tmp_path / "results")
    maps = results.d_maps("a")
    from cyclegan_edu.train import Trainer
    from cyclegan_edu.data import load_folder
    from cyclegan_edu.diagnostics import score_map
    config = MAPPED.config("ci", MAPPED.variants[0], 0)
    trained = Trainer(config, experiments.task_folder(MAPPED, MAPPED.variants[0], config), model="pix2pix",
                      out=experiments.runs_dir() / "ci" / MAPPED.name / "a" / "seed0", resume=True, progress=False)
    assert trained.step == experiments.CI_STEPS                       # the finished run, reloaded
    folder = experiments.test_folder(MAPPED, config)
    x = load_folder(folder / "testA", config.image_size, limit=3)
    truth = load_folder(folder / "testA_gt", config.image_size, limit=3)
    real = score_map(trained.model, truth, "AtoB", x)
    fake = score_map(trained.model, trained.model.translate(x, "AtoB").cpu(), "AtoB", x)
    step = (experiments.D_MAP_RANGE[1] - experiments.D_MAP_RANGE[0]) / 255
    assert maps["real"].shape == real.shape and maps["fake"].shape == fake.shape and real.shape[0] == 3
    assert (maps["real"] - real.clamp(*experiments.D_MAP_RANGE)).abs().max() <= step / 2 + 1e-6
    assert (maps["fake"] - fake.clamp(*experiments.D_MAP_RANGE)).abs().max() <= step / 2 + 1e-6
    with pytest.raises(ValueError, match="kept no discriminator maps"):
        experiments.Results(MAPPED, "ci", {}, tmp_path).d_maps("a")              # no stored run
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from cyclegan_edu import viz
    fig = viz.score_map_sheet(results, "pix2pix's G(x)", image=1)              # one row: image, map, image, map
    true_ax, real_ax, fake_ax, fake_map_ax = fig.axes[:4]
    assert len(fig.axes) == 5 and fake_ax.get_title() == "pix2pix's G(x)"      # and the colour bar
    assert real_ax.images[0].get_array().data.tolist() == maps["real"][1].numpy().tolist()
    assert fake_map_ax.get_title() == f"D's {fake.shape[1]}×{fake.shape[2]} map, mean {maps['fake'][1].mean():.2f}"
    assert true_ax.images[0].get_array().data == pytest.approx(viz.to_numpy_image(results.samples("a")["truth of x"][1]))
    plt.close(fig)
    small = viz.score_map_sheet(results, image=1, scale=0.5)                  # one row, half the size
    assert tuple(small.get_size_inches()) == pytest.approx((4.5, 1.15))
    plt.close(small)


def test_a_run_records_the_commit_of_the_code_it_imported(monkeypatch):
    """Read once per process, at its first run: a commit made while a run trains is not the run's."""
    commits = iter(["abc123", "def456"])
    monkeypatch.setattr(experiments, "_git_commit", lambda root=None: next(commits))
    experiments._code_commit.cache_clear()
    try:
        assert experiments._code_commit() == "abc123" and experiments._code_commit() == "abc123"
    finally:
        experiments._code_commit.cache_clear()


SHARED = Experiment("test-shared", 5, "shapes", "one training scored two ways",
                    (Variant("bn", "batch norm", {"norm": "batch"}),
                     Variant("bn-own", "batch norm, own statistics", {"norm": "batch"}, eval_mode=False, trains_as="bn")),
                    steps=5, base={"lambda_identity": 0.0, "precision": "fp32"}, seeds=(0, 1, 2), d_maps=2)


def test_a_variant_that_trains_as_another_is_scored_from_its_networks_without_training_again(tmp_path, monkeypatch):
    """trains_as: batchnorm-own of chapter 5 is batchnorm's networks scored in the official test.py's mode.
    Run after its twin, it trains nothing (same history, no work folder of its own) and scores differently."""
    monkeypatch.setitem(EXPERIMENTS, SHARED.name, SHARED)
    monkeypatch.setenv("CYCLEGAN_EDU_RUNS", str(tmp_path / "runs"))
    out = tmp_path / "results"
    experiments.run(SHARED.name, "ci", variant="bn", seed=0, out=out, progress=False)
    experiments.run(SHARED.name, "ci", variant="bn-own", seed=0, out=out, progress=False)
    assert not (experiments.runs_dir() / "ci" / SHARED.name / "bn-own").exists()
    twin, own = (json.loads((out / SHARED.name / k / "seed0" / "run.json").read_text()) for k in ("bn", "bn-own"))
    assert own["history"] == twin["history"] and own["config"] == twin["config"] and own["steps"] == twin["steps"]
    assert own["train_seconds"] == twin["train_seconds"]                  # the step times of the one training
    assert (own["eval_mode"], twin["eval_mode"]) == (False, True)
    assert own["metrics"]["G L1 to truth"] != twin["metrics"]["G L1 to truth"]
    # D's maps of the translations are made in the variant's mode too: D_B on G's own-statistics outputs
    from cyclegan_edu.data import load_folder
    from cyclegan_edu.diagnostics import score_map
    from cyclegan_edu.train import Trainer
    config = SHARED.config("ci", SHARED.variants[0], 0)
    trained = Trainer(config, experiments.task_folder(SHARED, SHARED.variants[0], config), resume=True, progress=False,
                      out=experiments.runs_dir() / "ci" / SHARED.name / "bn" / "seed0")
    x = load_folder(experiments.test_folder(SHARED, config) / "testA", config.image_size, limit=2)
    fake = score_map(trained.model, trained.model.translate(x, "AtoB", eval_mode=False), "AtoB").clamp(*experiments.D_MAP_RANGE)
    results = experiments.load(SHARED.name, "ci", out)
    step = (experiments.D_MAP_RANGE[1] - experiments.D_MAP_RANGE[0]) / 255
    assert (results.d_maps("bn-own")["fake"] - fake).abs().max() <= step / 2 + 1e-6
    assert (results.d_maps("bn")["fake"] - fake).abs().max() > step


def test_trains_as_must_name_a_variant_with_the_same_training():
    with pytest.raises(ValueError, match="trains_as='a'.*same changes"):
        Experiment("test-bad", 5, "shapes", "", (Variant("a", "a", {"norm": "batch"}),
                                                 Variant("b", "b", {"norm": "instance"}, trains_as="a")), steps=5)
    with pytest.raises(ValueError, match="trains_as='c'"):
        Experiment("test-bad", 5, "shapes", "", (Variant("a", "a"), Variant("b", "b", trains_as="c")), steps=5)
