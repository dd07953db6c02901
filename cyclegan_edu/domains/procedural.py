"""Procedural domain pairs with exact ground truth, drawn with numpy and PIL.

The paper could judge its horse→zebra translations only by eye (the perceptual studies of §5.1.1);
here every test image has a right answer. Each image is a **scene**: a small record of geometry and
parameters drawn from its own random generator, seeded by ``(seed, split, index)`` so that any image
can be made again alone. The scene is then **rendered** in domain A and in domain B, and the two
renderings share the geometry exactly. The task folders hold

* ``trainA``/``trainB``: A renderings of one set of scenes and B renderings of *another* set
  (different seeds), so the training data is truly unpaired, as in the paper;
* ``testA``/``testB`` and ``testA_gt``/``testB_gt``: ``testA_gt/x.png`` is the B rendering of the scene
  of ``testA/x.png`` (and ``testB_gt`` the A rendering of ``testB``), the perfect translation;
* per task, the truth behind each test image: ``test{A,B}_mask`` (shapes: object masks, L mode 0/255),
  ``test{A,B}_labels`` (labels: the class index of every pixel, L mode 0..5) or ``test{A,B}_parts``
  (distractor: ground, animal or rock, L mode 0..2);
* ``paired=True`` instead: pix2pix's ``train/`` and ``test/``, A|B side by side, made from the
  scenes of ``trainA`` and ``testA``, so pix2pix and CycleGAN are tested on the same inputs.

Scenes are in image fractions (0..1), so a scene looks the same at 32 and at 256 pixels; textures
are drawn at the pixel size. The tasks:

* ``shapes`` (horse↔zebra, §5.2 object transfiguration): 1–3 rounded bodies, plain brown on grass in A,
  zebra-striped on savanna in B. :func:`object_mask` finds the bodies in any rendered or translated image.
* ``labels`` (Cityscapes labels↔photo, §5.1): street scenes of six classes (:data:`LABEL_CLASSES`), flat
  :data:`PALETTE` colours in A, a texture and lighting per class in B; :func:`colors_to_labels` reads a
  label map back for the segmentation scores of Tables 2–3 (§5.1.1).
* ``seasons`` (summer↔winter Yosemite, §5.2 season transfer): the street scenes of ``labels`` photographed
  in summer (A) and in winter (B), with the same houses, road and noise: only the season changes.
* ``tint`` (the identity loss of §5.2, "photo generation from paintings"): flat coloured pieces on
  grey in A, the same pieces shaded and outlined in B. The hues are uniform on the colour wheel, so a
  generator that rotates every hue still makes a perfect B distribution and a perfect cycle: only the
  identity loss, or the ground truth, tells the rotation from the right answer.
* ``reshape`` (chapter 8: a change of shape, the failure of the paper's §6, "Limitations"): 1–3 coloured
  ellipses on blue-grey in A, the squares of the same centre, orientation, area and colour on sand in
  B. An outline that stays an ellipse is half wrong (IoU about 0.5 with the truth's square), whatever
  its colour; :func:`reshape_mask` finds the objects in any image.
* ``distractor`` (chapter 8: dataset bias, §6's rider that horse2zebra stripes because no training
  photo showed one): the scenes of ``shapes``, about half of the A scenes with a grey rock that no B scene
  ever holds. The true translation leaves the rock exactly as it is (the same pixels in both renderings).
"""
from __future__ import annotations

import colorsys
import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from . import register

MIN_SIZE, MAX_SIZE = 32, 256
DEFAULT_N_TRAIN, DEFAULT_N_TEST = 1000, 100
SPLITS = ("trainA", "trainB", "testA", "testB")
DOMAINS = ("A", "B")


# --- shared drawing helpers -------------------------------------------------------------------

def scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The random generator of one scene: seeded by ``(seed, split, index)`` alone."""
    if split not in SPLITS:
        raise ValueError(f"split={split!r}: choose one of {', '.join(SPLITS)}")
    return np.random.default_rng([seed, SPLITS.index(split), index])


def _texture_rng(scene: Any, domain: str) -> np.random.Generator:
    """Texture noise of a rendering: fixed by the scene and the domain, so renders repeat exactly."""
    return np.random.default_rng([scene.texture_seed, DOMAINS.index(domain)])


@functools.lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates as image fractions: ``y`` down the rows, ``x`` along the columns."""
    t = ((np.arange(size, dtype=np.float32) + 0.5) / size)
    return t[:, None].repeat(size, 1), t[None, :].repeat(size, 0)


def _smooth_noise(rng: np.random.Generator, size: int, cells_y: int, cells_x: int | None = None) -> np.ndarray:
    """Value noise in [0, 1]: random values on a (cells+1)² lattice, smoothly interpolated to size×size.
    Few cells give blotches, many cells give grain; unequal cells give streaks."""
    cells_x = cells_x or cells_y
    lattice = rng.random((cells_y + 1, cells_x + 1), dtype=np.float32)
    t = (np.arange(size, dtype=np.float32) + 0.5) / size

    def axis(cells: int):
        u = t * cells
        i = np.minimum(u.astype(int), cells - 1)
        f = u - i
        return i, f * f * (3 - 2 * f)
    iy, fy = axis(cells_y)
    ix, fx = axis(cells_x)
    top = lattice[iy][:, ix] * (1 - fx) + lattice[iy][:, ix + 1] * fx
    bottom = lattice[iy + 1][:, ix] * (1 - fx) + lattice[iy + 1][:, ix + 1] * fx
    return top * (1 - fy)[:, None] + bottom * fy[:, None]


