"""Per-prompt offsets: how much of their gain is a loss of diversity? (docs/prompt-offsets.md)

Reads offsets saved by `learned_gain.py prompt-offsets --save` (all fitted on the same prompts)
and scores, on `--seeds` unseen seeds per prompt (6,000,000 on, the prompt-offsets script's
own evaluation seeds), the exact soft and correct gain over standard noise of each file's
own offset at the noise's norm, beside the diversity of each prompt's images
(`evaluation.diversity`: mean pairwise RMS pixel distance, as a mean per-prompt ratio to
standard's). `--teacher` adds the local-search teacher on the same noises (best of 3
candidates `x cos 0.5 + eps sin 0.5` by exact soft), the reference every gain is measured
against. `--net NET --scales 1,2` adds a prompt-offset NPNet's offsets scaled at inference.

    python benchmarks/learned_gain.py prompt-offsets --lr 0.1 --stay-close 0.03 --save a.pt
    python benchmarks/offset_diversity.py a.pt b.pt --teacher
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch
from learned_gain import Toy, keep_norm, load_offsets, seed_noise, soft_and_correct

from golden_noise.evaluation.diversity import diversity_by_prompt
from golden_noise.evaluation.stats import paired_stats
from golden_noise.npnet import NPNet
from golden_noise.npnet.offset_branch import route


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("offsets", type=Path, nargs="+")
    parser.add_argument("--seeds", type=int, default=32, help="unseen seeds per prompt")
    parser.add_argument("--teacher", action="store_true", help="add local search (3 at 0.5)")
    parser.add_argument("--net", type=Path, default=None, help="a prompt-offset NPNet")
    parser.add_argument("--scales", default="1", help="its offsets times these")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    toy = Toy()
    saved = [load_offsets(path) for path in args.offsets]
    prompts = saved[0]["prompts"]
    if any(s["prompts"] != prompts for s in saved):
        raise SystemExit("every offsets file must hold the same prompts in the same order")
    n, seeds = len(prompts), args.seeds
    rows = torch.arange(n).repeat_interleave(seeds)
    texts = [prompts[i] for i in rows]
    x = seed_noise(list(range(6_000_000, 6_000_000 + len(rows))))

    def spread(images: np.ndarray) -> np.ndarray:
        found = diversity_by_prompt(images / 255.0, texts)
        return np.array([found[prompt] for prompt in prompts])

    def measured(latents: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        images = toy.render(latents, texts)
        return *soft_and_correct(images, texts), spread(images)

    soft0, correct0, spread0 = measured(x)
    print(f"{n} prompts x {seeds} seeds; standard soft {soft0.mean():.4f}, correct "
          f"{correct0.mean():.4f}, diversity {spread0.mean():.4f}")  # fmt: skip

    def report(name: str, soft: np.ndarray, correct: np.ndarray, spread: np.ndarray) -> None:
        a, b = paired_stats(soft0, soft), paired_stats(correct0, correct)
        ratio = spread / spread0
        print(f"{name}: soft {a['mean_diff']:+.4f} [{a['ci95_low']:+.4f}, {a['ci95_high']:+.4f}]"
              f" p {a['wilcoxon_p']:.2g}; correct {b['mean_diff']:+.4f} p {b['wilcoxon_p']:.2g};"
              f" diversity ratio {ratio.mean():.3f} (lowest prompt {ratio.min():.3f})")  # fmt: skip

    def cosine(golden: torch.Tensor) -> float:
        return torch.nn.functional.cosine_similarity(golden.flatten(1), x.flatten(1)).mean()

    for path, s in zip(args.offsets, saved, strict=True):
        golden = keep_norm(x, route(x, s["offsets"][rows]))
        size, modes = s["offsets"].flatten(2).norm(dim=2).mean(), s["offsets"].shape[1]
        name = f"{path.name} ({modes} mode(s), |mu| {size:.2f}, cos {cosine(golden):.3f})"
        report(name, *measured(golden))
    if args.net is not None:
        cond, _ = toy.embed(prompts)
        with torch.no_grad():
            mu = NPNet.from_pretrained(args.net).prompt_offsets(cond)
        for scale in (float(v) for v in args.scales.split(",")):
            golden = keep_norm(x, scale * route(x, mu[rows]))
            report(f"{args.net.name} x {scale} (cos {cosine(golden):.3f})", *measured(golden))
    if args.teacher:
        eps = torch.randn((3, *x.shape), generator=torch.Generator().manual_seed(123))
        images = np.stack([toy.render(x * math.cos(0.5) + e * math.sin(0.5), texts) for e in eps])
        scored = [soft_and_correct(drawn, texts) for drawn in images]
        soft, correct = np.stack([s for s, _ in scored]), np.stack([c for _, c in scored])
        best, pick = soft.argmax(axis=0), np.arange(len(texts))
        report(f"local search, best of 3 at angle 0.5 (cos {math.cos(0.5):.3f})",
               soft[best, pick], correct[best, pick], spread(images[best, pick]))  # fmt: skip


if __name__ == "__main__":
    main()
