"""The procedural domains: deterministic, in the official layout, with ground truth that matches."""
from __future__ import annotations

import colorsys

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan_edu import domains
from cyclegan_edu.cli import main
from cyclegan_edu.data import load_folder
from cyclegan_edu.domains import procedural as P
from cyclegan_edu.metrics import mask_iou

TASKS = ("shapes", "labels", "seasons", "tint", "reshape", "distractor")


def tensor(array: np.ndarray) -> torch.Tensor:
    """(S, S, 3) uint8 → (1, 3, S, S) in [-1, 1], as data.to_tensor."""
    return torch.from_numpy(array).permute(2, 0, 1)[None].float() / 127.5 - 1


def files(folder):
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Each task at 32 px with 4 training and 3 test images per domain, seed 5."""
    root = tmp_path_factory.mktemp("procedural")
    return {name: domains.generate(name, root / name, size=32, n_train=4, n_test=3, seed=5) for name in TASKS}


@pytest.mark.parametrize("name", TASKS)
def test_layout_counts_and_sizes(built, name):
    folder = built[name]
    truth = {"shapes": "mask", "labels": "labels", "distractor": "parts"}.get(name)
    expected = {"trainA": 4, "trainB": 4, "testA": 3, "testB": 3, "testA_gt": 3, "testB_gt": 3}
    if truth:
        expected.update({f"testA_{truth}": 3, f"testB_{truth}": 3})
    found = {p.name: len(list(p.glob("*.png"))) for p in folder.iterdir() if p.is_dir()}
    assert found == expected
    assert [p.name for p in sorted((folder / "testA").iterdir())] == ["0000.png", "0001.png", "0002.png"]
    with Image.open(folder / "testB" / "0002.png") as img:
        assert (img.size, img.mode) == ((32, 32), "RGB")
    if truth:
        with Image.open(folder / f"testA_{truth}" / "0000.png") as img:
            assert (img.size, img.mode) == ((32, 32), "L")


@pytest.mark.parametrize("name", TASKS)
def test_each_image_is_its_scene_rendered_alone(built, name):
    """Any file can be made again from (seed, split, index) alone, in both domains."""
    folder = built[name]
    scene = P.make_scene(name, 5, "testA", 2)
    with Image.open(folder / "testA" / "0002.png") as a, Image.open(folder / "testA_gt" / "0002.png") as gt:
        assert np.array_equal(np.asarray(a), P.render(name, scene, "A", 32))
        assert np.array_equal(np.asarray(gt), P.render(name, scene, "B", 32))
    scene = P.make_scene(name, 5, "trainB", 3)
    with Image.open(folder / "trainB" / "0003.png") as b:
        assert np.array_equal(np.asarray(b), P.render(name, scene, "B", 32))


@pytest.mark.parametrize("name", TASKS)
def test_unpaired_training_sets_come_from_different_scenes(name):
    for i in range(5):
        a_scene, b_scene = P.make_scene(name, 0, "trainA", i), P.make_scene(name, 0, "trainB", i)
        assert a_scene != b_scene
        assert not np.array_equal(P.render(name, a_scene, "A", 32), P.render(name, b_scene, "A", 32))


def test_same_seed_same_bytes_other_seed_other_images(built, tmp_path):
    again = domains.generate("shapes", tmp_path / "again", size=32, n_train=4, n_test=3, seed=5)
    other = domains.generate("shapes", tmp_path / "other", size=32, n_train=4, n_test=3, seed=6)
    first = built["shapes"]
    assert files(first) == files(again) == files(other)
    for rel in files(first):
        assert (first / rel).read_bytes() == (again / rel).read_bytes(), rel
    differ = [rel for rel in files(first) if rel.parent.name == "trainA"
              and (first / rel).read_bytes() != (other / rel).read_bytes()]
    assert len(differ) == 4


@pytest.mark.parametrize("size", [32, 64])
def test_shapes_object_mask_recovers_the_true_mask_in_both_domains(size):
    for split in ("testA", "testB"):
        for i in range(25):
            scene = P.make_scene("shapes", 3, split, i)
            truth = torch.from_numpy(P.shapes_mask(scene, size))[None]
            assert 0 < int(truth.sum()) < size * size * 0.7
            for domain in "AB":
                found = P.object_mask(tensor(P.render("shapes", scene, domain, size)), domain)
                assert mask_iou(found, truth) > 0.9, (split, i, domain)


def test_shapes_files_mask_matches_both_renderings(built):
    folder = built["shapes"]
    for split, domain, other in (("testA", "A", "B"), ("testB", "B", "A")):
        masks = load_folder(folder / f"{split}_mask", 32)[:, 0] > 0
        assert mask_iou(P.object_mask(load_folder(folder / split, 32), domain), masks) > 0.9
        assert mask_iou(P.object_mask(load_folder(folder / f"{split}_gt", 32), other), masks) > 0.9
    # the masks are of the other domain wrongly applied: a check that object_mask is domain-specific
    a_images = load_folder(folder / "testA", 32)
    assert mask_iou(P.object_mask(a_images, "B"), load_folder(folder / "testA_mask", 32)[:, 0] > 0) < 0.5


def test_labels_ground_truth_reads_back_as_the_true_labels(built):
    folder = built["labels"]
    label_files = sorted((folder / "testB_labels").iterdir())
    read_back = P.colors_to_labels(load_folder(folder / "testB_gt", 32))
    for i, path in enumerate(label_files):
        truth = P.label_map(P.make_scene("labels", 5, "testB", i), 32)
        assert np.array_equal(read_back[i].numpy(), truth)
        with Image.open(path) as img:
            assert np.array_equal(np.asarray(img), truth)
    assert len(np.unique(read_back.numpy())) >= 4       # a scene shows most classes


def test_labels_palette_round_trip():
    assert P.PALETTE.shape == (len(P.LABEL_CLASSES), 3) and P.PALETTE.dtype == np.uint8
    distances = np.linalg.norm(P.PALETTE[:, None].astype(float) - P.PALETTE[None].astype(float), axis=-1)
    assert distances[~np.eye(len(P.PALETTE), dtype=bool)].min() > 100
    labels = torch.arange(6).reshape(1, 2, 3)
    colours = P.labels_to_colors(labels)
    assert colours.shape == (1, 3, 2, 3)
    assert torch.equal(P.colors_to_labels(colours), labels)
    assert torch.equal(P.colors_to_labels(colours + 0.1), labels)    # nearest colour, not exact match
    with pytest.raises(ValueError, match="0..5"):
        P.labels_to_colors(torch.tensor([[6]]))


def test_tint_keeps_hues_and_a_colourless_ground():
    """A hue rotation must map B onto itself: the ground has no hue, and B keeps A's hue per pixel."""
    for i in range(10):
        scene = P.make_scene("tint", 0, "testA", i)
        a, b = (P.render("tint", scene, d, 32) for d in "AB")
        ground = (a == 128).all(-1)                       # A: flat grey ground, saturated pieces
        assert 0 < ground.sum() < 32 * 32
        assert (np.ptp(b[ground], -1) == 0).all()         # B's ground is grey too (R = G = B)
        pieces = ~ground & (b.max(-1) > 50)
        for pa, pb in zip(a[pieces] / 255, b[pieces] / 255):
            ha, hb = colorsys.rgb_to_hsv(*pa)[0], colorsys.rgb_to_hsv(*pb)[0]
            assert min(abs(ha - hb), 1 - abs(ha - hb)) * 360 < 4
        assert not np.array_equal(a, b)


