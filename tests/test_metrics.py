"""Metrics on hand-made inputs whose answers are worked out by hand."""
from __future__ import annotations

import math

import pytest
import torch

from cyclegan_edu import domains, metrics
from cyclegan_edu.data import load_folder


def full(value: float, n: int = 2, size: int = 16) -> torch.Tensor:
    return torch.full((n, 3, size, size), value)


def test_l1_is_in_minus_one_to_one_units():
    assert metrics.l1(full(0.0), full(0.5)) == pytest.approx(0.5)
    assert metrics.l1(full(-1.0), full(1.0)) == pytest.approx(2.0)
    x = full(0.0)
    y = x.clone()
    y[:, 0] = 0.3                                   # one channel of three moves by 0.3
    assert metrics.l1(x, y) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="same shape"):
        metrics.l1(full(0.0, n=2), full(0.0, n=3))


def test_psnr_of_a_constant_offset():
    # 0.1 in [-1, 1] units is 0.05 on [0, 1]: MSE 0.0025, PSNR = 10 log10(1 / 0.0025) = 26.02 dB
    assert metrics.psnr(full(0.0), full(0.1)) == pytest.approx(10 * math.log10(400), abs=1e-6)
    assert metrics.psnr(full(0.3), full(0.3)) == pytest.approx(100.0)     # the cap for identical images
    # per-image PSNR, then the mean: offsets 0.1 and 0.2 give 26.02 and 20.00 dB
    x, y = full(0.0), full(0.0)
    y[0], y[1] = 0.1, 0.2
    assert metrics.psnr(x, y) == pytest.approx((10 * math.log10(400) + 10 * math.log10(100)) / 2, abs=1e-6)


