"""Scenes of the toy world: random layouts that satisfy a prompt, drawn anti-aliased at 32x32.

A shape is given by its bounding-box centre ``(cx, cy)`` and size ``s`` (8-11 px across) in
pixel units (pixel ``(i, j)`` covers ``[j, j+1] x [i, i+1]``). Circles have diameter ``s``;
squares side ``s``; triangles point up with base and height ``s``. Objects never overlap:
their bounding boxes are at least ``MIN_GAP`` px apart. ``coverage`` is shared with the
scorer, which fits the same shapes to what it sees.
"""

import random
from dataclasses import dataclass

import numpy as np

from golden_noise.toy.grammar import COLOURS, Spec, parse

SIZE = 32
MIN_SHAPE, MAX_SHAPE = 8.0, 11.0
MIN_GAP = 2.0
RELATION_MARGIN = 4.0  # px between the two centroids along the prompted axis in renders
_SUPERSAMPLE = 4
_SUB = (np.arange(SIZE * _SUPERSAMPLE) + 0.5) / _SUPERSAMPLE


@dataclass(frozen=True)
class Placed:
    """One drawn object."""

    colour: str
    shape: str
    cx: float
    cy: float
    size: float

    def centroid(self) -> tuple[float, float]:
        """Area centroid (a triangle's sits a sixth of its height below the box centre)."""
        return self.cx, self.cy + (self.size / 6 if self.shape == "triangle" else 0.0)


def coverage(shape: str, cx: float, cy: float, size: float) -> np.ndarray:
    """Fraction of each pixel inside the shape, ``[SIZE, SIZE]`` float32 (4x4 supersampled)."""
    x = _SUB[None, :] - cx
    y = _SUB[:, None] - cy
    h = size / 2
    if shape == "circle":
        inside = x * x + y * y <= h * h
    elif shape == "square":
        inside = (np.abs(x) <= h) & (np.abs(y) <= h)
    else:  # upward triangle: apex at (cx, cy - h), base at y = cy + h
        inside = (y <= h) & (np.abs(x) <= (y + h) / 2)
    n = _SUPERSAMPLE
    return inside.reshape(SIZE, n, SIZE, n).mean(axis=(1, 3)).astype(np.float32)


def layout(spec: Spec, rng: random.Random) -> list[Placed]:
    """Random non-overlapping positions and sizes that satisfy ``spec`` (rejection sampling)."""
    while True:
        placed: list[Placed] = []
        for colour, shape in spec.objects:
            for _ in range(100):
                s = rng.uniform(MIN_SHAPE, MAX_SHAPE)
                cx = rng.uniform(s / 2 + 0.5, SIZE - s / 2 - 0.5)
                cy = rng.uniform(s / 2 + 0.5, SIZE - s / 2 - 0.5)
                cand = Placed(colour, shape, cx, cy, s)
                if all(_apart(cand, other) for other in placed):
                    placed.append(cand)
                    break
            else:
                break
        if len(placed) == len(spec.objects) and _relation_holds(spec, placed):
            return placed


def _apart(a: Placed, b: Placed) -> bool:
    gap_x = abs(a.cx - b.cx) - (a.size + b.size) / 2
    gap_y = abs(a.cy - b.cy) - (a.size + b.size) / 2
    return max(gap_x, gap_y) >= MIN_GAP


def _relation_holds(spec: Spec, placed: list[Placed]) -> bool:
    if spec.relation is None:
        return True
    return relation_margin(spec.relation, placed[0].centroid(), placed[1].centroid()) >= (
        RELATION_MARGIN
    )


def relation_margin(
    relation: tuple[str, str], first: tuple[float, float], second: tuple[float, float]
) -> float:
    """Signed px by which ``first`` is on side ``relation[0]`` of ``second`` (> 0: it is)."""
    side = relation[0]
    if side == "left":
        return second[0] - first[0]
    if side == "right":
        return first[0] - second[0]
    if side == "top":
        return second[1] - first[1]
    return first[1] - second[1]


def draw(objects: list[Placed]) -> np.ndarray:
    """Paint objects on black: ``[SIZE, SIZE, 3]`` uint8."""
    canvas = np.zeros((SIZE, SIZE, 3), np.float32)
    for o in objects:
        cov = coverage(o.shape, o.cx, o.cy, o.size)[..., None]
        canvas = canvas * (1 - cov) + cov * np.asarray(COLOURS[o.colour], np.float32)
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


def render(prompt: str, seed: int) -> np.ndarray:
    """A ground-truth image for ``prompt``: ``[32, 32, 3]`` uint8, deterministic in ``seed``."""
    return draw(layout(parse(prompt), random.Random(seed)))
