"""The README's published result, guarded on a small fixed slice of the demo's evaluation.

The first `N_SAMPLES` held-out samples of the demo's evaluation (the same prompts, seeds and
sampler: DDIM, the toy's default steps and guidance) are generated from standard and from
golden noise with the shipped toy pipeline and NPNet, scored with the toy scorer, and
summarised with the same paired statistics as the README's table. The recorded values live
in `tests/fixtures/demo_slice.json`; a change to the shipped weights, the pipeline, the
scorer or the statistics makes this test fail. After shipping a new NPNet on purpose,
re-record with one command:

    .venv/bin/python tests/test_demo_slice.py --record
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

FIXTURE = Path(__file__).parent / "fixtures" / "demo_slice.json"
N_SAMPLES = 32  # 8 per prompt type: ~10 s of generation on one thread
BATCH = 16
METRICS = {"toy-soft": True, "toy-correct": True}
# Recorded and recomputed images come from the same batches, but another CPU's float
# kernels move latents by ~1e-6 (FIELD-NOTES), which can flip a uint8 pixel. Measured here
# by re-cutting the batches (16 -> 5 images, other kernels): soft moved by at most 8.8e-6,
# no `correct` flipped. A different NPNet moves most samples' soft by > 1e-2.
SOFT_ATOL = 5e-3
# A pixel flip can also tip one borderline image's `correct`; more than one flip in 64
# images is a changed model, not round-off.
MAX_CORRECT_FLIPS = 1


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def compute_slice(n_samples: int = N_SAMPLES) -> list[dict[str, Any]]:
    """Per-sample scores of standard and golden noise on the demo's first held-out samples."""
    from golden_noise import GoldenNoise
    from golden_noise.demo.config import EVAL_SEED_OFFSET, FULL
    from golden_noise.toy import load_npnet, load_pipeline
    from golden_noise.toy.grammar import prompt_type, sample_prompts
    from golden_noise.toy.scorer import score

    config = FULL
    prompts = sample_prompts(config.eval_samples, config.prompt_seed + 2, "heldout")[:n_samples]
    seeds = [EVAL_SEED_OFFSET + i for i in range(n_samples)]
    pipe = load_pipeline()
    pipe.set_progress_bar_config(disable=True)
    golden = GoldenNoise(load_npnet(), pipe)
    call = {"num_inference_steps": config.steps, "guidance_scale": config.guidance}
    rows = []
    for start in range(0, n_samples, BATCH):
        chunk_prompts = prompts[start : start + BATCH]
        chunk_seeds = seeds[start : start + BATCH]

        def generators(chunk_seeds=chunk_seeds):
            return [torch.Generator().manual_seed(s) for s in chunk_seeds]

        standard = pipe(chunk_prompts, generator=generators(), **call).images
        draws = generators()
        latents = golden.latents(chunk_prompts, draws)
        golden_images = pipe(chunk_prompts, latents=latents, generator=draws, **call).images
        scored = {
            "standard": score(standard, chunk_prompts),
            "golden": score(golden_images, chunk_prompts),
        }
        for i, (prompt, seed) in enumerate(zip(chunk_prompts, chunk_seeds, strict=True)):
            row = {"sample": start + i, "prompt": prompt, "seed": seed}
            row["group"] = prompt_type(prompt)
            for arm, result in scored.items():
                row[f"{arm}_soft"] = float(result.soft[i])
                row[f"{arm}_correct"] = float(result.correct[i])
            rows.append(row)
    return rows


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The README table's columns (golden vs standard) for the slice, overall and per type."""
    from golden_noise.evaluation.stats import compare_arms

    stat_rows = [
        {
            "sample": row["sample"],
            "arm": arm,
            "group": row["group"],
            "toy-soft": row[f"{arm}_soft"],
            "toy-correct": row[f"{arm}_correct"],
        }
        for arm in ("standard", "golden")
        for row in rows
    ]
    result = compare_arms(stat_rows, METRICS)
    table = {}
    for group, block in [("overall", result["overall"]), *result["groups"].items()]:
        for metric in METRICS:
            s = block[metric]["vs_standard"]["golden"]
            table[f"{group} {metric}"] = {
                key: s[key]
                for key in ("mean_baseline", "mean_arm", "mean_diff", "ci95_low", "ci95_high")
                + ("wins", "ties", "losses", "wilcoxon_p")
            }
    return table


def provenance() -> dict[str, str]:
    from golden_noise.toy.npnet import NPNET_DIR
    from golden_noise.toy.pipeline import WEIGHTS_DIR

    return {
        "npnet": _sha256(NPNET_DIR / "model.safetensors"),
        "unet": _sha256(WEIGHTS_DIR / "unet" / "diffusion_pytorch_model.safetensors"),
        "recorded_with": "python tests/test_demo_slice.py --record",
    }


@pytest.fixture(scope="module")
def recorded() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text())


def test_statistics_of_the_recorded_scores_are_unchanged(recorded):
    """The statistics alone, on the recorded per-sample scores: deterministic (fixed
    bootstrap seed, double precision), so any change to them is a change in stats.py."""
    table = summarise(recorded["rows"])
    assert table.keys() == recorded["table"].keys()
    for key, values in recorded["table"].items():
        assert table[key] == pytest.approx(values, rel=1e-9, abs=1e-12), key


def test_shipped_npnet_reproduces_the_recorded_slice(recorded):
    assert provenance()["npnet"] == recorded["provenance"]["npnet"], (
        "the shipped toy NPNet changed: re-record with "
        "`.venv/bin/python tests/test_demo_slice.py --record` and update the README tables"
    )
    rows = compute_slice(len(recorded["rows"]))
    flips = 0
    for ours, theirs in zip(rows, recorded["rows"], strict=True):
        assert (ours["prompt"], ours["seed"]) == (theirs["prompt"], theirs["seed"])
        for arm in ("standard", "golden"):
            soft = ours[f"{arm}_soft"]
            assert soft == pytest.approx(theirs[f"{arm}_soft"], abs=SOFT_ATOL), (ours, arm)
            flips += ours[f"{arm}_correct"] != theirs[f"{arm}_correct"]
    assert flips <= MAX_CORRECT_FLIPS


def main() -> None:
    parser = argparse.ArgumentParser(description="re-record tests/fixtures/demo_slice.json")
    parser.add_argument("--record", action="store_true", required=True)
    parser.parse_args()
    torch.set_num_threads(1)
    rows = compute_slice()
    FIXTURE.parent.mkdir(exist_ok=True)
    record = {"provenance": provenance(), "table": summarise(rows), "rows": rows}
    FIXTURE.write_text(json.dumps(record, indent=1) + "\n")
    for key, value in record["table"].items():
        print(key, {k: round(v, 4) for k, v in value.items()})
    print(f"wrote {FIXTURE}", file=sys.stderr)


if __name__ == "__main__":
    main()