def test_seasons_change_the_ground_not_the_houses():
    for i in range(5):
        scene = P.make_scene("seasons", 0, "testB", i)
        summer, winter = (P.render("seasons", scene, d, 64).astype(float) for d in "AB")
        labels = P.label_map(scene, 64)
        change = np.abs(summer - winter).mean(-1)
        for cls in (P.BUILDING, P.ROAD):
            assert change[labels == cls].mean() < 15          # the colder light and the grain only
        assert change[labels == P.GRASS].mean() > 60          # grass under snow


def test_reshape_changes_the_outline_and_nothing_else_of_each_object():
    """Ellipse in A, square in B: the same centre, area and colour, an outline the input's does not give
    (IoU about 0.5); reshape_mask finds exactly the drawn objects in both domains."""
    size = 64
    for i in range(20):
        scene = P.make_scene("reshape", 0, "testA", i)
        a, b = (P.render("reshape", scene, d, size) for d in "AB")
        for domain, image in (("A", a), ("B", b)):
            assert torch.equal(P.reshape_mask(tensor(image))[0], torch.from_numpy(P.token_mask(scene, domain, size)))
        assert 1 <= len(scene.tokens) <= 3
        y, x = P._grid(size)
        for token in scene.tokens:
            ellipse, square = token.inside(y, x, "A"), token.inside(y, x, "B")
            assert abs(int(square.sum()) - int(ellipse.sum())) < 0.08 * ellipse.sum()        # the same area
            assert abs(y[square].mean() - y[ellipse].mean()) < 0.5 / size                      # the same centre
            assert abs(x[square].mean() - x[ellipse].mean()) < 0.5 / size
            assert 0.45 < (ellipse & square).sum() / (ellipse | square).sum() < 0.56           # another outline
            hues = [colorsys.rgb_to_hsv(*(im[m].mean(0) / 255))[0] for im, m in ((a, ellipse), (b, square))]
            assert min(abs(hues[0] - hues[1]), 1 - abs(hues[0] - hues[1])) * 360 < 3          # the same colour
        ground = ~P.token_mask(scene, "A", size) & ~P.token_mask(scene, "B", size)
        assert np.abs(a[ground].mean(0) - b[ground].mean(0)).max() > 20                        # the ground changes


