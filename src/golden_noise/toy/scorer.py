"""The toy world's exact alignment scorer: does an image show what the prompt asks for?

Detection. A pixel is foreground when its brightest channel exceeds ``FG_THRESHOLD``; 8-connected
foreground components are objects. An object's colour is the palette colour closest in
direction (cosine) to its summed RGB, so anti-aliased and dimmed edges keep their hue. Its
per-pixel coverage is the RGB projected on that colour; components covering less than
``MIN_AREA`` px are specks (ignored by ``correct``, penalised by ``soft``). Its shape is the
best of circle, square and upward triangle drawn by the renderer with the same area and
centroid, judged by soft IoU with the observed coverage, so blurred and rounded shapes are
judged like crisp ones.

Outputs, per image:

- ``correct``: exactly the prompted objects by colour and shape, counts included, no extra
  objects, and for position prompts the first object's centroid on the prompted side of the
  second's.
- ``soft`` in [0, 1], which rewards partial success and cleaner shapes. Each prompted object
  is matched to a detected one (optimal assignment) with value
  ``(colour equal + shape equal) / 2 * IoU`` of the detected shape's fit; ``objects`` = sum of
  matched values / max(prompted, detected), so misses and extras both cost. ``clean`` = the
  share of all image brightness lying in matched objects (specks and smudges cost).
  For position prompts ``relation`` = clip(0.5 + margin / 8, 0, 1) with the signed centroid
  margin in px (0 if either object is unmatched).
  ``soft = 0.8 objects + 0.2 clean``, or ``0.6 objects + 0.2 relation + 0.2 clean`` for
  position prompts.
"""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.toy.grammar import COLOURS, SHAPES, parse
from golden_noise.toy.scenes import SIZE, coverage, relation_margin

FG_THRESHOLD = 0.3
MIN_AREA = 12.0
_NAMES = list(COLOURS)
_PALETTE = np.asarray([COLOURS[c] for c in _NAMES], np.float32) / 255.0
_UNIT = _PALETTE / np.linalg.norm(_PALETTE, axis=1, keepdims=True)
_EIGHT = np.ones((3, 3), bool)
# Size from area for each shape hypothesis (circle: pi s^2 / 4, square: s^2, triangle: s^2 / 2).
_SIZE_FROM_AREA = {
    "circle": lambda a: 2 * np.sqrt(a / np.pi),
    "square": np.sqrt,
    "triangle": lambda a: np.sqrt(2 * a),
}


@dataclass(frozen=True)
class Found:
    """One detected object."""

    colour: str
    shape: str
    centroid: tuple[float, float]
    area: float
    iou: float
    brightness: float


@dataclass(frozen=True)
class ToyScore:
    """Scores for a batch: ``correct`` (bool ``[B]``) and ``soft`` (float32 ``[B]``, in [0, 1])."""

    correct: torch.Tensor
    soft: torch.Tensor


def detect(image: np.ndarray) -> tuple[list[Found], float]:
    """Objects in one float ``[32, 32, 3]`` image in [0, 1], and its total brightness."""
    bright = image.max(axis=2)
    labels, n = ndimage.label(bright > FG_THRESHOLD, structure=_EIGHT)
    found = []
    for k in range(1, n + 1):
        mask = labels == k
        region = ndimage.binary_dilation(mask, _EIGHT) & ((labels == 0) | mask)
        rgb = image[mask].sum(axis=0)
        c = int(np.argmax(_UNIT @ rgb))
        cov = np.clip(image @ _PALETTE[c] / (_PALETTE[c] @ _PALETTE[c]), 0, 1) * region
        area = float(cov.sum())
        ys, xs = np.indices(cov.shape) + 0.5
        cx, cy = float((cov * xs).sum() / area), float((cov * ys).sum() / area)
        shape, iou = _fit_shape(cov, area, cx, cy)
        found.append(Found(_NAMES[c], shape, (cx, cy), area, iou, float(bright[region].sum())))
    return found, float(bright.sum())


def _fit_shape(cov: np.ndarray, area: float, cx: float, cy: float) -> tuple[str, float]:
    best = ("circle", -1.0)
    for shape in SHAPES:
        s = float(_SIZE_FROM_AREA[shape](area))
        box_cy = cy - s / 6 if shape == "triangle" else cy
        t = coverage(shape, cx, box_cy, s)
        iou = float(np.minimum(cov, t).sum() / max(np.maximum(cov, t).sum(), 1e-6))
        if iou > best[1]:
            best = (shape, iou)
    return best


