"""Prompts per minute of the prompt-offset fit: the product's teacher against the research
harness's loop, side by side in one run, on the same prompts, one thread each.

The product is `golden-noise collect --teacher prompt-offset` (`PromptOffsetTeacher.offsets`,
through the collection sampler, chunked); the harness is `learned_gain.py prompt-offsets`
(its own DDIM loop, chunks of 64). Both run `--iters` Adam steps on `--prompts` prompts with
4 noises each; prompts per minute are then scaled to each side's full recipe (the harness's
60 iterations at 10 steps; the product's `--recipe-iters` at `--fit-steps`), since a fit's
cost is linear in iterations and sampler steps.

    .venv/bin/python benchmarks/offset_fit_speed.py [--prompts 16] [--iters 2]
        [--fit-steps 5] [--recipe-iters 30]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from golden_noise.adapters import adapter_for
from golden_noise.adapters.loading import pipeline_from_spec
from golden_noise.teachers import CollectionSampler, PromptOffsetTeacher, Rows, SamplerSettings
from golden_noise.toy import DEFAULT_GUIDANCE
from golden_noise.toy.grammar import sample_prompts

HARNESS_ITERS, HARNESS_STEPS, NOISES = 60, 10, 4


def product_seconds(prompts: list[str], iters: int, fit_steps: int) -> float:
    """Wall seconds of the library teacher fitting every prompt's offset for `iters` steps."""
    pipe = pipeline_from_spec("toy", device="cpu")
    pipe.set_progress_bar_config(disable=True)
    call_kwargs = adapter_for(pipe).call_kwargs(prompts)
    n = len(prompts)
    rows = Rows(prompts, list(range(n)), list(range(n)), torch.randn(n, 4, 8, 8), call_kwargs)
    settings = SamplerSettings(steps=HARNESS_STEPS, guidance=DEFAULT_GUIDANCE)
    sampler = CollectionSampler(pipe, None, settings, batch_size=64)
    teacher = PromptOffsetTeacher(iters=iters, noises=NOISES, fit_steps=fit_steps)
    start = time.perf_counter()
    teacher.offsets(rows, sampler)
    return time.perf_counter() - start


def harness_seconds(prompts: list[str], iters: int) -> float:
    """Wall seconds of `learned_gain.py prompt-offsets` on the same prompts."""
    sys.path.insert(0, str(Path(__file__).parent))
    import learned_gain

    with tempfile.TemporaryDirectory() as folder:
        listing = Path(folder) / "prompts.txt"
        listing.write_text("\n".join(prompts), encoding="utf-8")
        args = argparse.Namespace(
            threads=1, per_type=0, counts="", exclude=[], prompts=listing, split="train",
            k=NOISES, modes=1, init=None, shared_start=False, lr=0.05, iters=iters,
            steps=HARNESS_STEPS, stay_close=0.3, save=None, seeds=0,
        )  # fmt: skip
        start = time.perf_counter()
        learned_gain.prompt_offsets(args)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--iters", type=int, default=2, help="Adam steps timed on each side")
    parser.add_argument("--fit-steps", type=int, default=5, help="the product's fit sampler")
    parser.add_argument("--recipe-iters", type=int, default=30, help="the product's recipe")
    args = parser.parse_args()
    torch.set_num_threads(1)
    prompts = sample_prompts(args.prompts, 0, "train")
    harness = harness_seconds(prompts, args.iters)
    product_same = product_seconds(prompts, args.iters, HARNESS_STEPS)
    product = product_seconds(prompts, args.iters, args.fit_steps)
    per_minute = {  # prompts a minute at each side's full recipe, from seconds per Adam step
        "harness (60 iters x 10 steps)": 60 * args.iters * len(prompts) / harness / HARNESS_ITERS,
        "product, same recipe": 60 * args.iters * len(prompts) / product_same / HARNESS_ITERS,
        f"product ({args.recipe_iters} iters x {args.fit_steps} steps)": 60
        * args.iters
        * len(prompts)
        / product
        / args.recipe_iters,
    }
    base = per_minute["harness (60 iters x 10 steps)"]
    for name, value in per_minute.items():
        print(f"{name:34s} {value:6.2f} prompts/min  ({value / base:.2f}x the harness)")


if __name__ == "__main__":
    main()
