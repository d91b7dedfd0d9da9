"""Stage I collection speed: our batched collector vs a batch-1 loop like the authors'.

Both arms make the same rows (re-denoise teacher, same sampler and scorer) in one run on one
machine. The batch-1 arm does what the authors' collector does per (prompt, seed): a pipeline
call from the prompt text for the source image (text encoders run inside), the re-denoise
step and inversion, a second call for the target image, each image scored alone, one .npz
per pair. Denoiser evaluations are counted with a forward hook (rows in each denoiser call)
and compared with the floor: the teacher's evaluations per row / kept ratio.

    .venv/bin/python benchmarks/collect.py --pipeline toy --rows 64
    .venv/bin/python benchmarks/collect.py --pipeline tiny --rows 64   # tests' tiny SD
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from golden_noise.adapters import adapter_for
from golden_noise.adapters.loading import pipeline_from_spec
from golden_noise.collection.collect import SeedPlan, collect
from golden_noise.dataset import DatasetManifest, RowTable
from golden_noise.prompts.sources import read_prompt_source
from golden_noise.scorers.registry import get_scorer
from golden_noise.teachers import CollectionSampler, RedenoiseTeacher, SamplerSettings
from golden_noise.teachers.redenoise_step import RedenoiseSettings, redenoise


class DenoiserCalls:
    """Counts rows passed through the denoiser (one CFG call on B rows counts 2B)."""

    def __init__(self, denoiser: torch.nn.Module) -> None:
        self.rows = 0
        denoiser.register_forward_pre_hook(self._count)

    def _count(self, _module: torch.nn.Module, args: tuple) -> None:
        self.rows += int(args[0].shape[0])


def build_pipeline(spec: str):
    if spec == "tiny":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        import tiny_pipelines

        return tiny_pipelines.build_sd()
    return pipeline_from_spec(spec, dtype="float32", device="cpu")


def batch_one_loop(pipe, prompts, keys, scorer, sampler, settings, out: Path) -> list[bool]:
    """The authors' pattern, one (prompt, seed) at a time; returns kept flags (margin 0)."""
    adapter = adapter_for(pipe)
    collection = CollectionSampler(pipe, scorer, sampler, batch_size=1)
    dtype = adapter.denoiser.dtype
    kept = []
    with (out / "pairs.jsonl").open("w") as log:
        for index, seed in keys:
            prompt = prompts[index]
            generator = torch.Generator().manual_seed(seed)
            x = adapter.initial_noise(1, None, None, generator, dtype).float()
            with torch.no_grad():
                source_image = pipe(
                    prompt=[prompt],
                    latents=x.to(dtype),
                    num_inference_steps=sampler.steps,
                    guidance_scale=sampler.guidance,
                ).images
            kwargs = adapter.call_kwargs([prompt])  # forward_ours encodes the prompt again
            target = redenoise(pipe, x, kwargs, settings)
            target_image = collection.images(target, kwargs, [seed])
            before = float(scorer.score(source_image, [prompt])[0])
            after = float(scorer.score(target_image, [prompt])[0])
            np.savez(out / f"{index}_{seed}.npz", x.numpy(), target.numpy(), np.array(index))
            log.write(json.dumps({"index": index, "seed": seed, "scores": [before, after]}) + "\n")
            kept.append(after > before)
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", default="toy", help="'toy', 'tiny', a folder or a hub id")
    parser.add_argument("--prompts", default="toy:train:200")
    parser.add_argument("--scorer", default="toy-soft")
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--steps", type=int, default=None, help="[toy: its default; else 10]")
    parser.add_argument("--guidance", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    pipe = build_pipeline(args.pipeline)
    pipe.set_progress_bar_config(disable=True)
    if args.pipeline == "toy":
        from golden_noise.toy import DEFAULT_GUIDANCE, DEFAULT_STEPS

        args.steps, args.guidance = args.steps or DEFAULT_STEPS, args.guidance or DEFAULT_GUIDANCE
    sampler = SamplerSettings(steps=args.steps or 10, guidance=args.guidance or 5.5)
    settings = RedenoiseSettings(steps=sampler.steps)
    prompts = read_prompt_source(args.prompts)
    plan = SeedPlan(per_prompt=max(1, -(-args.rows // len(prompts))))
    keys = plan.keys(len(prompts))[: args.rows]
    prompts = prompts[: max(i for i, _ in keys) + 1]
    scorer = get_scorer(args.scorer)
    denoiser = getattr(pipe, "unet", None) or pipe.transformer
    calls = DenoiserCalls(denoiser)
    floor = RedenoiseTeacher(settings).model_calls_per_row(CollectionSampler(pipe, scorer, sampler))

    with tempfile.TemporaryDirectory() as tmp:
        batch_one_loop(pipe, prompts, keys[:2], scorer, sampler, settings, Path(tmp))  # warm-up
        calls.rows = 0
        start = time.perf_counter()
        kept_one = batch_one_loop(pipe, prompts, keys, scorer, sampler, settings, Path(tmp))
        seconds_one, calls_one = time.perf_counter() - start, calls.rows

        calls.rows = 0
        out = Path(tmp) / "ours"
        start = time.perf_counter()
        summary = collect(
            pipe,
            prompts,
            out,
            scorer,
            teacher=RedenoiseTeacher(settings),
            sampler=sampler,
            seeds=plan,
            batch_size=args.batch_size,
            generation_batch_size=2 * args.batch_size,
            progress=False,
            max_rows=len(keys),
        )
        seconds_ours, calls_ours = time.perf_counter() - start, calls.rows
        table = RowTable.load(out, DatasetManifest.load(out))
        kept_ours = int(table.keep_mask(0.0, None).sum())

    n = len(keys)
    print(
        f"pipeline {args.pipeline}, {n} rows, sampler {sampler.steps} steps CFG "
        f"{sampler.guidance}, re-denoise at {settings.steps} steps, threads {args.threads}"
    )
    print(f"{'arm':<22}{'seconds':>9}{'pairs/s':>9}{'evals/row':>11}{'kept':>6}{'evals/kept':>12}")
    for name, seconds, evals, kept in (
        ("batch-1 (authors')", seconds_one, calls_one, sum(kept_one)),
        (f"batched ({args.batch_size})", seconds_ours, calls_ours, kept_ours),
    ):
        per_kept = f"{evals / kept:.1f}" if kept else "n/a"
        print(f"{name:<22}{seconds:9.2f}{n / seconds:9.2f}{evals / n:11.1f}{kept:6d}{per_kept:>12}")
    floor_kept = f"{floor * n / kept_ours:.1f}" if kept_ours else "n/a"
    print(f"floor: {floor} evals/row, {floor_kept} evals/kept pair at the batched run's kept ratio")
    print(f"speed-up batched / batch-1: {seconds_one / seconds_ours:.2f}x")
    assert summary.rows_written_here == n


if __name__ == "__main__":
    main()
