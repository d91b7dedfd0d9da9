"""The demo's cost: its stage timings, and NPNet's share of a batched toy generation.

1. Stages: the wall seconds of each demo stage, read from a finished run's summary.json
   (`--run DIR`), or measured now with a quick demo run in a temporary folder.
2. Per batch of held-out samples on the toy pipeline, timed alternately in one run (medians):
   a standard generation; golden latents (prompt encoding, noise draw, NPNet forward); and
   each teacher's target for the same noises (re-denoise: prompt encoding, one guided step
   and its inversion, no scoring; local search: its candidates generated and scored).
   Ratios are printed against the generation: "golden costs x% of a generation, the teacher
   y%" is read off one table.

    .venv/bin/python benchmarks/demo_timings.py [--run DIR] [--npnet DIR] [--batch 64]
        [--repeats 5] [--threads 1] [--pipeline TOY_PIPELINE_DIR]

`--npnet` defaults to `DIR/npnet` of `--run`, else the shipped toy NPNet.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import track
from rich.table import Table

from golden_noise.adapters import adapter_for
from golden_noise.demo import FULL, QUICK, run_demo
from golden_noise.demo.stages import build_teacher, heldout_samples, sampler_settings, toy_scorers
from golden_noise.generation.generate import GoldenNoise
from golden_noise.npnet import NPNet
from golden_noise.teachers import CollectionSampler, RedenoiseTeacher, Rows
from golden_noise.teachers.redenoise_step import redenoise
from golden_noise.toy import load_npnet, load_pipeline


def stage_seconds(run: Path | None, console: Console) -> dict[str, float]:
    if run is not None:
        return json.loads((run / "summary.json").read_text())["seconds"]
    with tempfile.TemporaryDirectory() as folder:
        console.print("no --run given: timing a quick demo now")
        return run_demo(Path(folder), QUICK, progress=False)["seconds"]


def _generators(seeds: list[int]) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(s) for s in seeds]


def per_batch(pipe, golden: GoldenNoise, batch: int, repeats: int) -> dict[str, list[float]]:
    adapter = adapter_for(pipe)
    samples = heldout_samples(FULL)[: batch * repeats]
    call = {"num_inference_steps": FULL.steps, "guidance_scale": FULL.guidance}
    sampler = CollectionSampler(pipe, toy_scorers()[0], sampler_settings(FULL), batch)
    teachers = {name: build_teacher(name, options, FULL) for name, options in FULL.teachers}
    times: dict[str, list[float]] = {"generation": [], "golden latents (NPNet)": []}
    times.update({f"teacher target: {name}": [] for name in teachers})
    for r in track(range(repeats), "timing batches"):
        chunk = samples[r * batch : (r + 1) * batch]
        prompts, seeds = [s.prompt for s in chunk], [s.seed for s in chunk]

        tic = time.perf_counter()
        pipe(prompts, generator=_generators(seeds), **call)
        times["generation"].append(time.perf_counter() - tic)
        tic = time.perf_counter()
        golden.latents(prompts, _generators(seeds))
        times["golden latents (NPNet)"].append(time.perf_counter() - tic)
        noise = adapter.initial_noise(batch, None, None, _generators(seeds), adapter.denoiser.dtype)
        for name, teacher in teachers.items():
            tic = time.perf_counter()
            kwargs = adapter.call_kwargs(prompts)
            if isinstance(teacher, RedenoiseTeacher):  # its target needs no scoring
                redenoise(pipe, noise.float(), kwargs, teacher.settings)
            else:  # local search must generate and score its candidates to pick one
                teacher.teach(Rows(prompts, list(range(batch)), seeds, noise.float(), kwargs),
                              sampler)  # fmt: skip
            times[f"teacher target: {name}"].append(time.perf_counter() - tic)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path)
    parser.add_argument("--npnet", type=Path)
    parser.add_argument("--pipeline", type=Path, help="another toy pipeline folder")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    console = Console()

    stages = stage_seconds(args.run, console)
    table = Table(title="demo stages" + (f" ({args.run})" if args.run else " (quick, now)"))
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    table.add_column("share", justify="right")
    for stage, seconds in stages.items():
        table.add_row(stage, f"{seconds:.1f}", f"{seconds / sum(stages.values()):.0%}")
    table.add_row("total", f"{sum(stages.values()):.1f}", "100%")
    console.print(table)

    pipe = load_pipeline(path=args.pipeline)
    pipe.set_progress_bar_config(disable=True)
    source = args.npnet or (args.run / "npnet" if args.run else None)
    net = NPNet.from_pretrained(source) if source else load_npnet()
    with torch.no_grad():
        times = per_batch(pipe, GoldenNoise(net, pipe), args.batch, args.repeats)
    base = statistics.median(times["generation"])
    title = (
        f"one batch of {args.batch} held-out samples, {FULL.steps} DDIM steps, CFG "
        f"{FULL.guidance}, {args.threads} thread(s); medians of {args.repeats}"
    )
    table = Table(title=title)
    for header in ("what", "seconds", "per image ms", "vs generation"):
        table.add_column(header, justify="right")
    for what, values in times.items():
        median = statistics.median(values)
        table.add_row(what, f"{median:.3f}", f"{1000 * median / args.batch:.2f}",
                      f"{median / base:.1%}")  # fmt: skip
    console.print(table)


if __name__ == "__main__":
    main()
