"""How a trained model is scored on each task of the book: one function, the same numbers everywhere.

Every experiment of :mod:`cyclegan_edu.experiments` is scored by :func:`evaluate` on the 100 test images
of each domain. What it measures, per direction (``G``: A → B, ``F``: B → A):

* **against the truth** (procedural tasks, where every test image has its true translation):
  ``L1 to truth`` in [-1, 1] units, the book's direct error (chapter 0);
* **the task's own score**: on ``labels``, the paper's FCN triple (§5.1.1, Tables 1–5: per-pixel
  accuracy, per-class accuracy, class IoU) of the labels segmenter on G(x), and the same triple of the
  nearest palette colours of F(y) (chapter 3); on ``shapes``, the IoU of the animals' bodies (chapter 0);
  on ``seasons`` and ``tint``, the hue drift in degrees (chapter 4); on the Fashion-MNIST pairs, the share that the
  fashion judge calls the target class (chapter 0);
* **realism**: the KID between judge features of the outputs and of the real test images of the target
  domain, with its standard error (:func:`~cyclegan_edu.metrics.kernel_inception_distance`,
  chapter 3). The features are the last hidden layer of the task's domain judge: relative numbers, said
  plainly, not comparable with published KIDs;
* **diversity** of the outputs (block means, :func:`~cyclegan_edu.metrics.output_diversity`, chapter 0),
  to be read against the diversity of the real images of the target domain;
* on ``shapes`` and ``labels`` (:data:`TEXTURE_TASKS`) also two texture scores against the truth:
  ``sharpness``, the outputs' detail finer than 4 px over the true images' (:func:`~cyclegan_edu.metrics.detail_energy`:
  1 = as detailed, below = blurrier), and ``checkerboard``, the share of the outputs' variation that repeats
  every 4 px (:func:`~cyclegan_edu.metrics.checkerboard_energy`, the artefact of transposed convolutions),
  to be read against the truth's own (chapter 5);
* on ``shapes`` (:data:`DISTANCE_TASKS`) also ``distance corr``: how well the distances between the outputs
  follow the distances between their inputs (:func:`~cyclegan_edu.metrics.distance_correlation`, DistanceGAN's
  observation, chapter 9);
* on ``reshape`` (chapter 8), where the truth changes the objects' outline (ellipses ↔ squares): ``mask IoU``,
  the IoU of the outputs' objects with the truth's, and ``mask IoU to input``, with the input's (a translator
  that recolours but keeps the outline scores about 0.5 and 1);
* on ``distractor`` (chapter 8), for G only: ``distractor change``, ``distractor striped`` and ``animals
  striped``, what G does to a rock that no B image shows and the truth leaves as it is (the rider that
  horse2zebra stripes);
* ``cycle L1``, the reconstruction error of Eq. 2, per direction;
* on ``labels`` also ``cycle L1, noisy``: the cycle's error when the translation is perturbed by
  Gaussian noise of standard deviation :data:`PROBE_NOISE` before the way back, the probe of
  :mod:`~cyclegan_edu.steganography` for a hidden signal (Chu et al. 2017; chapter 3);
* on ``seasons`` and ``tint`` also ``change``, how far each output moves its input (block means,
  :func:`~cyclegan_edu.metrics.input_change`: a conservative translator changes less than the truth does),
  and ``identity L1``, the identity term of §5.2 on test images: how much G changes a real image of its
  own output domain (chapter 4).

``samples`` gives the fixed set of test images that the book shows for a run, through both generators.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from . import judges, metrics, steganography
from .data import load_folder

# Bump when a score's definition changes: committed results scored by another version are then stale.
# A change that concerns one task bumps that task's entry only, so that the other tasks' runs stay current.
VERSION = 1
TASK_VERSIONS = {"seasons": 2,          # 2: change and identity L1 added (chapter 4)
                 "tint": 2,             # 2: scored like seasons (chapter 4)
                 "labels": 3,           # 2: cycle L1, noisy added (chapter 3); 3: sharpness, checkerboard
                 "shapes": 3,           # 2: sharpness, checkerboard added (chapter 5); 3: distance corr
                 "distractor": 2}       # 2: striped = detail energy over whole 4×4 blocks (was: 3×3 local means)
COLOUR_TASKS = ("seasons", "tint")      # hue drift, change and the identity path are scored (chapter 4)
TEXTURE_TASKS = ("shapes", "labels")    # sharpness and checkerboard against the truth are scored (chapter 5)
DISTANCE_TASKS = ("shapes",)            # DistanceGAN's distance correlation is scored (chapter 9)
PROBE_TASKS = ("labels",)               # tasks whose CycleGAN runs are probed for a hidden signal (chapter 3)
PROBE_NOISE = 0.03                      # its noise: about 4 grey levels of an 8-bit image, hardly visible
N_SAMPLES = 6            # test images per direction in a run's sample sheet
# The paper's FCN scores on Cityscapes (Zhu et al. 2017, Table 4: labels → photo, Table 5: photo → labels),
# as (per-pixel accuracy, per-class accuracy, class IoU), for the rows the book's labels task reproduces
# (chapters 2 and 3). Other rows of those tables are not quoted here.
PAPER_FCN_SCORES = {
    "labels → photo": {"GAN alone": (0.51, 0.11, 0.08), "CycleGAN": (0.52, 0.17, 0.11), "pix2pix": (0.71, 0.25, 0.18)},
    "photo → labels": {"GAN alone": (0.53, 0.11, 0.07), "CycleGAN": (0.58, 0.22, 0.16), "pix2pix": (0.85, 0.40, 0.32)},
}
FASHION_TARGETS = {"sneaker2boot": ("Sneaker", "Ankle boot"), "pullover2coat": ("Pullover", "Coat"),
                   "tshirt2shirt": ("T-shirt/top", "Shirt")}


def version(task: str) -> int:
    """The version of the scores of ``task`` (see :data:`TASK_VERSIONS`)."""
    return TASK_VERSIONS.get(task, VERSION)


def _translate(model, x: torch.Tensor, direction: str, eval_mode: bool = True) -> torch.Tensor:
    """``model.translate`` in chunks of 50 (directions name the dataset's domains, whatever way a model
    was trained: ``Config.direction``). ``eval_mode=False`` asks for the official test.py's mode
    (:func:`~cyclegan_edu.networks.set_test_time_mode`); any object with ``translate(x, direction)`` can
    be scored in the default eval mode (the stand-ins of chapter 0 and the tests)."""
    extra = {} if eval_mode else {"eval_mode": False}
    return torch.cat([model.translate(x[i:i + 50], direction, **extra).cpu() for i in range(0, len(x), 50)])


def _test_images(folder: Path, size: int) -> dict[str, torch.Tensor]:
    images = {"A": load_folder(folder / "testA", size), "B": load_folder(folder / "testB", size)}
    for side in ("A", "B"):
        if (folder / f"test{side}_gt").is_dir():
            images[f"{side}_gt"] = load_folder(folder / f"test{side}_gt", size)
    return images


def directions(model_kind: str, direction: str = "AtoB") -> tuple[str, ...]:
    """The directions a model translates: both for CycleGAN, its one direction for pix2pix."""
    return ("AtoB", "BtoA") if model_kind == "cyclegan" else (direction,)


def evaluate(model, folder: str | os.PathLike, task: str, size: int, model_kind: str = "cyclegan",
             direction: str = "AtoB", eval_mode: bool = True, progress: bool = False) -> dict[str, float]:
    """Every score of a trained ``model`` on the test split of ``task`` (its folder), as a flat dict
    whose keys start with the generator (``G`` = A → B, ``F`` = B → A). See the module docstring.
    ``eval_mode=False`` translates as the official test.py does by default: batch norm normalises each
    test image with its own statistics instead of the running ones (chapter 5). A judge that is not yet
    cached is trained first (seconds at 32 px, minutes at 128 px); ``progress=True`` shows its bar."""
    folder = Path(folder)
    images = _test_images(folder, size)
    judge = judges.domain_judge(folder, size=size, progress=progress)
    scores: dict[str, float] = {}
    fakes = {}
    for way in directions(model_kind, direction):
        source, target = way[0], way[-1]
        name = "G" if way == "AtoB" else "F"
        fake = fakes[way] = _translate(model, images[source], way, eval_mode)
        if f"{source}_gt" in images:
            scores[f"{name} L1 to truth"] = metrics.l1(fake, images[f"{source}_gt"])
        kid, se = metrics.kernel_inception_distance(judge.features(fake), judge.features(images[target]))
        scores[f"{name} KID"], scores[f"{name} KID se"] = kid, se
        scores[f"{name} diversity"] = metrics.output_diversity(fake)
        task_scores = _task_scores(task, folder, size, way, fake, images, progress)
        scores.update({f"{name} {k}": v for k, v in task_scores.items()})
        if task in TEXTURE_TASKS:
            scores[f"{name} sharpness"] = metrics.detail_energy(fake) / metrics.detail_energy(images[f"{source}_gt"])
            scores[f"{name} checkerboard"] = metrics.checkerboard_energy(fake)
        if task in DISTANCE_TASKS:
            scores[f"{name} distance corr"] = metrics.distance_correlation(images[source], fake)
        if task in COLOUR_TASKS:   # the identity path: this generator fed a real image of its output domain
            scores[f"{name} identity L1"] = metrics.l1(_translate(model, images[target], way, eval_mode), images[target])
    if model_kind == "cyclegan":
        for way, name in (("AtoB", "G"), ("BtoA", "F")):
            back = "BtoA" if way == "AtoB" else "AtoB"
            scores[f"{name} cycle L1"] = metrics.l1(images[way[0]], _translate(model, fakes[way], back, eval_mode))
            if task in PROBE_TASKS:
                noisy = steganography.add_noise(fakes[way], PROBE_NOISE)
                scores[f"{name} cycle L1, noisy"] = metrics.l1(images[way[0]], _translate(model, noisy, back, eval_mode))
    return scores


def quick_scores(model, folder: str | os.PathLike, size: int, model_kind: str = "cyclegan",
                 direction: str = "AtoB") -> dict[str, float]:
    """The cheap part of :func:`evaluate`, for curves during training: the L1 error against the truth
    of each direction (tasks with ground truth) and the diversity of the outputs."""
    images = _test_images(Path(folder), size)
    scores = {}
    for way in directions(model_kind, direction):
        name, source = ("G" if way == "AtoB" else "F"), way[0]
        fake = _translate(model, images[source], way)
        if f"{source}_gt" in images:
            scores[f"{name} L1 to truth"] = metrics.l1(fake, images[f"{source}_gt"])
        scores[f"{name} diversity"] = metrics.output_diversity(fake)
    return scores


def _task_scores(task: str, folder: Path, size: int, way: str, fake: torch.Tensor,
                 images: dict[str, torch.Tensor], progress: bool = False) -> dict[str, float]:
    source, target = way[0], way[-1]
    if task == "labels":
        from .domains.procedural import LABEL_CLASSES, colors_to_labels
        if way == "AtoB":          # label map → photo: can the segmenter read the input's labels back?
            segmenter = judges.labels_segmenter(size, progress=progress)
            triple = segmenter.score(fake, colors_to_labels(images["A"]))
        else:                      # photo → label map: nearest palette colour against the true labels
            triple = metrics.segmentation_scores(colors_to_labels(fake), colors_to_labels(images["B_gt"]),
                                                 len(LABEL_CLASSES))
        return {"pixel acc": triple["pixel_acc"], "class acc": triple["class_acc"], "class IoU": triple["class_iou"]}
    if task == "shapes":
        from .domains.procedural import object_mask
        return {"mask IoU": metrics.mask_iou(object_mask(fake, target), object_mask(images[f"{source}_gt"], target))}
    if task == "reshape":          # a change of shape: whose outline does G(x) have, the truth's or its input's?
        from .domains.procedural import reshape_mask
        made = reshape_mask(fake)
        return {"mask IoU": metrics.mask_iou(made, reshape_mask(images[f"{source}_gt"])),
                "mask IoU to input": metrics.mask_iou(made, reshape_mask(images[source]))}
    if task == "distractor":
        return _distractor_scores(folder, size, fake, images) if way == "AtoB" else {}
    if task in COLOUR_TASKS:
        return {"hue drift": metrics.color_drift(fake, images[f"{source}_gt"]),
                "change": metrics.input_change(fake, images[source])}
    if task in FASHION_TARGETS:
        fashion = judges.fashion_judge(32, progress=progress)
        return {"judged target": fashion.success_rate(fake, FASHION_TARGETS[task]["AB".index(target)])}
    return {}


def _distractor_scores(folder: Path, size: int, fake: torch.Tensor, images: dict[str, torch.Tensor]) -> dict[str, float]:
    """What G does to the rock that no B image showed (it stays exactly as it is in the truth), over the
    test images that hold one: ``distractor change``, the mean change of its pixels (the truth's: 0);
    ``distractor striped``, its detail energy (:func:`~cyclegan_edu.metrics.detail_energy` over the
    4×4 blocks inside the rock) over the true zebras' (the truth's: about 0.01, the rock's own grain;
    1: striped like a zebra); and ``animals striped``, the animals' detail energy over the true zebras'
    (1: as striped as the truth)."""
    from .domains.procedural import ANIMAL, ROCK, read_parts
    parts = read_parts(folder / "testA_parts", size)
    zebras = metrics.detail_energy(images["A_gt"], mask=parts == ANIMAL)
    return {"distractor change": metrics.region_change(fake, images["A"], parts == ROCK),
            "distractor striped": metrics.detail_energy(fake, mask=parts == ROCK) / zebras,
            "animals striped": metrics.detail_energy(fake, mask=parts == ANIMAL) / zebras}


def samples(model, folder: str | os.PathLike, size: int, model_kind: str = "cyclegan",
            direction: str = "AtoB", n: int = N_SAMPLES, eval_mode: bool = True) -> dict[str, torch.Tensor]:
    """The sample sheet of a run: the first ``n`` test images of each domain through the model, as named
    rows of (n, C, H, W) images: x, G(x), F(G(x)) and the truth, then y, F(y), G(F(y)) and the truth
    (pix2pix: input, output and truth of its one direction)."""
    images = _test_images(Path(folder), size)
    rows: dict[str, torch.Tensor] = {}
    for way in directions(model_kind, direction):
        source = way[0]
        x = images[source][:n]
        fake = _translate(model, x, way, eval_mode)
        if way == "AtoB":
            rows.update({"x": x, "G(x)": fake})
            if model_kind == "cyclegan":
                rows["F(G(x))"] = _translate(model, fake, "BtoA", eval_mode)
        else:
            rows.update({"y": x, "F(y)": fake})
            if model_kind == "cyclegan":
                rows["G(F(y))"] = _translate(model, fake, "AtoB", eval_mode)
        if f"{source}_gt" in images:
            rows[f"truth of {'x' if way == 'AtoB' else 'y'}"] = images[f"{source}_gt"][:n]
    return rows


def translation_scores(translated: torch.Tensor, inputs: torch.Tensor, real_targets: torch.Tensor,
                       judge: "judges.DomainJudge", truth: torch.Tensor | None = None,
                       inception: "torch.nn.Module | None" = None) -> dict[str, float]:
    """Chapter 8's scores for any generator's translations ``translated`` of ``inputs`` into the domain of
    ``real_targets`` (all (N, C, H, W) in [-1, 1]), when there is no trained model to :func:`evaluate`:
    an official pretrained generator, say (chapter 10).

    ``judged target``: the share that ``judge`` (a :func:`~cyclegan_edu.judges.domain_judge` of the task)
    calls domain B; ``KID`` and ``KID se`` in the judge's features against ``real_targets``; ``diversity
    ratio``: the outputs' diversity over the inputs'; with ``truth``, ``L1 to truth``; with an
    ``inception`` network (:func:`~cyclegan_edu.judges.inception_network`), ``Inception KID``, its ``se``,
    and ``Inception FID`` (small test sets make FID biased upwards: compare like with like, chapter 8).
    """
    if not (len(translated) == len(inputs) and translated.shape[1:] == inputs.shape[1:]):
        raise ValueError(f"translated {tuple(translated.shape)} and inputs {tuple(inputs.shape)}: "
                         "give one translation per input, at the input's size")
    scores = {"judged target": judge.score_B(translated)}
    scores["KID"], scores["KID se"] = metrics.kernel_inception_distance(judge.features(translated),
                                                                        judge.features(real_targets))
    scores["diversity ratio"] = metrics.output_diversity(translated) / metrics.output_diversity(inputs)
    if truth is not None:
        scores["L1 to truth"] = metrics.l1(translated, truth)
    if inception is not None:
        fake, real = judges.inception_features(inception, translated), judges.inception_features(inception, real_targets)
        scores["Inception KID"], scores["Inception KID se"] = metrics.kernel_inception_distance(fake, real)
        scores["Inception FID"] = metrics.frechet_distance(fake, real)
    return scores
