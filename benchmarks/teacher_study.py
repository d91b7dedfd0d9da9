"""Does the re-denoise teacher make better noise on the toy world? Measured against controls.

For (prompt, seed) rows from the toy world's train and validation prompts (never held-out),
every arm generates one image with the toy sampler and the exact scorer judges it
(`correct`, `soft`), paired with the image of the row's own x_T ("base"):
- `redenoise-N{n}`: the paper's teacher, its DDIM step taken on an n-step schedule
  (w_l 5.5, w_w 1.0, exact inversion);
- `authors-N10`: the same with the authors' inversion variant;
- `control-N10`: w_l = w_w = 5.5, so only the guidance gap is removed;
- `random-N{n}`: x_T moved by a random direction of exactly the teacher's ||x_T' - x_T||,
  then re-standardised (zero mean, unit variance per sample).
Per arm: fixed (base wrong -> arm correct) and broken counts with an exact sign test, the
mean soft difference with a bootstrap 95% interval, soft wins/losses with a sign test, and
the Wilcoxon signed-rank p (golden_noise.evaluation.stats).

    .venv/bin/python benchmarks/teacher_study.py --rows 1000 --out teacher_study.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from rich.progress import track
from scipy.stats import binomtest

from golden_noise.adapters import adapter_for
from golden_noise.adapters.loading import pipeline_from_spec
from golden_noise.evaluation.stats import paired_stats
from golden_noise.scorers.registry import get_scorer
from golden_noise.teachers import CollectionSampler, SamplerSettings
from golden_noise.teachers.redenoise_step import RedenoiseSettings, redenoise
from golden_noise.teachers.sampler import tile_rows
from golden_noise.toy import DEFAULT_GUIDANCE, DEFAULT_STEPS, sample_prompts, score


def teacher_arms(schedules: list[int]) -> dict[str, RedenoiseSettings]:
    arms = {f"redenoise-N{n}": RedenoiseSettings(steps=n) for n in schedules}
    arms["authors-N10"] = RedenoiseSettings(steps=10, inversion="authors")
    arms["control-N10"] = RedenoiseSettings(steps=10, w_l=5.5, w_w=5.5)
    return arms


def random_like(source: torch.Tensor, target: torch.Tensor, seed: int) -> torch.Tensor:
    """x_T plus a random direction of the teacher's step length, re-standardised per sample."""
    generator = torch.Generator().manual_seed(seed)
    direction = torch.randn(source.shape, generator=generator)
    flat = direction.flatten(1)
    size = (target - source).flatten(1).norm(dim=1, keepdim=True)
    moved = source.flatten(1) + flat / flat.norm(dim=1, keepdim=True) * size
    moved = (moved - moved.mean(dim=1, keepdim=True)) / moved.std(dim=1, keepdim=True)
    return moved.reshape(source.shape)


def rows_for(n: int, seed: int) -> list[tuple[str, int]]:
    """n (prompt, seed) rows, half from train prompts and half from validation prompts."""
    half = n // 2
    prompts = sample_prompts(half, seed, "train") + sample_prompts(n - half, seed, "validation")
    return [(prompt, 10_000 + i) for i, prompt in enumerate(prompts)]