def test_distractor_rocks_are_in_A_scenes_only_and_the_truth_keeps_them():
    with_rock = [P.make_scene("distractor", 0, "trainA", i).rock is not None for i in range(200)]
    assert 0.35 < np.mean(with_rock) < 0.6
    for split in ("trainB", "testB"):                 # no zebra scene shows a rock, train or test
        assert all(P.make_scene("distractor", 0, split, i).rock is None for i in range(100))
    seen = 0
    for i in range(30):
        scene = P.make_scene("distractor", 2, "testA", i)
        a, b = (P.render("distractor", scene, d, 64) for d in "AB")
        parts = P.distractor_parts(scene, 64)
        shapes = P.make_scene("shapes", 2, "testA", i)
        assert scene.shapes == shapes                  # the animals of the shapes task's scene
        assert np.array_equal(a[parts != P.ROCK], P.render("shapes", shapes, "A", 64)[parts != P.ROCK])
        if scene.rock is None:
            assert not (parts == P.ROCK).any()
            continue
        seen += 1
        rock = parts == P.ROCK
        assert 40 < rock.sum() < 400
        assert np.array_equal(a[rock], b[rock])        # the truth leaves the rock exactly as it is
        assert (a[~rock] == b[~rock]).all(-1).mean() < 0.01                       # everything else changes
        near = np.pad(rock, 1)[:-2, 1:-1] | np.pad(rock, 1)[2:, 1:-1] | np.pad(rock, 1)[1:-1, :-2] | np.pad(rock, 1)[1:-1, 2:]
        assert not (near & (parts == P.ANIMAL)).any()  # apart from the animals
        rgb = a[rock].astype(float)
        assert (rgb[:, 0] <= rgb[:, 1]).all() and np.ptp(rgb.mean(0)) < 15       # grey, never brown
    assert seen >= 8


def test_distractor_files_hold_the_parts_of_each_test_image(built):
    folder = built["distractor"]
    for split in ("testA", "testB"):
        parts = P.read_parts(folder / f"{split}_parts", 32)
        assert parts.shape == (3, 32, 32) and parts.dtype == torch.uint8
        for i in range(3):
            assert np.array_equal(parts[i].numpy(), P.distractor_parts(P.make_scene("distractor", 5, split, i), 32))
    assert not (P.read_parts(folder / "testB_parts", 32) == P.ROCK).any()
    with pytest.raises(ValueError, match="holds 32 px parts maps, not 64 px"):
        P.read_parts(folder / "testA_parts", 64)


def test_paired_layout_is_a_beside_b(tmp_path):
    out = domains.generate("labels", tmp_path / "pairs", size=32, n_train=3, n_test=2, seed=1, paired=True)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["test", "train"]
    assert len(list((out / "train").iterdir())) == 3 and len(list((out / "test").iterdir())) == 2
    with Image.open(out / "test" / "0001.png") as img:
        ab = np.asarray(img)
    assert ab.shape == (32, 64, 3)
    scene = P.make_scene("labels", 1, "testA", 1)   # the scenes of testA: same test inputs as CycleGAN
    assert np.array_equal(ab[:, :32], P.render("labels", scene, "A", 32))
    assert np.array_equal(ab[:, 32:], P.render("labels", scene, "B", 32))


