"""The judges: accuracy on held-out real images, the untranslated baseline, determinism and caching.

The judges here are trained with fewer steps than the defaults (seconds each); the default recipes
and their accuracies are in the docstrings of cyclegan_edu.judges.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan_edu import domains, judges
from cyclegan_edu.data import load_folder
from cyclegan_edu.domains import real

needs_fashion = pytest.mark.skipif(
    not any((d / "train-images-idx3-ubyte.gz").is_file() for d in real.FASHION_DIRS)
    and not os.environ.get(real.FASHION_ENV),
    reason="Fashion-MNIST missing: sudo apt-get install dataset-fashion-mnist")


@pytest.fixture(scope="module")
def fashion():
    return judges.fashion_judge(size=32, steps=300, progress=False)


@pytest.fixture(scope="module")
def sneaker2boot(tmp_path_factory) -> Path:
    return domains.generate("sneaker2boot", tmp_path_factory.mktemp("s2b") / "task", size=32,
                            n_train=200, n_test=50, seed=0)


def _grey_rgb(images) -> torch.Tensor:
    """uint8 N×H×W → (N, 3, H, W) in [-1, 1], as a translation of a Fashion-MNIST image arrives."""
    return (torch.from_numpy(images).float() / 127.5 - 1).unsqueeze(1).expand(-1, 3, -1, -1)


@needs_fashion
def test_fashion_judge_is_accurate_on_held_out_images(fashion):
    assert fashion.classes[7] == "Sneaker" and fashion.classes[9] == "Ankle boot" and len(fashion.classes) == 10
    assert fashion.accuracy > 0.85                    # 10,000 test images, after only 300 steps
    images, labels = real.fashion_mnist("test")
    x = _grey_rgb(real.resize_gray(images[:1000], 32))
    predicted = fashion.predict(x)
    assert predicted.shape == (1000,) and predicted.dtype == torch.long
    assert float((predicted == torch.from_numpy(labels[:1000])).float().mean()) > 0.8
    # any input size is resized to the judge's: the 28 px originals get (nearly) the same verdicts
    same = (fashion.predict(_grey_rgb(images[:1000])) == predicted).float().mean()
    assert float(same) > 0.9


@needs_fashion
def test_untranslated_sneakers_are_not_boots(fashion, sneaker2boot):
    sneakers, boots = load_folder(sneaker2boot / "testA", 32), load_folder(sneaker2boot / "testB", 32)
    assert fashion.success_rate(sneakers, "Ankle boot") < 0.05     # the baseline a translation must beat
    assert fashion.success_rate(boots, "Ankle boot") > 0.9         # the ceiling
    assert fashion.success_rate(sneakers, "Sneaker") > 0.9
    with pytest.raises(ValueError, match="unknown class 'Boot'"):
        fashion.success_rate(boots, "Boot")
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        fashion.predict(boots[0])


@needs_fashion
def test_domain_judge_separates_the_domains(sneaker2boot):
    judge = judges.domain_judge(sneaker2boot, size=32, steps=200, progress=False)
    sneakers, boots = load_folder(sneaker2boot / "testA", 32), load_folder(sneaker2boot / "testB", 32)
    assert judge.classes == ("A", "B") and judge.accuracy > 0.9
    assert (judge.score_B(boots) + judge.score_A(sneakers)) / 2 == pytest.approx(judge.accuracy)
    assert judge.score_B(boots) > 0.85 and judge.score_B(sneakers) < 0.15
    assert judge.score_A(boots) == pytest.approx(1 - judge.score_B(boots))
    features = judge.features(boots, batch_size=7)                   # batches of 7: the seams must not show
    assert features.shape == (len(boots), 1024)
    assert torch.allclose(judge.net[-1](features), judge.logits(boots), atol=1e-5)


def _tiny_domain_judge(folder: Path):
    return judges.domain_judge(folder, size=32, steps=15, limit=64, progress=False)


def test_training_is_deterministic_cached_and_leaves_the_caller_rng_alone(tiny_folder, tmp_path, monkeypatch):
    monkeypatch.setenv(domains.CACHE_ENV, str(tmp_path / "first"))
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    first = _tiny_domain_judge(tiny_folder)
    assert torch.equal(torch.rand(3), expected_next)            # the caller's random stream is untouched
    (cached,) = (tmp_path / "first" / "judges").glob("domain_*.pt")
    stamp = cached.stat().st_mtime_ns
    again = _tiny_domain_judge(tiny_folder)                     # loaded, not retrained
    assert cached.stat().st_mtime_ns == stamp and again.info == first.info

    monkeypatch.setenv(domains.CACHE_ENV, str(tmp_path / "second"))
    second = _tiny_domain_judge(tiny_folder)                    # trained again from scratch
    for key, value in first.net.state_dict().items():
        assert torch.equal(value, second.net.state_dict()[key]), key


def test_corrupt_cache_is_retrained(tiny_folder, tmp_path, monkeypatch):
    monkeypatch.setenv(domains.CACHE_ENV, str(tmp_path))
    first = _tiny_domain_judge(tiny_folder)
    (cached,) = (tmp_path / "judges").glob("domain_*.pt")
    cached.write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="training it again"):
        again = _tiny_domain_judge(tiny_folder)
    assert again.info["accuracy"] == first.info["accuracy"]
    for key, value in first.net.state_dict().items():
        assert torch.equal(value, again.net.state_dict()[key]), key


def test_labels_segmenter_reads_real_scenes():
    from cyclegan_edu.domains.procedural import LABEL_CLASSES
    segmenter = judges.labels_segmenter(size=32, steps=200, n_train=300, progress=False)
    assert segmenter.classes == (*LABEL_CLASSES, "not a scene") and segmenter.accuracy > 0.85
    folder = domains.get("labels", size=32, n_train=20, n_test=40)
    labels = torch.stack([torch.from_numpy(np.array(Image.open(p))).long()
                          for p in sorted((folder / "testA_labels").glob("*.png"))])
    scenes = load_folder(folder / "testA_gt", 32)             # the true scene of each label map
    assert segmenter.predict(scenes).shape == labels.shape
    truth = segmenter.score(scenes, labels)
    assert truth["pixel_acc"] > 0.8
    blank = segmenter.score(torch.zeros_like(scenes), labels)  # a grey "translation" must score far lower
    assert blank["pixel_acc"] < truth["pixel_acc"] - 0.3
    copied = segmenter.score(load_folder(folder / "testA", 32), labels)  # the label map itself is no scene
    assert copied["pixel_acc"] < 0.1
    # a 64 px input is judged at the segmenter's size and answered at its own
    assert segmenter.predict(torch.nn.functional.interpolate(scenes, scale_factor=2)).shape == (40, 64, 64)


def test_inception_features_shape_and_checks():
    net = judges.inception_network(weights=None)
    features = judges.inception_features(net, torch.rand(2, 3, 40, 48) * 2 - 1)
    assert features.shape == (2, 2048) and torch.isfinite(features).all()
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        judges.inception_features(net, torch.rand(2, 1, 32, 32))


def test_inception_weights_without_a_network_are_one_clear_error(monkeypatch):
    import urllib.error
    import torchvision.models
    from cyclegan_edu.download import DownloadError

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
    monkeypatch.setattr(torchvision.models, "inception_v3", offline)
    with pytest.raises(DownloadError) as caught:
        judges.inception_network()
    message = str(caught.value)
    assert "\n" not in message and "Inception-v3 weights could not be loaded" in message
    assert "name resolution" in message and "judges.domain_judge" in message