def summarise(base: dict[str, np.ndarray], arm: dict[str, np.ndarray]) -> dict[str, float]:
    fixed = int((~base["correct"] & arm["correct"]).sum())
    broken = int((base["correct"] & ~arm["correct"]).sum())
    soft = paired_stats(base["soft"], arm["soft"])
    untied = soft["wins"] + soft["losses"]
    return {
        "correct_base": float(base["correct"].mean()),
        "correct_arm": float(arm["correct"].mean()),
        "fixed": fixed,
        "broken": broken,
        "correct_sign_p": binomtest(fixed, fixed + broken).pvalue if fixed + broken else 1.0,
        "soft_mean_diff": soft["mean_diff"],
        "soft_ci95": [soft["ci95_low"], soft["ci95_high"]],
        "soft_wins": soft["wins"],
        "soft_losses": soft["losses"],
        "soft_sign_p": binomtest(soft["wins"], untied).pvalue if untied else 1.0,
        "soft_wilcoxon_p": soft["wilcoxon_p"],
        "relative_move": float(arm["move"].mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", default="toy", help="'toy' or a toy-world pipeline folder")
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--schedules", default="10,20,50")
    parser.add_argument(
        "--random-for", default="10", help="schedules whose teacher gets a random control"
    )
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="sampler steps")
    parser.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE)
    parser.add_argument("--prompt-seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("teacher_study.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    pipe = pipeline_from_spec(args.pipeline, dtype="float32", device="cpu")
    adapter = adapter_for(pipe)
    sampler = CollectionSampler(
        pipe, get_scorer("toy-soft"), SamplerSettings(args.steps, args.guidance), args.batch_size
    )
    schedules = [int(n) for n in args.schedules.split(",")]
    settings = teacher_arms(schedules)
    randoms = [int(n) for n in args.random_for.split(",") if n]
    arm_names = ["base", *settings, *(f"random-N{n}" for n in randoms)]
    rows = rows_for(args.rows, args.prompt_seed)
    results = {name: {"correct": [], "soft": [], "move": []} for name in arm_names}
    start = time.perf_counter()
    for first in track(range(0, len(rows), args.batch_size), description="teacher study"):
        batch = rows[first : first + args.batch_size]
        prompts, seeds = [p for p, _ in batch], [s for _, s in batch]
        generators = [torch.Generator().manual_seed(s) for s in seeds]
        source = adapter.initial_noise(len(batch), None, None, generators, torch.float32)
        kwargs = adapter.call_kwargs(prompts)
        latents = {"base": source}
        for name, setting in settings.items():
            latents[name] = redenoise(pipe, source, kwargs, setting)
        for n in randoms:
            latents[f"random-N{n}"] = random_like(source, latents[f"redenoise-N{n}"], first + n)
        stacked = torch.cat([latents[name] for name in arm_names])
        images = sampler.images(stacked, tile_rows(kwargs, len(arm_names)), seeds * len(arm_names))
        judged = score(images, prompts * len(arm_names))
        for k, name in enumerate(arm_names):
            part = slice(k * len(batch), (k + 1) * len(batch))
            move = (latents[name] - source).flatten(1).norm(dim=1) / source.flatten(1).norm(dim=1)
            results[name]["correct"].append(judged.correct[part].numpy())
            results[name]["soft"].append(judged.soft[part].numpy())
            results[name]["move"].append(move.numpy())
        if first == 0:
            per_batch = time.perf_counter() - start
            print(f"first batch: {per_batch:.1f} s for {len(batch)} rows x {len(arm_names)} arms")
    merged = {
        name: {key: np.concatenate(parts) for key, parts in columns.items()}
        for name, columns in results.items()
    }
    table = {name: summarise(merged["base"], merged[name]) for name in arm_names[1:]}
    report = {
        "rows": len(rows),
        "sampler": {"steps": args.steps, "guidance": args.guidance, "scheduler": "ddim"},
        "seconds": time.perf_counter() - start,
        "correct_base": float(merged["base"]["correct"].mean()),
        "soft_base": float(merged["base"]["soft"].mean()),
        "arms": table,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"{len(rows)} rows (train+validation prompts), sampler DDIM {args.steps} steps CFG "
        f"{args.guidance}; base correct {report['correct_base']:.3f}, soft "
        f"{report['soft_base']:.4f}; {report['seconds']:.0f} s"
    )
    print(
        "| arm | move | correct | fixed | broken | sign p | soft diff [95% CI] | soft +/- "
        "| sign p | Wilcoxon p |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, row in table.items():
        low, high = row["soft_ci95"]
        print(
            f"| {name} | {row['relative_move']:.3f} | {row['correct_arm']:.3f} | {row['fixed']} "
            f"| {row['broken']} | {row['correct_sign_p']:.3g} | {row['soft_mean_diff']:+.4f} "
            f"[{low:+.4f}, {high:+.4f}] | {row['soft_wins']}/{row['soft_losses']} "
            f"| {row['soft_sign_p']:.3g} | {row['soft_wilcoxon_p']:.3g} |"
        )


if __name__ == "__main__":
    main()
