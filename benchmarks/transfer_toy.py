"""Cross-model fine-tuning on the toy world: an NPNet from one setting, fine-tuned on a few rows
of another, beside the same net trained from scratch on the same rows.

Source: toy train-split prompts re-denoised with this package's default recipe (w_w 1, exact
inversion). Target: toy validation-split prompts re-denoised the authors' way (w_w 0, their
inversion): other prompts, other targets. The toy world has one pipeline, one text width and
one image size its scorer reads (32 px), so every tensor fits here; re-initialising what does
not fit (another text width or latent size) is checked on tiny SDXL -> Hunyuan-DiT
pipelines in tests/test_train_init.py. Both arms train on the same few target rows with the
same settings and are scored on the same held-out target prompts (validation MSE, beside the
identity and mean-residual baselines). Images for scoring use 2 sampler steps and training is
unfiltered: scores do not enter an MSE run, so the cheapest sampler keeps the run to minutes.

    .venv/bin/python benchmarks/transfer_toy.py [--source-prompts 96] [--target-prompts 24]
        [--epochs 12] [--out DIR]

Its numbers are in docs/authors-code.md ("Cross-model fine-tuning").
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

CLI = str(Path(__file__).resolve().parents[1] / ".venv" / "bin" / "golden-noise")
COMMON = ["--pipeline", "toy", "--steps", "2", "--redenoise-steps", "10", "--no-progress"]
TRAIN = ["--unfiltered", "--batch-size", "16", "--lr", "1e-3", "--log-with", "none"]
TRAIN += ["--no-progress", "--json"]


def run(*args: str) -> str:
    done = subprocess.run([CLI, *args], capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{' '.join(args[:2])} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source-prompts", type=int, default=96)
    parser.add_argument("--target-prompts", type=int, default=24)
    parser.add_argument("--seeds", type=int, default=4, help="seeds per prompt")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="transfer-toy-"))
    seeds = ["--seeds-per-prompt", str(args.seeds)]
    start = time.perf_counter()
    run("collect", "-p", f"toy:train:{args.source_prompts}", "--out", str(out / "source-npd"),
        *COMMON, *seeds)  # fmt: skip
    authors_way = ["--w-w", "0", "--inversion", "authors"]
    run("collect", "-p", f"toy:validation:{args.target_prompts}:1", "--out",
        str(out / "target-npd"), *COMMON, *seeds, *authors_way)  # fmt: skip
    collected = time.perf_counter() - start
    epochs = ["--epochs", str(args.epochs)]
    run("train", str(out / "source-npd"), "--out", str(out / "source-net"), *TRAIN, *epochs)
    # Half the target prompts train, half are held out (split by prompt, the same in both arms).
    target = [str(out / "target-npd"), *TRAIN, *epochs, "--val-fraction", "0.5"]
    results = {}
    source = ["--init-from", str(out / "source-net" / "last")]
    for arm, extra in (("scratch", []), ("transfer", source)):
        text = run("train", *target, "--out", str(out / arm), *extra)
        summary = json.loads(text)
        last = summary["history"][-1]
        results[arm] = {
            "train_rows": summary["train_rows"],
            "val_rows": summary["val_rows"],
            "val_mse_by_epoch": [round(row["val_loss"], 4) for row in summary["history"]],
            "val_mse": round(last["val_loss"], 4),
            "identity": round(last["val_identity"], 4),
            "mean_residual": round(last["val_mean_residual"], 4),
        }
    results["seconds"] = {"collect": round(collected), "all": round(time.perf_counter() - start)}
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