def _grain(rng: np.random.Generator, size: int, amount: float) -> np.ndarray:
    """Per-pixel brightness grain, the same in the three channels (it changes no hue)."""
    return 1 + amount * rng.standard_normal((size, size, 1), dtype=np.float32)


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    """An RGB colour in [0, 1] from hue in degrees, saturation and value."""
    return np.array(colorsys.hsv_to_rgb((h % 360) / 360, s, v), dtype=np.float32)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


@dataclass(frozen=True)
class Blob:
    """A rotated superellipse ``|u/rx|^p + |v/ry|^p <= 1`` in the body's own axes (u along rx):
    p = 2 is an ellipse, larger p a rounded rectangle. Lengths are image fractions."""
    cx: float
    cy: float
    rx: float
    ry: float
    angle: float = 0.0
    power: float = 2.0

    def local(self, y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c, s = np.cos(self.angle), np.sin(self.angle)
        dx, dy = x - self.cx, y - self.cy
        return dx * c + dy * s, -dx * s + dy * c

    def inside(self, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        u, v = self.local(y, x)
        return np.abs(u / self.rx) ** self.power + np.abs(v / self.ry) ** self.power <= 1


# --- shapes: plain bodies on grass (A) ↔ striped bodies on savanna (B) ------------------------

@dataclass(frozen=True)
class Animal:
    """One body: its outline, its brown coat in A, and its zebra stripes in B (period in image
    fractions, across the long axis, waving with ``wave``)."""
    body: Blob
    coat: tuple[float, float, float]
    stripe_period: float
    stripe_phase: float
    wave: float


@dataclass(frozen=True)
class ShapesScene:
    animals: tuple[Animal, ...]
    grass: tuple[float, float, float]      # HSV of the A ground
    savanna: tuple[float, float, float]    # HSV of the B ground
    texture_seed: int


def shapes_scene(rng: np.random.Generator) -> ShapesScene:
    """1–3 bodies that may touch but not hide each other, one grass and one savanna tone."""
    animals: list[Animal] = []
    for _ in range(int(rng.integers(1, 4))):
        rx = rng.uniform(0.13, 0.26)
        for _attempt in range(10):   # bodies may touch but not hide each other
            cx, cy = rng.uniform(0.22, 0.78, size=2)
            if all(np.hypot(cx - a.body.cx, cy - a.body.cy) > 0.8 * (rx + a.body.rx) for a in animals):
                break
        else:
            continue
        body = Blob(cx, cy, rx, ry=rx * rng.uniform(0.45, 0.75), angle=rng.uniform(-0.6, 0.6),
                    power=rng.uniform(2, 3.5))
        animals.append(Animal(body, coat=(rng.uniform(15, 30), rng.uniform(0.6, 0.75), rng.uniform(0.5, 0.7)),
                              stripe_period=rng.uniform(0.11, 0.15), stripe_phase=rng.uniform(0, 1),
                              wave=rng.uniform(0, 0.3)))
    return ShapesScene(tuple(animals), grass=(rng.uniform(95, 120), rng.uniform(0.55, 0.7), rng.uniform(0.45, 0.6)),
                       savanna=(rng.uniform(35, 45), rng.uniform(0.35, 0.45), rng.uniform(0.75, 0.85)),
                       texture_seed=int(rng.integers(2**63)))


def shapes_mask(scene: ShapesScene, size: int) -> np.ndarray:
    """The true object mask of a shapes scene: (S, S) bool, True on the bodies."""
    y, x = _grid(size)
    mask = np.zeros((size, size), bool)
    for animal in scene.animals:
        mask |= animal.body.inside(y, x)
    return mask


def shapes_render(scene: ShapesScene, domain: str, size: int) -> np.ndarray:
    """A: brown coats on grass; B: black and white stripes on savanna; the same bodies and shading."""
    rng = _texture_rng(scene, domain)
    y, x = _grid(size)
    if domain == "A":   # grass: blotches and vertical blades
        ground = _hsv(*scene.grass) * (0.8 + 0.4 * _smooth_noise(rng, size, 4))[..., None] \
            * (0.9 + 0.2 * _smooth_noise(rng, size, 3, max(8, size // 3)))[..., None]
    else:               # savanna: paler blotches and horizontal dry-grass streaks
        ground = _hsv(*scene.savanna) * (0.85 + 0.3 * _smooth_noise(rng, size, 3))[..., None] \
            * (0.94 + 0.12 * _smooth_noise(rng, size, max(8, size // 3), 3))[..., None]
    image = ground
    for animal in scene.animals:
        inside = animal.body.inside(y, x)
        u, v = animal.body.local(y, x)
        shade = np.clip(1 - 0.15 * v / animal.body.ry, 0.8, 1.2)[..., None]   # lit from one side
        if domain == "A":
            coat = _hsv(*animal.coat) * shade
        else:
            across = u + animal.wave * animal.body.ry * np.sin(v / animal.body.ry * np.pi)
            white = np.sin(2 * np.pi * (across / animal.stripe_period + animal.stripe_phase)) > 0
            coat = np.where(white, 0.92, 0.1)[..., None].astype(np.float32) * shade * np.ones(3, np.float32)
        image = np.where(inside[..., None], coat, image)
    return _to_uint8(image * _grain(rng, size, 0.03))


def object_mask(images: torch.Tensor, domain: str) -> torch.Tensor:
    """The object mask of shapes images, rendered or translated: (N, 3, H, W) in [-1, 1] → (N, H, W) bool.

    Each ground has a colour the bodies never have. In A the grass is green (G > R) and the coats are
    brown (R > G): a body is where R − G > 0. In B the savanna is tan, well saturated (R − B ≥ 0.2 on
    a 0..1 scale), while the stripes are black and white (R ≈ B): a body is where R − B < 0.12.
    """
    if domain not in DOMAINS:
        raise ValueError(f"domain={domain!r}: choose 'A' (bodies on grass) or 'B' (striped bodies on savanna)")
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"object_mask takes (N, 3, H, W) images in [-1, 1], got shape {tuple(images.shape)}")
    rgb = (images.detach().float().cpu() + 1) / 2
    if domain == "A":
        return rgb[:, 0] - rgb[:, 1] > 0
    return rgb[:, 0] - rgb[:, 2] < 0.12


# --- labels: colour-coded label maps (A) ↔ rendered street scenes (B) -------------------------

LABEL_CLASSES = ("sky", "building", "tree", "road", "grass", "car")
# Flat colours for the label maps, at least 120 apart (RGB distance) from each other.
PALETTE = np.array([[70, 130, 230],    # sky
                    [220, 50, 50],     # building
                    [20, 120, 20],     # tree
                    [128, 64, 128],    # road (Cityscapes' road colour)
                    [170, 230, 50],    # grass
                    [250, 170, 30]],   # car
                   dtype=np.uint8)
SKY, BUILDING, TREE, ROAD, GRASS, CAR = range(len(LABEL_CLASSES))
_FACADES = ((0.76, 0.70, 0.58), (0.62, 0.33, 0.25), (0.56, 0.52, 0.48), (0.84, 0.78, 0.64), (0.70, 0.50, 0.36))
_CAR_PAINTS = ((0.75, 0.1, 0.1), (0.12, 0.22, 0.6), (0.92, 0.92, 0.9), (0.08, 0.08, 0.1), (0.6, 0.62, 0.65),
               (0.9, 0.75, 0.1))


@dataclass(frozen=True)
class Box:
    """An axis-aligned rectangle (image fractions) with a colour: a building's facade or a car's paint.
    ``cell`` is a building's window spacing."""
    x0: float
    y0: float
    x1: float
    y1: float
    colour: tuple[float, float, float]
    cell: float = 0.0

    def inside(self, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        return (x >= self.x0) & (x < self.x1) & (y >= self.y0) & (y < self.y1)


@dataclass(frozen=True)
class StreetScene:
    horizon: float                # y of the horizon
    vanish_x: float               # where the road meets the horizon
    road_top: float               # the road's half width at the horizon
    road_centre: float            # ... and its centre and half width at the bottom edge
    road_half: float
    buildings: tuple[Box, ...]
    trees: tuple[Blob, ...]
    cars: tuple[Box, ...]
    light: float                  # overall brightness of the photo
    slope: float                  # left-to-right change of brightness
    texture_seed: int

    def road(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Depth t (0 at the horizon, 1 at the bottom), centre and half width of the road on row y."""
        t = (y - self.horizon) / (1 - self.horizon)
        centre = self.vanish_x + (self.road_centre - self.vanish_x) * t
        return t, centre, self.road_top + (self.road_half - self.road_top) * t


def labels_scene(rng: np.random.Generator) -> StreetScene:
    """A street: a horizon, 2–5 buildings standing on it, 1–4 trees, a road to a vanishing point and
    0–2 cars on the road."""
    horizon = rng.uniform(0.4, 0.55)
    buildings = []
    for _ in range(int(rng.integers(2, 6))):
        x0 = rng.uniform(-0.1, 0.9)
        buildings.append(Box(x0, horizon - rng.uniform(0.12, 0.33), x0 + rng.uniform(0.1, 0.3), horizon + 0.02,
                             _FACADES[rng.integers(len(_FACADES))], cell=rng.uniform(0.035, 0.06)))
    trees = tuple(Blob(rng.uniform(0, 1), horizon + rng.uniform(-0.08, 0.06), rng.uniform(0.05, 0.1),
                       rng.uniform(0.07, 0.14)) for _ in range(int(rng.integers(1, 5))))
    scene = StreetScene(horizon, vanish_x=rng.uniform(0.35, 0.65), road_top=rng.uniform(0.01, 0.04),
                        road_centre=rng.uniform(0.35, 0.65), road_half=rng.uniform(0.22, 0.4),
                        buildings=tuple(buildings), trees=trees, cars=(), light=rng.uniform(0.85, 1.1),
                        slope=rng.uniform(-0.12, 0.12), texture_seed=int(rng.integers(2**63)))
    cars = []
    for _ in range(int(rng.choice(3, p=(0.3, 0.4, 0.3)))):
        depth = rng.uniform(0.45, 0.95)
        y1 = horizon + depth * (1 - horizon)
        _, centre, half = scene.road(np.float32(y1))
        width = half * rng.uniform(0.7, 1.0)
        x0 = centre + rng.uniform(-0.4, 0.4) * half - width / 2
        cars.append(Box(x0, y1 - width * rng.uniform(0.4, 0.55), x0 + width, y1,
                        _CAR_PAINTS[rng.integers(len(_CAR_PAINTS))]))
    return dataclasses.replace(scene, cars=tuple(cars))


def street_layout(scene: StreetScene, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Paint the scene back to front (sky, grass, road, buildings, trees, cars) as class indices.
    Returns the label map, (S, S) uint8 indices into :data:`LABEL_CLASSES`, and the owner of each
    building or car pixel (its index in ``scene.buildings`` or ``scene.cars``; 0 elsewhere)."""
    y, x = _grid(size)
    _, centre, half = scene.road(y)
    labels = np.full((size, size), SKY, np.uint8)
    owner = np.zeros((size, size), np.intp)
    labels[y >= scene.horizon] = GRASS
    labels[(y >= scene.horizon) & (np.abs(x - centre) < half)] = ROAD
    for i, building in enumerate(scene.buildings):
        inside = building.inside(y, x)
        labels[inside], owner[inside] = BUILDING, i
    for tree in scene.trees:
        labels[tree.inside(y, x)] = TREE
    for i, car in enumerate(scene.cars):
        inside = car.inside(y, x)
        labels[inside], owner[inside] = CAR, i
    return labels, owner


def label_map(scene: StreetScene, size: int) -> np.ndarray:
    """The true labels of a street scene: (S, S) uint8 class indices into :data:`LABEL_CLASSES`."""
    return street_layout(scene, size)[0]


def _street_photo(scene: StreetScene, size: int, rng: np.random.Generator, winter: bool = False) -> np.ndarray:
    """A street scene as a photo: a texture per class, then one light over the whole scene. In winter
    the ground and the trees are under snow, the sky is overcast and the light colder; everything
    else, noise included, is the summer photo's."""
    y, x = _grid(size)
    labels, owner = street_layout(scene, size)
    t, centre, half = scene.road(y)
    textures = np.zeros((len(LABEL_CLASSES), size, size, 3), np.float32)
    # sky: deep blue above, pale at the horizon, soft clouds
    fade = np.clip(y / scene.horizon, 0, 1)[..., None]
    clouds = np.clip((_smooth_noise(rng, size, 3, 5) - 0.55) * 3, 0, 0.7)[..., None]
    textures[SKY] = (np.float32([0.3, 0.5, 0.85]) * (1 - fade) + np.float32([0.72, 0.82, 0.93]) * fade) \
        * (1 - clouds) + 0.97 * clouds
    textures[GRASS] = np.float32([0.42, 0.6, 0.22]) * (0.8 + 0.4 * _smooth_noise(rng, size, 6))[..., None] \
        * _grain(rng, size, 0.06)
    # road: grainy asphalt with a dashed centre line that shortens towards the horizon
    dashes = (np.abs(x - centre) < 0.06 * half + 0.3 / size) & ((8 * np.sqrt(np.clip(t, 0, 1))) % 1 < 0.5)
    textures[ROAD] = np.where(dashes[..., None], np.float32([0.9, 0.9, 0.82]),
                              np.float32([0.32, 0.32, 0.34]) * (0.9 + 0.2 * _smooth_noise(rng, size, 12))[..., None])
    leaves = _smooth_noise(rng, size, max(6, size // 3))
    textures[TREE] = np.float32([0.12, 0.34, 0.12]) * (0.6 + 0.7 * leaves)[..., None]
    # buildings: each its own facade colour, with a grid of dark windows

    def per_owner(objects, cls: int, field: str) -> np.ndarray:   # a field of the object owning each pixel
        return np.float32([getattr(k, field) for k in objects])[np.where(labels == cls, owner, 0)]
    if scene.buildings:
        b = scene.buildings
        x0, y0, cell = (per_owner(b, BUILDING, f) for f in ("x0", "y0", "cell"))
        u, v = ((x - x0) / cell) % 1, ((y - y0) / cell) % 1
        windows = (u > 0.3) & (u < 0.75) & (v > 0.35) & (v < 0.8) & (y < scene.horizon - cell / 2)
        facade = per_owner(b, BUILDING, "colour") * (0.9 + 0.15 * _smooth_noise(rng, size, 8))[..., None]
        textures[BUILDING] = np.where(windows[..., None], np.float32([0.22, 0.27, 0.36]), facade)
    # cars: each its own paint, with a dark windscreen band
    if scene.cars:
        c = scene.cars
        x0, y0, x1, y1 = (per_owner(c, CAR, f) for f in ("x0", "y0", "x1", "y1"))
        glass = (y < y0 + 0.4 * (y1 - y0)) & (np.abs(x - (x0 + x1) / 2) < 0.35 * (x1 - x0))
        textures[CAR] = np.where(glass[..., None], np.float32([0.15, 0.18, 0.22]), per_owner(c, CAR, "colour"))
    light = scene.light * (1 + scene.slope * (2 * x - 1))[..., None]
    if winter:
        textures[SKY] = np.float32([0.6, 0.64, 0.7]) * (1 - fade) + np.float32([0.8, 0.82, 0.85]) * fade
        textures[GRASS] = np.float32([0.9, 0.93, 0.97]) * (0.88 + 0.12 * _smooth_noise(rng, size, 10))[..., None]
        snowy = _smooth_noise(rng, size, max(8, size // 2)) > 0.68
        textures[TREE] = np.where(snowy[..., None], np.float32([0.88, 0.9, 0.94]), 0.7 * textures[TREE])
        light = light * np.float32([0.9, 0.95, 1.02])
    image = np.take_along_axis(textures, labels[None, ..., None].astype(np.intp), 0)[0]
    return _to_uint8(image * light * _grain(rng, size, 0.03))


def labels_render(scene: StreetScene, domain: str, size: int) -> np.ndarray:
    """A: the label map in :data:`PALETTE` colours; B: the photo."""
    if domain == "A":
        return PALETTE[label_map(scene, size)]
    return _street_photo(scene, size, _texture_rng(scene, domain))


def seasons_render(scene: StreetScene, domain: str, size: int) -> np.ndarray:
    """A: the photo in summer; B: in winter. One texture generator for both seasons, so the houses
    and the road look the same in both."""
    return _street_photo(scene, size, _texture_rng(scene, "A"), winter=domain == "B")


def colors_to_labels(images: torch.Tensor) -> torch.Tensor:
    """Label maps from colour images: (N, 3, H, W) in [-1, 1] → (N, H, W) long, the nearest
    :data:`PALETTE` colour of each pixel (exact on rendered A images, the best guess on translations)."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"colors_to_labels takes (N, 3, H, W) images in [-1, 1], got shape {tuple(images.shape)}")
    rgb = (images.detach().float().cpu() + 1) * 127.5
    palette = torch.from_numpy(PALETTE).float()
    distances = torch.stack([((rgb - colour[:, None, None]) ** 2).sum(1) for colour in palette], 1)
    return distances.argmin(1)


def labels_to_colors(labels: torch.Tensor) -> torch.Tensor:
    """Colour label maps: (N, H, W) class indices → (N, 3, H, W) :data:`PALETTE` colours in [-1, 1]."""
    labels = torch.as_tensor(labels).long()
    if labels.numel() and (labels.min() < 0 or labels.max() >= len(PALETTE)):
        raise ValueError(f"labels must lie in 0..{len(PALETTE) - 1} ({', '.join(LABEL_CLASSES)}), "
                         f"got {int(labels.min())}..{int(labels.max())}")
    colours = torch.from_numpy(PALETTE).float()[labels]          # (..., 3)
    return colours.movedim(-1, -3) / 127.5 - 1


# --- tint: flat colours (A) ↔ the same colours shaded and outlined (B) ------------------------

@dataclass(frozen=True)
class Piece:
    """A disc (sides = 0) or a regular polygon of ``sides`` sides, radius ``radius``, in one colour
    (HSV). ``light`` is the direction the B rendering lights it from."""
    cx: float
    cy: float
    radius: float
    sides: int
    angle: float
    hsv: tuple[float, float, float]
    light: float

    def depth(self, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        """How far inside the piece each pixel lies (image fractions; negative outside)."""
        dx, dy = x - self.cx, y - self.cy
        if self.sides == 0:
            return self.radius - np.hypot(dx, dy)
        apothem = self.radius * np.cos(np.pi / self.sides)
        normals = self.angle + (2 * np.arange(self.sides) + 1) * np.pi / self.sides
        reach = dx[..., None] * np.cos(normals) + dy[..., None] * np.sin(normals)
        return apothem - reach.max(-1)


@dataclass(frozen=True)
class TintScene:
    pieces: tuple[Piece, ...]
    texture_seed: int


def tint_scene(rng: np.random.Generator) -> TintScene:
    """1–3 discs, triangles, squares or hexagons, hues uniform on the colour wheel."""
    pieces = tuple(Piece(rng.uniform(0.25, 0.75), rng.uniform(0.25, 0.75), rng.uniform(0.14, 0.26),
                         sides=int(rng.choice((0, 3, 4, 6))), angle=rng.uniform(0, 2 * np.pi),
                         hsv=(rng.uniform(0, 360), rng.uniform(0.55, 0.9), rng.uniform(0.6, 0.8)),
                         light=rng.uniform(0, 2 * np.pi))
                   for _ in range(int(rng.integers(1, 4))))
    return TintScene(pieces, texture_seed=int(rng.integers(2**63)))


def tint_render(scene: TintScene, domain: str, size: int) -> np.ndarray:
    """A: flat colours on flat grey; B: the same colours lit from one side with a dark rim, on
    blotchy grey."""
    y, x = _grid(size)
    if domain == "A":
        image = np.full((size, size, 3), 0.5, np.float32)
    else:   # neutral grey with soft blotches: no hue anywhere in the ground
        rng = _texture_rng(scene, domain)
        image = (0.45 + 0.1 * _smooth_noise(rng, size, 4))[..., None] * np.ones(3, np.float32)
    outline = max(0.035, 1.2 / size)
    for piece in scene.pieces:
        depth = piece.depth(y, x)
        colour = _hsv(*piece.hsv)
        if domain == "A":
            ink = colour * np.ones((size, size, 1), np.float32)
        else:   # scaling all three channels keeps the hue: lit side brighter, dark rim of the same hue
            toward = ((x - piece.cx) * np.cos(piece.light) + (y - piece.cy) * np.sin(piece.light)) / piece.radius
            shade = np.where(depth < outline, 0.4, 1 + 0.25 * np.clip(toward, -1, 1))
            ink = colour * shade[..., None]
        image = np.where((depth > 0)[..., None], ink, image)
    return _to_uint8(image)


# --- reshape: ellipses (A) ↔ squares of the same centre, area and colour (B) -------------------

RESHAPE_ASPECT = 2.5      # an ellipse's long axis over its short one: far from a square's 1
RESHAPE_CHROMA = 0.35     # reshape_mask's threshold: the tokens' chroma is at least 0.5, the grounds' at most 0.2


@dataclass(frozen=True)
class Token:
    """One object of the reshape task, in one colour (HSV): in A the ellipse ``body``, in B the square
    with the same centre, orientation and area (side ``√(π·rx·ry)``)."""
    body: Blob
    hsv: tuple[float, float, float]

    def inside(self, y: np.ndarray, x: np.ndarray, domain: str) -> np.ndarray:
        if domain == "A":
            return self.body.inside(y, x)
        u, v = self.body.local(y, x)
        return np.maximum(np.abs(u), np.abs(v)) <= np.sqrt(np.pi * self.body.rx * self.body.ry) / 2


@dataclass(frozen=True)
class ReshapeScene:
    tokens: tuple[Token, ...]
    texture_seed: int


def reshape_scene(rng: np.random.Generator) -> ReshapeScene:
    """1–3 tokens of saturated colours, hues anywhere on the wheel, apart from each other in both shapes."""
    tokens: list[Token] = []
    for _ in range(int(rng.integers(1, 4))):
        ry = rng.uniform(0.06, 0.085)
        rx = RESHAPE_ASPECT * ry          # the ellipse's reach; the square's corners reach 1.98·ry, less
        for _attempt in range(10):
            cx, cy = rng.uniform(rx + 0.03, 1 - rx - 0.03, size=2)
            if all(np.hypot(cx - t.body.cx, cy - t.body.cy) > rx + t.body.rx + 0.03 for t in tokens):
                break
        else:
            continue
        tokens.append(Token(Blob(cx, cy, rx, ry, angle=rng.uniform(-0.6, 0.6)),
                            hsv=(rng.uniform(0, 360), rng.uniform(0.75, 0.9), rng.uniform(0.75, 0.9))))
    return ReshapeScene(tuple(tokens), texture_seed=int(rng.integers(2**63)))


def reshape_render(scene: ReshapeScene, domain: str, size: int) -> np.ndarray:
    """A: the tokens as ellipses on a pale blue-grey ground; B: as squares on a pale sand ground. Both
    grounds are nearly colourless, the tokens strongly coloured (what :func:`reshape_mask` reads)."""
    rng = _texture_rng(scene, domain)
    y, x = _grid(size)
    ground = _hsv(215, 0.12, 0.8) if domain == "A" else _hsv(40, 0.18, 0.85)
    image = ground * (0.9 + 0.2 * _smooth_noise(rng, size, 4))[..., None]
    for token in scene.tokens:
        shade = 1 + 0.08 * np.clip((token.body.cy - y) / token.body.rx, -1, 1)     # lit from above
        image = np.where(token.inside(y, x, domain)[..., None], _hsv(*token.hsv) * shade[..., None], image)
    return _to_uint8(image * _grain(rng, size, 0.03))


def token_mask(scene: ReshapeScene, domain: str, size: int) -> np.ndarray:
    """The true mask of the tokens of a reshape scene drawn in ``domain``: (S, S) bool."""
    y, x = _grid(size)
    mask = np.zeros((size, size), bool)
    for token in scene.tokens:
        mask |= token.inside(y, x, domain)
    return mask


def reshape_mask(images: torch.Tensor) -> torch.Tensor:
    """The tokens of reshape images, rendered or translated, in either domain: (N, 3, H, W) in [-1, 1]
    → (N, H, W) bool, where the chroma (max − min of R, G, B on a 0..1 scale) exceeds
    :data:`RESHAPE_CHROMA`. The shape of what was drawn, whatever its colour."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"reshape_mask takes (N, 3, H, W) images in [-1, 1], got shape {tuple(images.shape)}")
    rgb = (images.detach().float().cpu() + 1) / 2
    return rgb.amax(1) - rgb.amin(1) > RESHAPE_CHROMA


# --- distractor: the shapes task with a rock in some A images only (dataset bias) -------------

DISTRACTOR_SHARE = 0.5    # the share of A scenes drawn with a rock (B's never have one)
GROUND, ANIMAL, ROCK = range(3)   # the parts map written as test{A,B}_parts


@dataclass(frozen=True)
class Rock:
    """The distractor: a box-like grey rock (a rounded rectangle), slightly blue (never brown), with
    blotches, a darker base and a dark rim. Its texture comes from the scene alone, and it is drawn
    after everything else, so that it is the same pixels in both domains."""
    body: Blob
    grey: float


@dataclass(frozen=True)
class DistractorScene:
    shapes: ShapesScene
    rock: Rock | None


def distractor_scene(rng: np.random.Generator) -> DistractorScene:
    """A shapes scene (the same animals as the shapes task's scene of the same seed, split and index)
    and, in :data:`DISTRACTOR_SHARE` of the scenes where there is room, a rock apart from the animals."""
    shapes = shapes_scene(rng)
    wanted = rng.random() < DISTRACTOR_SHARE
    rx = rng.uniform(0.1, 0.13)
    ry, angle, grey = rx * rng.uniform(0.65, 0.8), rng.uniform(-0.12, 0.12), rng.uniform(0.45, 0.58)
    reach = np.hypot(rx, ry)
    y, x = _grid(64)
    animals = shapes_mask(shapes, 64)
    for _attempt in range(30):           # at least 0.03 (two pixels at 64 px) from every animal
        cx, cy = rng.uniform(reach + 0.02, 1 - reach - 0.02, size=2)
        if not (Blob(cx, cy, rx + 0.03, ry + 0.03, angle, power=5).inside(y, x) & animals).any():
            return DistractorScene(shapes, Rock(Blob(cx, cy, rx, ry, angle, power=5), grey) if wanted else None)
    return DistractorScene(shapes, None)


def _without_rock_in_B(scene: DistractorScene, domain: str) -> DistractorScene:
    """B's scenes (trainB, testB) never hold a rock: no zebra photo shows one."""
    return scene if domain == "A" else dataclasses.replace(scene, rock=None)


def distractor_render(scene: DistractorScene, domain: str, size: int) -> np.ndarray:
    """The shapes rendering of the animals and the ground, then the rock, identical in both domains."""
    image = shapes_render(scene.shapes, domain, size)
    rock = scene.rock
    if rock is None:
        return image
    y, x = _grid(size)
    rng = np.random.default_rng([scene.shapes.texture_seed, len(DOMAINS)])    # neither domain's stream
    u, v = rock.body.local(y, x)
    edge = np.abs(u / rock.body.rx) ** 5 + np.abs(v / rock.body.ry) ** 5
    shade = (0.85 + 0.3 * _smooth_noise(rng, size, 3)) * (1 - 0.2 * np.clip(v / rock.body.ry, 0, 1)) \
        * np.where(edge > 0.6, 0.75, 1.0)
    colour = _to_uint8(_hsv(210, 0.08, rock.grey) * (shade[..., None] * _grain(rng, size, 0.03)))
    inside = rock.body.inside(y, x)
    image[inside] = colour[inside]
    return image


def distractor_parts(scene: DistractorScene, size: int) -> np.ndarray:
    """What each pixel of a distractor scene shows: (S, S) uint8, :data:`GROUND`, :data:`ANIMAL` or :data:`ROCK`."""
    parts = np.where(shapes_mask(scene.shapes, size), ANIMAL, GROUND).astype(np.uint8)
    if scene.rock is not None:
        y, x = _grid(size)
        parts[scene.rock.body.inside(y, x)] = ROCK
    return parts


def read_parts(folder: str | Path, size: int) -> torch.Tensor:
    """The parts maps of a distractor folder's test split (``testA_parts``, sorted like its images) as
    (N, S, S) uint8; a clear error if they were drawn at another size."""
    from ..data import list_images
    maps = [np.asarray(Image.open(path)) for path in list_images(folder)]
    if maps[0].shape != (size, size):
        raise ValueError(f"{folder} holds {maps[0].shape[0]} px parts maps, not {size} px: "
                         "score at the size the task was generated at")
    return torch.from_numpy(np.stack(maps))


# --- the tasks and the writer -----------------------------------------------------------------

@dataclass(frozen=True)
class Procedure:
    """How to make one task: draw a scene from a generator, render it in a domain at a size, and
    (optionally) the per-pixel truth written next to the test images as ``test{A,B}_{truth_name}``.
    ``in_domain`` (optional) cuts a scene drawn for a split of a domain to what that domain's scenes
    hold (distractor: B's never hold a rock)."""
    description: str
    sample: Callable[[np.random.Generator], Any]
    render: Callable[[Any, str, int], np.ndarray]
    truth: Callable[[Any, int], np.ndarray] | None = None
    truth_name: str = ""
    in_domain: Callable[[Any, str], Any] | None = None   # what a scene drawn for a split of that domain keeps


PROCEDURES: dict[str, Procedure] = {
    "shapes": Procedure(
        "A: 1–3 plain brown bodies on grass; B: the same bodies zebra-striped on savanna; "
        "GT: the other rendering of each test scene + object masks (horse↔zebra analogue)",
        shapes_scene, shapes_render, lambda scene, size: shapes_mask(scene, size).astype(np.uint8) * 255, "mask"),
    "labels": Procedure(
        "A: colour-coded label maps (sky, building, tree, road, grass, car); B: rendered street scenes; "
        "GT: the other rendering + class maps (Cityscapes analogue)",
        labels_scene, labels_render, label_map, "labels"),
    "seasons": Procedure(
        "A: street scenes in summer; B: the same scenes in winter (snow on ground and trees, overcast sky); "
        "GT: the other season (summer↔winter analogue)",
        labels_scene, seasons_render),
    "tint": Procedure(
        "A: flat coloured pieces on grey; B: the same pieces, same hues, shaded and outlined; "
        "GT: the other rendering (colour drift / identity loss)",
        tint_scene, tint_render),
    "reshape": Procedure(
        "A: 1–3 coloured ellipses on blue-grey; B: the same objects as squares (same centre, area, colour) on sand; "
        "GT: the other rendering (a change of shape, not of texture)",
        reshape_scene, reshape_render),
    "distractor": Procedure(
        "A: the shapes animals on grass, about half the scenes with a grey rock; B: striped animals on savanna, never "
        "a rock; GT: the other rendering, the rock unchanged + parts maps (the rider of horse2zebra)",
        distractor_scene, distractor_render, distractor_parts, "parts", in_domain=_without_rock_in_B),
}


def make_scene(name: str, seed: int, split: str, index: int) -> Any:
    """The scene behind image ``index`` of ``split`` (trainA, trainB, testA, testB) of task ``name``."""
    procedure = _procedure(name)
    scene = procedure.sample(scene_rng(seed, split, index))
    return scene if procedure.in_domain is None else procedure.in_domain(scene, split[-1])


def render(name: str, scene: Any, domain: str, size: int) -> np.ndarray:
    """A scene of task ``name`` drawn in ``domain`` ("A" or "B") as an (S, S, 3) uint8 array."""
    if domain not in DOMAINS:
        raise ValueError(f"domain={domain!r}: choose 'A' or 'B'")
    return _procedure(name).render(scene, domain, _check_size(size))


def _procedure(name: str) -> Procedure:
    if name not in PROCEDURES:
        raise ValueError(f"unknown procedural task {name!r}; choose one of {', '.join(PROCEDURES)}")
    return PROCEDURES[name]


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"size={size!r}: procedural tasks draw {MIN_SIZE} to {MAX_SIZE} pixel images; "
                         f"pass a size (--size) between {MIN_SIZE} and {MAX_SIZE}")
    return int(size)


def _check_count(n: int | None, default: int, what: str, flag: str = "") -> int:
    if n is None:
        return default
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{what}={n!r}{flag}: need a whole number of images, at least 1")
    return int(n)


def build(name: str, out: Path, size: int, n_train: int | None, n_test: int | None, seed: int,
          paired: bool) -> None:
    """Write task ``name`` into ``out`` (see the module docstring for the folders)."""
    procedure = _procedure(name)
    size = _check_size(size)
    n_train = _check_count(n_train, DEFAULT_N_TRAIN, "n_train", " (--n)")
    n_test = _check_count(n_test, DEFAULT_N_TEST, "n_test")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed={seed!r}: need a whole number >= 0")
    out = Path(out)

    def save(array: np.ndarray, folder: str, index: int, n: int) -> None:
        (out / folder).mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(out / folder / f"{index:0{max(4, len(str(n - 1)))}d}.png", compress_level=1)

    if paired:
        for folder, split, n in (("train", "trainA", n_train), ("test", "testA", n_test)):
            for i in range(n):
                scene = make_scene(name, seed, split, i)
                ab = np.concatenate([procedure.render(scene, d, size) for d in DOMAINS], axis=1)
                save(ab, folder, i, n)
        return
    for split, n in (("trainA", n_train), ("trainB", n_train), ("testA", n_test), ("testB", n_test)):
        domain = split[-1]
        other = "B" if domain == "A" else "A"
        for i in range(n):
            scene = make_scene(name, seed, split, i)
            save(procedure.render(scene, domain, size), split, i, n)
            if split.startswith("test"):
                save(procedure.render(scene, other, size), f"{split}_gt", i, n)
                if procedure.truth is not None:
                    save(procedure.truth(scene, size), f"{split}_{procedure.truth_name}", i, n)


for _name, _procedure_spec in PROCEDURES.items():
    register(_name, "procedural", _procedure_spec.description, default_size=32)(functools.partial(build, _name))