def test_every_image_is_rendered_once(tmp_path, monkeypatch):
    """Speed by counts: one render per written image, whatever the task size."""
    calls = []
    spec = P.PROCEDURES["tint"]
    monkeypatch.setitem(P.PROCEDURES, "tint", P.Procedure(spec.description, spec.sample,
                                                          lambda *a: calls.append(a[1]) or spec.render(*a)))
    P.build("tint", tmp_path, 32, 40, 7, 0, False)
    assert len(calls) == 2 * 40 + 4 * 7
    assert calls.count("A") == calls.count("B") == 40 + 2 * 7
    assert len(files(tmp_path)) == 2 * 40 + 4 * 7


@pytest.mark.parametrize("size", [96, 256])
def test_any_size_from_32_to_256(size):
    for name in TASKS:
        scene = P.make_scene(name, 0, "testA", 0)
        for domain in "AB":
            assert P.render(name, scene, domain, size).shape == (size, size, 3)


@pytest.mark.parametrize("kwargs, message", [
    ({"size": 16}, "size=16"), ({"size": 300}, "size=300"), ({"size": 32.5}, "size=32.5"),
    ({"n_train": 0}, r"n_train=0 \(--n\)"), ({"n_test": -1}, "n_test=-1"), ({"seed": -2}, "seed=-2")])
def test_bad_arguments_give_clear_errors(tmp_path, kwargs, message):
    args = {"size": 32, "n_train": 2, "n_test": 2, "seed": 0} | kwargs
    with pytest.raises(ValueError, match=message):
        domains.generate("shapes", tmp_path / "x", **args)


def test_unknown_task_and_non_empty_folder(tmp_path):
    with pytest.raises(ValueError, match="unknown domain task 'zebras'.*shapes"):
        domains.generate("zebras", tmp_path / "x")
    out = tmp_path / "taken"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="--force"):
        domains.generate("tint", out, n_train=1, n_test=1)
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    domains.generate("tint", out, n_train=1, n_test=1, force=True)
    assert (out / "trainA" / "0000.png").exists() and (out / "mine.txt").read_text() == "keep me"


def test_cli_lists_and_makes_tasks(tmp_path, capsys):
    assert main(["toy", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name in TASKS:
        assert any(line.split()[0] == name and "procedural" in line for line in lines)
    assert main(["toy", "tint", "--out", str(tmp_path / "t"), "--size", "32", "--n", "3"]) == 0
    assert len(list((tmp_path / "t" / "trainB").iterdir())) == 3
    assert len(list((tmp_path / "t" / "testB_gt").iterdir())) == P.DEFAULT_N_TEST
    capsys.readouterr()
    assert main(["toy", "tint", "--out", str(tmp_path / "u"), "--size", "8"]) == 2
    err = capsys.readouterr().err
    assert "size=8" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("fraction, moved", [(0.0, 0), (0.5, 5), (1.0, 10)])
def test_shuffled_pairs_move_exactly_the_chosen_b_halves(tmp_path, fraction, moved):
    """Chapter 1's wrong pairs: A halves stay, the chosen B halves go to another file (none keeps its
    own), the others and test/ are unchanged."""
    import numpy as np
    from PIL import Image
    from cyclegan_edu.domains import generate, shuffled_pairs
    paired = generate("shapes", tmp_path / "pairs", size=32, n_train=10, n_test=3, paired=True)
    out = shuffled_pairs(paired, fraction)
    assert (out / ".complete").read_text().startswith(f"{moved} of 10")
    names = sorted(p.name for p in (paired / "train").iterdir())
    load = lambda folder, name: np.asarray(Image.open(folder / name).convert("RGB"))
    originals = {n: load(paired / "train", n) for n in names}
    kept = 0
    for n in names:
        new = load(out / "train", n)
        assert np.array_equal(new[:, :32], originals[n][:, :32])                          # A half kept
        assert any(np.array_equal(new[:, 32:], o[:, 32:]) for o in originals.values())   # a real B half
        kept += np.array_equal(new[:, 32:], originals[n][:, 32:])
    assert kept == 10 - moved
    assert sorted(p.name for p in (out / "test").iterdir()) == sorted(p.name for p in (paired / "test").iterdir())
    assert shuffled_pairs(paired, fraction) == out                                          # built once
    with pytest.raises(ValueError, match="fraction=1.5"):
        shuffled_pairs(paired, 1.5)
