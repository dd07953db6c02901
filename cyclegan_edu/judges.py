"""Judges: small networks, trained here in seconds, that score translations where no ground truth exists.

A sneaker turned into an ankle boot has no "right answer" to compare pixels with. The paper measures
such results with perceptual studies and with a pretrained classifier or segmenter run on the
outputs: the "FCN score" of §5.1.1 (Tables 2 and 4) runs an FCN trained on real Cityscapes photos on
photos generated from label maps and asks whether it recovers the labels. The judges here are the
same idea at our scale:

* :func:`fashion_judge` — a 10-class Fashion-MNIST classifier. ``success_rate(fake_B, "Ankle boot")``
  is the share of translated sneakers judged to be ankle boots (the untranslated sneakers score ≈ 0,
  real ankle boots ≈ 1: the two ends of the scale).
* :func:`domain_judge` — a binary A-vs-B classifier trained on a task's ``trainA``/``trainB``;
  ``score_B(fake_B)`` is the share of outputs that "look like domain B", a cheap realism proxy.
* :func:`labels_segmenter` — a small fully convolutional net that maps a scene of the procedural
  "labels" task to its label map: the FCN score of labels→scene translations.

Every judge is trained deterministically (fixed seed, deterministic algorithms, one CPU thread) and cached under
``domains.cache_root()/judges/`` with a name that records what it was trained on; later calls load it.
Training leaves the caller's random state untouched.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import domains
from .data import list_images, load_folder, load_image, to_tensor

VERSION = 1  # bump when an architecture or a training recipe changes: old cache files are then ignored


def judges_root() -> Path:
    """Where trained judges are cached: ``domains.cache_root()/judges``."""
    return domains.cache_root() / "judges"


def classifier_net(in_channels: int, n_classes: int) -> nn.Sequential:
    """Three conv-BN-ReLU-maxpool stages (16, 32, 64 channels), pooled to 4×4, one linear layer:
    about 30k weights, enough for Fashion-MNIST (~90 %) and for telling two domains apart."""
    layers: list[nn.Module] = []
    for c_in, c_out in ((in_channels, 16), (16, 32), (32, 64)):
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(64 * 16, n_classes))


class Judge:
    """A trained classifier of (N, 3, H, W) images in [-1, 1].

    ``classes`` are the names of its outputs, ``size`` the side it was trained at (inputs of
    another size are resized), ``accuracy`` its accuracy on held-out real images and ``info`` how
    it was trained (steps, seconds, data).
    """

    def __init__(self, net: nn.Module, classes: tuple[str, ...], size: int, in_channels: int, info: dict):
        self.net, self.classes, self.size, self.in_channels = net.eval(), tuple(classes), size, in_channels
        self.info = info
        self.accuracy: float = info["accuracy"]

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Bring a batch to what the network was trained on: CPU float, its channels, its size."""
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"a judge takes (N, 3, H, W) images in [-1, 1], got shape {tuple(x.shape)}")
        x = x.detach().float().cpu()
        if self.in_channels == 1 and x.shape[1] == 3:
            x = x.mean(1, keepdim=True)
        elif self.in_channels == 3 and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
        return x

    @torch.no_grad()
    def logits(self, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """The class scores (N, len(classes)) before the softmax."""
        x = self.prepare(x)
        return torch.cat([self.net(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])

    @torch.no_grad()
    def features(self, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """The activations of the last hidden layer, (N, D): what a Fréchet distance between two sets
        of images compares (:func:`cyclegan_edu.metrics.frechet_distance`), as FID does with Inception's."""
        x = self.prepare(x)
        body = self.net[:-1]
        return torch.cat([body(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The class index the judge gives each image, a (N,) long tensor."""
        return self.logits(x).argmax(1)

    def class_index(self, class_name: str) -> int:
        if class_name not in self.classes:
            raise ValueError(f"unknown class {class_name!r}; this judge knows {', '.join(self.classes)}")
        return self.classes.index(class_name)

    def success_rate(self, x: torch.Tensor, class_name: str) -> float:
        """The share of images judged to be ``class_name`` (e.g. translated sneakers judged "Ankle boot")."""
        target = self.class_index(class_name)
        return float((self.predict(x) == target).float().mean())


class DomainJudge(Judge):
    """A Judge with the two classes "A" and "B" of one task."""

    def score_B(self, x: torch.Tensor) -> float:
        """Share of images judged to belong to domain B: of fake B images, how many pass as B."""
        return self.success_rate(x, "B")

    def score_A(self, x: torch.Tensor) -> float:
        """Share of images judged to belong to domain A."""
        return self.success_rate(x, "A")


def _train(net: nn.Module, sample_batch, steps: int, seed: int, desc: str, progress: bool, lr: float = 2e-3) -> float:
    """Adam with a cosine schedule for ``steps`` steps on batches from ``sample_batch(generator)``;
    deterministic for a seed, the caller's random state untouched. Returns the seconds it took."""
    start = time.perf_counter()
    deterministic = torch.are_deterministic_algorithms_enabled()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True)
        try:
            for module in net.modules():  # a fresh, seeded initialisation
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
            generator = torch.Generator().manual_seed(seed)
            optimizer = torch.optim.Adam(net.parameters(), lr=lr)
            schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
            net.train()
            for _ in tqdm(range(steps), desc=desc, disable=not progress, mininterval=1.0):
                x, y = sample_batch(generator)
                loss = F.cross_entropy(net(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
        finally:
            torch.use_deterministic_algorithms(deterministic)
    net.eval()
    return time.perf_counter() - start


def _load_or_train(path: Path, make_net, train_fn) -> tuple[nn.Module, dict]:
    """Load the cached judge at ``path``, else train it with ``train_fn(net) -> info`` and save it."""
    with torch.random.fork_rng(devices=[]):  # building the net must not move the caller's random state
        net = make_net()
    if path.is_file():
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            net.load_state_dict(saved["state_dict"])
            return net.eval(), saved["info"]
        except (RuntimeError, KeyError, EOFError, OSError, pickle.UnpicklingError) as err:
            warnings.warn(f"cannot load the cached judge {path} ({type(err).__name__}); training it again")
    # One thread: nets this small gain little from more, lose much when the cores are shared, and
    # one thread makes the weights independent of the machine's core count.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        info = train_fn(net)
    finally:
        torch.set_num_threads(threads)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + f".{os.getpid()}.part")
    torch.save({"state_dict": net.state_dict(), "info": info}, partial)
    os.replace(partial, path)  # atomic: a reader never sees half a file
    return net.eval(), info


@torch.no_grad()
def _accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    predicted = torch.cat([net(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])
    return float((predicted == y).float().mean())


def _gray_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 N×H×W → float (N, 1, H, W) in [-1, 1]."""
    return torch.from_numpy(images).float().div_(127.5).sub_(1.0).unsqueeze(1)


def fashion_judge(size: int = 32, steps: int = 1000, batch_size: int = 64, seed: int = 0,
                  progress: bool = True) -> Judge:
    """A 10-class Fashion-MNIST classifier for images of side ``size`` (cached after the first call).

    Trained on the 60,000 images of the train split (resized to ``size`` exactly as the real tasks
    resize them, grey), ``steps`` Adam steps; ``.accuracy`` is measured on the 10,000 test images.
    Default recipe at 32 px: 89.7 % test accuracy, about 30 s on one CPU core (2,000 steps: 91.0 %,
    60 s). It tells sneakers from ankle boots almost perfectly (real test sneakers judged "Ankle boot":
    4.5 %, real ankle boots: 98.5 %); T-shirt/shirt is its hardest pair (real shirts judged "Shirt":
    67 %), so compare a translation's success rate with that of real images of the target class.
    Colour inputs are judged by their grey level (the mean of the channels).
    """
    from .domains.real import FASHION_CLASSES, fashion_mnist, resize_gray
    path = judges_root() / f"fashion_{size}px_{steps}steps_b{batch_size}_seed{seed}_v{VERSION}.pt"

    def train(net: nn.Module) -> dict:
        x_train, y_train = fashion_mnist("train")
        x_train, y_train = torch.from_numpy(resize_gray(x_train, size)), torch.from_numpy(y_train)

        def batch(generator):
            i = torch.randint(0, len(x_train), (batch_size,), generator=generator)
            return _gray_tensor(x_train[i].numpy()), y_train[i]

        seconds = _train(net, batch, steps, seed, f"fashion judge {size}px", progress)
        x_test, y_test = fashion_mnist("test")
        accuracy = _accuracy(net, _gray_tensor(resize_gray(x_test, size)), torch.from_numpy(y_test))
        return {"accuracy": accuracy, "seconds": seconds, "steps": steps, "batch_size": batch_size,
                "seed": seed, "trained_on": "Fashion-MNIST train split (60,000)", "tested_on": "test split (10,000)"}

    net, info = _load_or_train(path, lambda: classifier_net(1, len(FASHION_CLASSES)), train)
    return Judge(net, FASHION_CLASSES, size, 1, info)


def _folder_fingerprint(folder: Path) -> str:
    """A short hash of the files (names and byte sizes) of trainA and trainB: a rebuilt task gets a new judge."""
    digest = hashlib.sha1(str(folder.resolve()).encode())
    for sub in ("trainA", "trainB"):
        for path in list_images(folder / sub):
            digest.update(f"{sub}/{path.name}:{path.stat().st_size};".encode())
    return digest.hexdigest()[:12]


def domain_judge(task_folder: str | os.PathLike, size: int = 32, steps: int = 300, batch_size: int = 64,
                 seed: int = 0, limit: int | None = 2000, progress: bool = True) -> DomainJudge:
    """A binary classifier telling domain A from domain B, trained on ``trainA``/``trainB`` of
    ``task_folder`` (at most ``limit`` images each, resized to ``size``; batches half A, half B).

    ``.score_B(fake_B)`` is the share of translations judged to be B; ``.accuracy`` is measured on
    ``testA``/``testB`` (the mean of the two per-domain accuracies). Cached per folder content and size.
    Default recipe at 32 px, about 9 s on one CPU core: test accuracy 96.8 % on sneaker2boot, 92.5 % on
    pullover2coat, 86.3 % on tshirt2shirt, 90.5 % on emoji (real testB scores score_B 0.87-0.98,
    real testA 0.04-0.15: read a translation's score against these).
    """
    folder = Path(task_folder)
    path = judges_root() / (f"domain_{folder.name}_{_folder_fingerprint(folder)}_{size}px_{steps}steps_b{batch_size}"
                            f"_n{limit}_seed{seed}_v{VERSION}.pt")

    def train(net: nn.Module) -> dict:
        train_A, train_B = (load_folder(folder / sub, size, limit) for sub in ("trainA", "trainB"))
        half = batch_size // 2

        def batch(generator):
            i = torch.randint(0, len(train_A), (half,), generator=generator)
            j = torch.randint(0, len(train_B), (batch_size - half,), generator=generator)
            y = torch.cat([torch.zeros(half, dtype=torch.long), torch.ones(batch_size - half, dtype=torch.long)])
            return torch.cat([train_A[i], train_B[j]]), y

        seconds = _train(net, batch, steps, seed, f"domain judge {folder.name} {size}px", progress)
        test_A, test_B = (load_folder(folder / sub, size) for sub in ("testA", "testB"))
        accuracy = (_accuracy(net, test_A, torch.zeros(len(test_A), dtype=torch.long))
                    + _accuracy(net, test_B, torch.ones(len(test_B), dtype=torch.long))) / 2
        return {"accuracy": accuracy, "seconds": seconds, "steps": steps, "batch_size": batch_size, "seed": seed,
                "trained_on": f"{folder} trainA ({len(train_A)}) / trainB ({len(train_B)})",
                "tested_on": f"testA ({len(test_A)}) / testB ({len(test_B)})"}

    net, info = _load_or_train(path, lambda: classifier_net(3, 2), train)
    return DomainJudge(net, ("A", "B"), size, 3, info)


def segmenter_net(n_classes: int, width: int = 16) -> nn.Sequential:
    """A fully convolutional net without downsampling: 3×3 convolutions dilated 1, 2, 4 and 8 see
    31×31 pixels around each output pixel, enough to recognise a texture; a 1×1 convolution then
    gives the class scores of every pixel (the FCN idea of Long et al., the paper's FCN score)."""
    layers: list[nn.Module] = []
    for c_in, dilation in ((3, 1), (width, 2), (width, 4), (width, 8)):
        layers += [nn.Conv2d(c_in, width, 3, padding=dilation, dilation=dilation, padding_mode="replicate"),
                   nn.BatchNorm2d(width), nn.ReLU()]
    return nn.Sequential(*layers, nn.Conv2d(width, n_classes, 1))


NOT_A_SCENE = "not a scene"


class Segmenter:
    """A trained segmenter of street scenes (the procedural "labels" task's domain B).

    ``classes`` are the scene classes (``LABEL_CLASSES``) plus a last one, ``"not a scene"``.
    ``predict(x)`` gives the class of every pixel, (N, H, W) long indices into ``classes``, at the
    input's own size; ``score(x, labels)`` compares that with true label maps and returns the
    paper's three FCN-score columns (:func:`cyclegan_edu.metrics.segmentation_scores`); a pixel
    called "not a scene" counts as wrong. ``accuracy`` is its pixel accuracy on held-out real
    scenes, ``info`` how it was trained.
    """

    def __init__(self, net: nn.Module, classes: tuple[str, ...], size: int, info: dict):
        self.net, self.classes, self.size, self.info = net.eval(), tuple(classes), size, info
        self.accuracy: float = info["accuracy"]

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"the segmenter takes (N, 3, H, W) images in [-1, 1], got shape {tuple(x.shape)}")
        x = x.detach().float().cpu()
        h, w = x.shape[-2:]
        if (h, w) != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
        logits = torch.cat([self.net(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
        if (h, w) != (self.size, self.size):
            logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
        return logits.argmax(1)

    def score(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        """FCN score of scenes ``x`` (e.g. generated from label maps) against the true ``labels`` (N, H, W)."""
        from .metrics import segmentation_scores
        return segmentation_scores(self.predict(x), torch.as_tensor(labels), len(self.classes))


def labels_segmenter(size: int = 32, steps: int = 400, batch_size: int = 16, n_train: int | None = None,
                     seed: int = 0, progress: bool = True) -> Segmenter:
    """A segmenter of the procedural "labels" scenes at ``size`` px, for FCN scores of labels→scene.

    Trained on the true (label map, scene) pairs of ``domains.get("labels", size, paired=True)``
    (``n_train`` pairs, default the task's 1,000; the label colours are read back with
    ``colors_to_labels``). Our palette colours resemble the scene colours (blue sky, green trees),
    so a segmenter trained on scenes alone also reads the label maps themselves (97 % pixel
    accuracy): a generator that copied its input would get a near-perfect FCN score, and the
    paper's "cycle alone" ablation (Table 4) would look good. The paper's FCN, trained on real
    photos, fails on such outputs; ours learns it explicitly: each batch also holds label maps
    (a quarter of the batch) whose every pixel is "not a scene".
    ``.accuracy`` is its pixel accuracy on the 100 test scenes of that folder.
    Default recipe at 32 px: 99.7 % pixel accuracy on real test scenes, about 10 s on one CPU core.
    """
    from .domains.procedural import LABEL_CLASSES, colors_to_labels
    classes = (*LABEL_CLASSES, NOT_A_SCENE)
    folder = domains.get("labels", size=size, n_train=n_train, paired=True)
    path = judges_root() / f"segmenter_{folder.name}_{steps}steps_b{batch_size}_seed{seed}_v{VERSION}.pt"

    def pairs(phase: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ab = torch.stack([to_tensor(load_image(path)) for path in list_images(folder / phase)])  # A|B, S×2S
        maps, scenes = ab[..., :size], ab[..., size:]
        return scenes, colors_to_labels(maps), maps

    def train(net: nn.Module) -> dict:
        scenes, labels, maps = pairs("train")
        n_maps = max(1, batch_size // 4)
        not_a_scene = torch.full((n_maps, size, size), len(classes) - 1, dtype=torch.long)

        def batch(generator):
            i = torch.randint(0, len(scenes), (batch_size,), generator=generator)
            j = torch.randint(0, len(maps), (n_maps,), generator=generator)
            return torch.cat([scenes[i], maps[j]]), torch.cat([labels[i], not_a_scene])

        seconds = _train(net, batch, steps, seed, f"labels segmenter {size}px", progress)
        test_scenes, test_labels, _ = pairs("test")
        with torch.no_grad():
            predicted = net(test_scenes).argmax(1)
        accuracy = float((predicted == test_labels).float().mean())
        return {"accuracy": accuracy, "seconds": seconds, "steps": steps, "batch_size": batch_size, "seed": seed,
                "trained_on": f"{folder} train ({len(scenes)} pairs + their label maps as '{NOT_A_SCENE}')",
                "tested_on": f"test ({len(test_scenes)} pairs)"}

    net, info = _load_or_train(path, lambda: segmenter_net(len(classes)), train)
    return Segmenter(net, classes, size, info)


INCEPTION_SIZE = 299          # the input side Inception-v3 was trained at
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def inception_network(weights: str | None = "DEFAULT") -> nn.Module:
    """torchvision's Inception-v3 (Szegedy et al. 2016) with its classifier removed, in eval mode: the
    network that FID and KID are published with. ``weights="DEFAULT"`` are torchvision's ImageNet weights,
    downloaded once (about 100 MB, then cached by torch in ``~/.cache/torch``); they are not the TensorFlow
    graph of the reference FID code, so scores come close to published ones without equalling them.
    ``weights=None`` gives random weights (tests). Without a network: :class:`~cyclegan_edu.download.DownloadError`
    in one line. Chapters 8 and 10."""
    from torchvision.models import Inception_V3_Weights, inception_v3
    from .download import DownloadError, _one_line
    try:
        if weights is None:
            net = inception_v3(weights=None, aux_logits=False, init_weights=False)
        else:
            net = inception_v3(weights=Inception_V3_Weights.verify(weights))
    except (OSError, RuntimeError) as err:        # urllib's URLError is an OSError; torch.hub wraps some
        raise DownloadError(f"Inception-v3 weights could not be loaded ({_one_line(err)}); they need a network "
                            "the first time; without one, use a task's judge features (judges.domain_judge)") from None
    net.fc = nn.Identity()
    return net.eval()


@torch.no_grad()
def inception_features(net: nn.Module, images: torch.Tensor, batch_size: int = 50) -> torch.Tensor:
    """The 2,048 pool features (N, 2048) of ``images`` ((N, 3, H, W) in [-1, 1]) under an
    :func:`inception_network`: resized to 299 px (bilinear) and normalised as torchvision's ImageNet
    weights expect. Runs on the network's device."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"inception_features takes (N, 3, H, W) RGB images in [-1, 1], got shape {tuple(images.shape)}")
    device = next(net.parameters()).device
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    out = []
    for i in range(0, len(images), batch_size):
        x = (images[i:i + batch_size].to(device).float() + 1) / 2
        x = F.interpolate(x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False)
        out.append(net((x - mean) / std).float().cpu())
    return torch.cat(out)