def test_ssim_hand_cases():
    x = torch.rand(3, 3, 24, 24, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert metrics.ssim(x, x) == pytest.approx(1.0, abs=1e-9)
    # flat images a = 0.5, b = 0.75 on [0, 1]: no variance, SSIM = (2ab + C1) / (a² + b² + C1)
    c1 = 0.01 ** 2
    assert metrics.ssim(full(0.0), full(0.5)) == pytest.approx((2 * 0.5 * 0.75 + c1) / (0.25 + 0.5625 + c1))
    noisy = (x + 0.3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(-1, 1)
    assert metrics.ssim(x, noisy) == pytest.approx(metrics.ssim(noisy, x))
    assert 0 < metrics.ssim(x, noisy) < 0.9
    assert metrics.ssim(x, -x) < 0                  # inverted structure: negative correlation
    with pytest.raises(ValueError, match="11×11"):
        metrics.ssim(full(0.0, size=8), full(0.0, size=8))


def test_mask_iou_of_two_rectangles():
    a = torch.zeros(2, 10, 10, dtype=torch.bool)
    b = torch.zeros(2, 10, 10, dtype=torch.bool)
    a[0, 0:4, 0:4] = True                           # 16 pixels
    b[0, 2:6, 2:6] = True                           # 16 pixels, 4 shared: IoU 4 / 28
    assert metrics.mask_iou(a[:1], b[:1]) == pytest.approx(1 / 7)
    # the second image: both empty, they agree → 1; the mean over images
    assert metrics.mask_iou(a, b) == pytest.approx((1 / 7 + 1) / 2)
    assert metrics.mask_iou(a[0], a[0]) == 1.0
    assert metrics.mask_iou(a[0], ~a[0]) == 0.0


def test_segmentation_scores_on_a_2x2_example():
    gt = torch.tensor([[[0, 0], [1, 2]]])
    pred = torch.tensor([[[0, 1], [1, 1]]])
    scores = metrics.segmentation_scores(pred, gt, n_classes=4)   # class 3 is absent: not in the means
    assert scores["pixel_acc"] == pytest.approx(2 / 4)
    # class accuracy: class 0 → 1/2, class 1 → 1/1, class 2 → 0/1
    assert scores["class_acc"] == pytest.approx((0.5 + 1 + 0) / 3)
    # IoU: class 0 → 1 / (2 + 1 − 1), class 1 → 1 / (1 + 3 − 1), class 2 → 0 / 1
    assert scores["class_iou"] == pytest.approx((0.5 + 1 / 3 + 0) / 3)
    perfect = metrics.segmentation_scores(gt, gt, 4)
    assert perfect == {"pixel_acc": 1.0, "class_acc": 1.0, "class_iou": 1.0}
    with pytest.raises(ValueError, match="outside 0..3"):
        metrics.segmentation_scores(gt + 2, gt, 4)


def test_success_rate():
    assert metrics.success_rate(torch.tensor([1, 2, 1, 1]), 1) == 0.75
    assert metrics.success_rate(torch.tensor([1, 2, 1, 1]), torch.tensor([1, 2, 0, 0])) == 0.5
    with pytest.raises(ValueError, match="no predictions"):
        metrics.success_rate(torch.tensor([]), 1)


class Shift:
    """A stand-in model: AtoB adds ``up``, BtoA subtracts ``down``."""

    def __init__(self, up: float, down: float):
        self.up, self.down, self.calls = up, down, []

    def translate(self, x, direction):
        self.calls.append((direction, len(x)))
        return x + self.up if direction == "AtoB" else x - self.down


def test_cycle_error():
    x = full(0.0, n=70)
    assert metrics.cycle_error(Shift(0.1, 0.1), x) == pytest.approx(0.0, abs=1e-7)
    model = Shift(0.1, 0.3)
    assert metrics.cycle_error(model, x, "AtoB") == pytest.approx(0.2)
    assert metrics.cycle_error(model, x, "BtoA") == pytest.approx(0.2)
    assert model.calls[:4] == [("AtoB", 64), ("AtoB", 6), ("BtoA", 64), ("BtoA", 6)]   # in batches
    with pytest.raises(ValueError, match="direction"):
        metrics.cycle_error(model, x, "AtoA")


def test_output_diversity():
    assert metrics.output_diversity(full(0.4, n=5)) == 0.0          # collapse: every output the same
    three = torch.stack([torch.full((3, 4, 4), v) for v in (0.0, 0.5, 1.0)])
    assert metrics.output_diversity(three) == pytest.approx((0.5 + 1.0 + 0.5) / 3)
    with pytest.raises(ValueError, match="N >= 2"):
        metrics.output_diversity(full(0.0, n=1))
    with pytest.raises(ValueError, match="block=3"):
        metrics.output_diversity(three, block=3)


def test_output_diversity_ignores_pixel_noise_but_not_content():
    """Chapter 0's defect: per pixel, the same image with fresh ±0.5 checkerboard noise looked as diverse
    as different images. On 4×4 block means the noise averages out; different content does not."""
    base = torch.zeros(1, 3, 8, 8)
    sign = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(4, 4)
    noisy = torch.cat([base + 0.5 * sign, base - 0.5 * sign])           # same content, opposite noise
    assert metrics.output_diversity(noisy, block=1) == pytest.approx(1.0)
    assert metrics.output_diversity(noisy) == pytest.approx(0.0, abs=1e-12)
    left, right = base.clone(), base.clone()
    left[..., :4], right[..., 4:] = 1.0, 1.0                              # different content
    assert metrics.output_diversity(torch.cat([left, right])) == pytest.approx(1.0)


def _grid(size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    i = torch.arange(size, dtype=torch.float64)
    return i[:, None], i[None, :]


def test_checkerboard_energy_of_hand_made_images():
    rows, cols = _grid()
    checkerboard = ((-1.0) ** (rows + cols)).expand(2, 3, 32, 32)
    period_4 = ((cols % 4 == 0).double() - 0.25).expand(1, 3, 32, 32)        # a bright column every 4 pixels
    ramp = ((rows + cols) / 31 - 1).expand(1, 3, 32, 32)
    assert metrics.checkerboard_energy(checkerboard) == 1.0
    assert metrics.checkerboard_energy(period_4) == pytest.approx(1.0, abs=1e-12)
    assert metrics.checkerboard_energy(period_4, period=2) == pytest.approx(0.5 / 1.5, abs=1e-12)  # its 2-px part
    # a linear ramp over S = 32 pixels: the mean 4×4 tile varies as 0, 1, 2, 3 (variance 1.25) of 0..31 (85.25)
    assert metrics.checkerboard_energy(ramp) == pytest.approx(15 / 1023, abs=1e-12)
    assert metrics.checkerboard_energy(full(0.3)) == 0.0                        # no pattern at all
    faint = ramp + 0.05 * checkerboard[:1]                                       # a faint checkerboard on the ramp
    assert 0.01 < metrics.checkerboard_energy(faint) - metrics.checkerboard_energy(ramp) < 0.02


def test_checkerboard_energy_is_the_spectral_energy_at_the_stride_frequencies():
    torch.manual_seed(0)
    x = torch.randn(3, 3, 32, 48, dtype=torch.float64).cumsum(-1)               # some low-frequency content too
    power = torch.fft.fft2(x).abs() ** 2
    for period in (2, 4):
        stride = torch.zeros(32, 48, dtype=torch.bool)
        stride[::32 // period, ::48 // period] = True
        stride[0, 0] = False                                                    # not the mean
        ac = power.flatten(1).sum(1) - power[..., 0, 0].sum(1)
        expected = (power[..., stride].flatten(1).sum(1) / ac).mean()
        assert metrics.checkerboard_energy(x, period) == pytest.approx(float(expected), rel=1e-10)


def test_checkerboard_energy_refuses_sizes_it_cannot_tile():
    with pytest.raises(ValueError, match=r"period=4: must be at least 2 and divide the image size \(30, 32\)"):
        metrics.checkerboard_energy(torch.zeros(1, 3, 30, 32))
    with pytest.raises(ValueError, match="takes \\(N, C, H, W\\)"):
        metrics.checkerboard_energy(torch.zeros(3, 32, 32))


def test_kernel_inception_distance_by_hand():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 3, generator=gen).double(), torch.randn(5, 3, generator=gen).double() + 1

    def k(x, y):
        return (float(x @ y) / 3 + 1) ** 3

    def mmd(a, b):
        m, n = len(a), len(b)
        s_aa = sum(k(a[i], a[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
        s_bb = sum(k(b[i], b[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
        s_ab = sum(k(x, y) for x in a for y in b) / (m * n)
        return s_aa + s_bb - 2 * s_ab

    def jackknife_se(a, b):
        loo_a = [mmd(torch.cat([a[:i], a[i + 1:]]), b) for i in range(len(a))]
        loo_b = [mmd(a, torch.cat([b[:j], b[j + 1:]])) for j in range(len(b))]
        var = sum((v - sum(loo_a) / len(a)) ** 2 for v in loo_a) * (len(a) - 1) / len(a)
        var += sum((v - sum(loo_b) / len(b)) ** 2 for v in loo_b) * (len(b) - 1) / len(b)
        return var ** 0.5

    kid, se = metrics.kernel_inception_distance(a, b)
    assert kid == pytest.approx(mmd(a, b), rel=1e-9)
    assert se == pytest.approx(jackknife_se(a, b), rel=1e-9)
    with pytest.raises(ValueError, match="three"):
        metrics.kernel_inception_distance(a[:2], b)


def test_kernel_inception_distance_is_unbiased_where_frechet_is_not():
    """Two samples of one distribution: KID is about 0 within its standard error at n = 50 in 64
    dimensions, while the Fréchet distance from so few points is far above its true value 0."""
    gen = torch.Generator().manual_seed(1)
    a, b = torch.randn(50, 64, generator=gen), torch.randn(50, 64, generator=gen)
    kid, se = metrics.kernel_inception_distance(a, b)
    assert abs(kid) < 3 * se
    shifted, _ = metrics.kernel_inception_distance(a, b + 1.0)
    assert shifted > 10 * se
    assert metrics.frechet_distance(a, b) > 20


def test_color_drift_is_the_hue_turn_in_degrees():
    image = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert metrics.color_drift(image, image) == pytest.approx(0.0, abs=1e-6)
    assert metrics.color_drift(image.roll(1, dims=1), image) == pytest.approx(120.0)   # RGB → BRG
    darker = (image + 1) * 0.5 - 1                  # every channel halved on [0, 1]: same hues
    assert metrics.color_drift(darker, image) == pytest.approx(0.0, abs=1e-6)
    # two pixels of chroma 1: red for red (0°) and green for red (120°): the mean is 60°
    red, green = torch.tensor([1.0, -1.0, -1.0]), torch.tensor([-1.0, 1.0, -1.0])
    x = torch.stack([red, green], -1)[None, :, None, :]          # (1, 3, 1, 2)
    gt = torch.stack([red, red], -1)[None, :, None, :]
    assert metrics.color_drift(x, gt) == pytest.approx(60.0)
    assert math.isnan(metrics.color_drift(full(0.2), full(-0.3)))   # greys have no hue


def test_frechet_distance():
    feats = torch.randn(200, 5, generator=torch.Generator().manual_seed(0))
    assert metrics.frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-6)
    shift = torch.tensor([1.0, 2.0, 0.0, 0.0, -2.0])                 # |shift|² = 9, covariances equal
    assert metrics.frechet_distance(feats, feats + shift) == pytest.approx(9.0, abs=1e-6)
    # scaled by 2: Σb = 4Σa, tr(Σa + 4Σa − 2·2Σa) = tr(Σa)
    assert metrics.frechet_distance(feats, 2 * feats) == pytest.approx(
        float(torch.cov(feats.T).trace() + (feats.mean(0) ** 2).sum()), rel=1e-6)


class Oracle:
    """Knows the answer: returns the ground truth of each test input it was shown."""

    def __init__(self, inputs, truth):
        self.table = {x.numpy().tobytes(): y for x, y in zip(inputs, truth)}

    def translate(self, x, direction):
        return torch.stack([self.table[image.numpy().tobytes()] for image in x])


class Identity:
    def translate(self, x, direction):
        return x.clone()


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    root = tmp_path_factory.mktemp("tasks")
    return {name: domains.generate(name, root / name, size=32, n_train=1, n_test=6, seed=2)
            for name in ("shapes", "labels")}


def test_score_against_truth_perfect_and_identity(tasks):
    folder = tasks["shapes"]
    oracle = Oracle(load_folder(folder / "testA", 32), load_folder(folder / "testA_gt", 32))
    best = metrics.score_against_truth(oracle, folder, "AtoB", size=32)
    assert set(best) == {"l1", "psnr", "ssim", "color_drift", "mask_iou"}
    assert best["l1"] == 0 and best["psnr"] == pytest.approx(100) and best["ssim"] == pytest.approx(1)
    assert best["color_drift"] == pytest.approx(0, abs=1e-6) and best["mask_iou"] > 0.99
    unchanged = metrics.score_against_truth(Identity(), folder, "AtoB", size=32)
    assert unchanged["l1"] > 0.2 and unchanged["psnr"] < 20 and unchanged["color_drift"] > 20
    assert metrics.score_against_truth(oracle, folder, "AtoB", size=32, limit=2)["l1"] == 0


def test_score_against_truth_photo_to_labels(tasks):
    folder = tasks["labels"]
    oracle = Oracle(load_folder(folder / "testB", 32), load_folder(folder / "testB_gt", 32))
    scores = metrics.score_against_truth(oracle, folder, "BtoA", size=32)
    assert {k: scores[k] for k in ("pixel_acc", "class_acc", "class_iou")} == \
        {"pixel_acc": 1.0, "class_acc": 1.0, "class_iou": 1.0}
    assert "pixel_acc" not in metrics.score_against_truth(Identity(), folder, "AtoB", size=32)
    assert metrics.score_against_truth(Identity(), folder, "BtoA", size=32)["pixel_acc"] < 0.8


def test_score_against_truth_needs_ground_truth(tmp_path):
    (tmp_path / "testA").mkdir()
    with pytest.raises(FileNotFoundError, match="testA_gt"):
        metrics.score_against_truth(Identity(), tmp_path)


def test_input_change_counts_content_moved_not_pixel_noise():
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    assert metrics.input_change(x, x) == 0
    assert metrics.input_change((x + 0.5).clamp(-2, 2), x) == pytest.approx(0.5)     # a shift of every pixel
    checker = torch.ones(1, 1, 16, 16)
    checker[..., ::2, ::2] = checker[..., 1::2, 1::2] = -1                            # ±1 noise, block mean 0
    noisy = x + 0.1 * checker
    assert metrics.l1(noisy, x) == pytest.approx(0.1) and metrics.input_change(noisy, x) == pytest.approx(0, abs=1e-7)
    with pytest.raises(ValueError, match="input_change needs two batches of the same shape"):
        metrics.input_change(x, x[:2])


def test_hue_histogram_by_hand_and_under_a_rotation():
    red = torch.tensor([1.0, -1.0, -1.0]).reshape(1, 3, 1, 1).expand(2, 3, 4, 4)
    hist = metrics.hue_histogram(red, bins=36)
    assert hist[0] == 1 and hist.sum() == pytest.approx(1)                 # all of its colour in the first sector
    grey = torch.zeros(1, 3, 4, 4)
    with pytest.raises(ValueError, match="no pixel has any colour"):
        metrics.hue_histogram(grey)
    images = torch.rand(4, 3, 8, 8) * 2 - 1
    turned = metrics.hue_histogram(images[:, [2, 0, 1]], bins=36)          # RGB → BRG: every hue + 120°
    assert turned == pytest.approx(torch.roll(metrics.hue_histogram(images, bins=36), 12), abs=1e-9)


def test_sweep_plot_draws_error_bars_from_spreads():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from cyclegan_edu import viz
    ax = viz.sweep_plot([0, 1, 10], {"a": [1, 2, 3], "b": [3, 2, 1]}, "λ", "t", spreads={"a": [0.1, 0.2, 0.3]})
    bars = [c for c in ax.containers if c.has_yerr]
    assert len(ax.containers) == 2 and len(bars) == 1 and bars[0].get_label() == "a"
    plt.close(ax.figure)


def test_detail_energy_of_hand_made_images():
    """The mean square of an image minus its 4×4 block means: 0 for anything constant on blocks, the
    variance within blocks otherwise."""
    rows, cols = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    checkerboard = ((-1.0) ** (rows + cols)).expand(2, 3, 32, 32)
    assert metrics.detail_energy(checkerboard) == 1.0                      # every block mean is 0
    blocks = (rows // 4 + cols // 4).float().expand(1, 3, 32, 32) / 16 - 1
    assert metrics.detail_energy(blocks) == 0.0                            # constant on every block
    stripes = (cols % 2).float().expand(1, 1, 32, 32) * 0.5                # 0, 0.5, 0, 0.5: ±0.25 around 0.25
    assert metrics.detail_energy(stripes) == pytest.approx(0.0625)
    assert metrics.detail_energy(stripes, block=2) == pytest.approx(0.0625)
    with pytest.raises(ValueError, match="block=3: must be at least 2 and divide the image size"):
        metrics.detail_energy(stripes, block=3)


def test_detail_energy_inside_a_region_counts_the_blocks_wholly_inside_it():
    """With a mask, the same measure over the pixels of the 4×4 blocks that lie wholly inside the region:
    a block the region only touches does not count, nor does the region's outline; NaN without any."""
    rows, cols = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    stripes = (cols % 2).float() * 0.5                          # 0, 0.5, 0, 0.5: 0.0625 within every block
    checkerboard = (-1.0) ** (rows + cols)                      # ±1 around a block mean of 0: 1
    image = torch.where(cols < 4, stripes, checkerboard).expand(2, 3, 8, 8)
    mask = torch.zeros(2, 8, 8, dtype=torch.bool)
    mask[0, :4, :5] = True             # image 0: its top-left block (stripes) and one column of the next
    mask[1, 4:, 4:] = True             # image 1: its bottom-right block (checkerboard)
    # by hand: 16 pixels of 0.0625 and 16 of 1 (the checkerboard column of image 0 is not a whole block)
    assert metrics.detail_energy(image, mask=mask) == (16 * 0.0625 + 16 * 1) / 32
    assert metrics.detail_energy(image, mask=torch.ones(2, 8, 8, dtype=torch.bool)) == pytest.approx(
        metrics.detail_energy(image))                           # the whole image: the measure without a mask
    flat = torch.where((rows < 6) & (cols < 6), 0.5, -1.0).expand(1, 3, 8, 8)    # a flat region on flat ground
    region = ((rows < 6) & (cols < 6))[None]
    assert metrics.detail_energy(flat) > 0 and metrics.detail_energy(flat, mask=region) == 0.0   # its outline
    assert math.isnan(metrics.detail_energy(flat, mask=region & (rows > 0)))     # no whole block inside
    with pytest.raises(ValueError, match=r"detail_energy takes \(N, C, H, W\) images and an \(N, H, W\) mask"):
        metrics.detail_energy(image, mask=mask[0])


def test_distance_correlation_of_hand_made_translations():
    """1 for a translation that scales every distance (a brightness change keeps which images are close),
    about 0 for one that sends all inputs to random, unrelated outputs, and 0 for a collapse."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(12, 3, 8, 8, generator=g) * 2 - 1
    assert metrics.distance_correlation(x, 0.5 * x) == pytest.approx(1.0)
    assert metrics.distance_correlation(x, -x + 0.2) == pytest.approx(1.0)          # a mirror: same distances
    unrelated = torch.rand(12, 3, 8, 8, generator=g) * 2 - 1
    assert abs(metrics.distance_correlation(x, unrelated)) < 0.4
    assert metrics.distance_correlation(x, x[:1].expand_as(x)) == 0.0                # one output for all
    with pytest.raises(ValueError, match="at least 3"):
        metrics.distance_correlation(x[:2], x[:2])