def score_one(image: np.ndarray, prompt: str) -> tuple[bool, float]:
    """``(correct, soft)`` for one float ``[32, 32, 3]`` image in [0, 1]; see the module doc."""
    spec = parse(prompt)
    found, total = detect(image)
    objects = [f for f in found if f.area >= MIN_AREA]
    wanted = list(spec.objects)
    value = np.zeros((len(wanted), len(objects)))
    for i, (colour, shape) in enumerate(wanted):
        for j, f in enumerate(objects):
            value[i, j] = ((f.colour == colour) + (f.shape == shape)) / 2 * f.iou
    rows, cols = linear_sum_assignment(value, maximize=True)
    matched = {int(r): objects[c] for r, c in zip(rows, cols, strict=True) if value[r, c] > 0}
    obj_term = sum(value[r, c] for r, c in zip(rows, cols, strict=True))
    obj_term /= max(len(wanted), len(objects))
    clean = sum(f.brightness for f in matched.values()) / total if total > 0 else 0.0
    correct = Counter((f.colour, f.shape) for f in objects) == Counter(wanted)
    if spec.relation is None:
        return correct, float(0.8 * obj_term + 0.2 * clean)
    relation = 0.0
    if 0 in matched and 1 in matched:
        margin = relation_margin(spec.relation, matched[0].centroid, matched[1].centroid)
        relation = float(np.clip(0.5 + margin / 8, 0, 1))
        correct = (
            correct
            and margin > 0
            and all((matched[i].colour, matched[i].shape) == wanted[i] for i in (0, 1))
        )
    else:
        correct = False
    return correct, float(0.6 * obj_term + 0.2 * relation + 0.2 * clean)


def score(images: object, prompts: str | Sequence[str]) -> ToyScore:
    """Score images against prompts.

    ``images``: a PIL image or list of them, a uint8 numpy array ``[H, W, 3]`` or
    ``[B, H, W, 3]``, or a float tensor ``[3, H, W]`` / ``[B, 3, H, W]`` in [0, 1].
    ``prompts``: one prompt per image (a single string is broadcast).
    """
    batch = to_float_hwc(images)
    if isinstance(prompts, str):
        prompts = [prompts] * len(batch)
    if len(prompts) != len(batch):
        raise GoldenNoiseError(f"expected one prompt per image ({len(batch)}), got {len(prompts)}")
    pairs = [score_one(img, p) for img, p in zip(batch, prompts, strict=True)]
    return ToyScore(
        correct=torch.tensor([c for c, _ in pairs], dtype=torch.bool),
        soft=torch.tensor([s for _, s in pairs], dtype=torch.float32),
    )


def to_float_hwc(images: object) -> np.ndarray:
    """Any supported image batch as float32 ``[B, 32, 32, 3]`` in [0, 1]."""
    if isinstance(images, Image.Image):
        images = [images]
    if isinstance(images, list | tuple) and images and isinstance(images[0], Image.Image):
        images = np.stack([np.asarray(im.convert("RGB")) for im in images])
    if isinstance(images, torch.Tensor):
        t = images.detach().float().cpu()
        t = t[None] if t.ndim == 3 else t
        if t.ndim != 4 or t.shape[1] != 3:
            raise GoldenNoiseError(f"expected a float tensor [B, 3, H, W], got {tuple(t.shape)}")
        arr = t.permute(0, 2, 3, 1).numpy()
    elif isinstance(images, np.ndarray):
        arr = images[None] if images.ndim == 3 else images
        if arr.dtype == np.uint8:
            arr = arr.astype(np.float32) / 255.0
    else:
        raise GoldenNoiseError(
            f"expected PIL images, a uint8 array [B, H, W, 3] or a tensor [B, 3, H, W], "
            f"got {type(images).__name__}"
        )
    if arr.ndim != 4 or arr.shape[1:] != (SIZE, SIZE, 3):
        raise GoldenNoiseError(f"expected {SIZE}x{SIZE} RGB images, got shape {arr.shape}")
    return np.clip(arr.astype(np.float32), 0, 1)
