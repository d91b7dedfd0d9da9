"""How well the toy pipeline follows prompts: correct rates per prompt type, seed dependence.

Every (prompt, seed) image starts from ``seeds.seeded_generator(seed)``, so a result
does not depend on how images are batched.
"""

import time
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image, ImageDraw

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.core.progress import track
from golden_noise.core.seeds import seeded_generator
from golden_noise.core.validate import integer, number
from golden_noise.toy.grammar import PROMPT_TYPES, parse, prompts_of
from golden_noise.toy.pipeline import DEFAULT_GUIDANCE, DEFAULT_STEPS
from golden_noise.toy.scorer import score


@dataclass
class Quality:
    """Per prompt type: ``correct`` rate over all images, ``soft`` mean, and the share of
    prompts that succeed for some seeds and fail for others. ``overall_*`` average the four
    types equally (GenEval style). ``seconds_per_batch`` is the wall time of one call."""

    correct: dict[str, float] = field(default_factory=dict)
    soft: dict[str, float] = field(default_factory=dict)
    seed_dependent: dict[str, float] = field(default_factory=dict)
    images: int = 0
    seconds_per_batch: float = 0.0

    @property
    def overall_correct(self) -> float:
        """Mean of the per-type correct rates."""
        return float(np.mean(list(self.correct.values())))

    @property
    def overall_seed_dependent(self) -> float:
        """Mean of the per-type seed-dependent shares."""
        return float(np.mean(list(self.seed_dependent.values())))


def generate(
    pipe,
    prompts: list[str],
    seeds: list[int],
    guidance: float = DEFAULT_GUIDANCE,
    steps: int = DEFAULT_STEPS,
) -> torch.Tensor:
    """Images ``[B, 3, 32, 32]`` in [0, 1], one per (prompt, seed); NaN or infinite ones (a
    sampler overflowing) are refused rather than scored as failures."""
    generators = [seeded_generator(s) for s in seeds]
    out = pipe(
        prompts,
        num_inference_steps=steps,
        guidance_scale=guidance,
        generator=generators,
        output_type="pt",
    )
    images = out.images.float().cpu()
    if not torch.isfinite(images).all():
        raise GoldenNoiseError(
            f"the pipeline drew NaN or infinite images (guidance {guidance}, {steps} steps): "
            "scoring them would report a silent 0. Check its weights and the sampler settings"
        )
    return images


def measure(
    pipe,
    split: str = "heldout",
    seeds: int = 8,
    guidance: float = DEFAULT_GUIDANCE,
    steps: int = DEFAULT_STEPS,
    batch_size: int = 64,
) -> Quality:
    """Generate every prompt of ``split`` with seeds ``0..seeds-1`` and score them."""
    integer("seeds", seeds, 1, 10_000)  # 0 seeds would be a table of NaN rates
    number("guidance", guidance, 0)
    integer("steps", steps, 1, 1000)
    integer("batch_size", batch_size, 1, 65536)
    pipe.set_progress_bar_config(disable=True)
    jobs = [(p, s) for t in PROMPT_TYPES for p in prompts_of(split, t) for s in range(seeds)]
    hits: dict[str, list[bool]] = defaultdict(list)
    softs: dict[str, list[float]] = defaultdict(list)
    times = []
    for i in track(range(0, len(jobs), batch_size), description=f"toy quality ({split})"):
        chunk = jobs[i : i + batch_size]
        prompts = [p for p, _ in chunk]
        tic = time.perf_counter()
        images = generate(pipe, prompts, [s for _, s in chunk], guidance, steps)
        times.append(time.perf_counter() - tic)
        result = score(images, prompts)
        for p, c, s in zip(prompts, result.correct.tolist(), result.soft.tolist(), strict=True):
            hits[p].append(c)
            softs[p].append(s)
    quality = Quality(images=len(jobs), seconds_per_batch=float(np.median(times)))
    for t in PROMPT_TYPES:
        ps = [p for p in hits if parse(p).prompt_type == t]
        quality.correct[t] = float(np.mean([h for p in ps for h in hits[p]]))
        quality.soft[t] = float(np.mean([s for p in ps for s in softs[p]]))
        quality.seed_dependent[t] = float(np.mean([0 < sum(hits[p]) < len(hits[p]) for p in ps]))
    return quality


def grid(images: torch.Tensor, labels: list[str], scale: int = 4) -> Image.Image:
    """Tile ``[rows * cols, 3, 32, 32]`` images row-major, one labelled row per prompt."""
    rows = len(labels)
    cols = len(images) // rows
    arr = (images.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    h, w = arr.shape[1:3]
    canvas = np.full((rows * (h + 2), cols * (w + 2), 3), 64, np.uint8)
    for k, im in enumerate(arr):
        r, c = divmod(k, cols)
        canvas[r * (h + 2) + 1 : r * (h + 2) + 1 + h, c * (w + 2) + 1 : c * (w + 2) + 1 + w] = im
    tiles = Image.fromarray(canvas)
    tiles = tiles.resize((tiles.width * scale, tiles.height * scale), Image.NEAREST)
    label_width = 8 + 6 * max(len(t) for t in labels)
    pic = Image.new("RGB", (label_width + tiles.width, tiles.height), (255, 255, 255))
    pic.paste(tiles, (label_width, 0))
    draw = ImageDraw.Draw(pic)
    row_h = tiles.height / rows
    for r, text in enumerate(labels):
        draw.text((4, r * row_h + row_h / 2 - 5), text, fill=(0, 0, 0))
    return pic
