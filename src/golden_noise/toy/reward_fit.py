"""Fit the toy reward model: draw images with the toy pipeline, score them exactly, regress.

The images come from the toy pipeline's default sampler on train-split prompts, each from
standard noise scaled by a factor drawn from [0.75, 1.05]: NPNet's outputs and the
norm-matched control live at those norms, so the model must rank images drawn there.
Images are drawn in chunks saved as they finish, so an interrupted fit resumes where it
stopped; `images/draw_settings.json` records what decides them (the seed, the sampler, the
pipeline's weights) and a fit with other settings is refused rather than paired with them;
`images/chunks_sha256.json` records the SHA-256 of each chunk and of the draw settings, and a
file that no longer matches (or has none) is refused rather than fitted on.
`reward_model/reward_recipe.json` records the fit's settings: a re-run with other settings is
refused rather than let replace the finished model.
A tenth of the images (by index, seeded) is held out to report the fit.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from golden_noise.core.atomic import atomic_directory, atomic_write_json
from golden_noise.core.errors import GoldenNoiseError
from golden_noise.core.file_digests import DigestLedger
from golden_noise.core.progress import track
from golden_noise.core.settings_record import changed_settings
from golden_noise.toy.finite import stop_if_diverged, stop_if_weights_diverged
from golden_noise.toy.grammar import sample_prompts
from golden_noise.toy.pipeline import (
    DEFAULT_GUIDANCE,
    DEFAULT_STEPS,
    load_pipeline,
    shipped_pipeline_sha256,
)
from golden_noise.toy.recipe import CHUNK, RewardRecipe
from golden_noise.toy.reward_model import ToyRewardModel, spec_vector
from golden_noise.toy.scorer import score

SCALE_RANGE = (0.75, 1.05)
SEED_BASE = 10_000_000  # image seeds, apart from the demo's collection/validation/held-out ones
DRAW_SETTINGS = "draw_settings.json"
CHUNK_DIGESTS = "chunks_sha256.json"


def fit_reward_model(out: Path, recipe: RewardRecipe, progress: bool = True) -> dict[str, float]:
    """Draw and score `recipe.images` images under `out/images`, fit, write `out/reward_model`."""
    out = Path(out)
    _check_fit_settings(out / "reward_model", recipe)
    images, specs, soft = _scored_images(out / "images", recipe, progress)
    order = torch.randperm(len(soft), generator=torch.Generator().manual_seed(recipe.seed))
    n_val = len(soft) // 10
    val, train = order[:n_val], order[n_val:]
    shuffle = torch.Generator().manual_seed(recipe.seed + 1)
    plan = [
        epoch[start : start + recipe.batch_size]
        for epoch in (
            train[torch.randperm(len(train), generator=shuffle)] for _ in range(recipe.epochs)
        )
        for start in range(0, len(epoch), recipe.batch_size)
    ]
    torch.manual_seed(recipe.seed)
    model = ToyRewardModel(width=recipe.width)
    optimizer = torch.optim.AdamW(model.parameters(), recipe.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, recipe.lr, total_steps=len(plan))
    advice = (
        f"Nothing was written to {out / 'reward_model'} (the drawn images are kept): lower "
        f"--lr (it was {recipe.lr}) and fit again"
    )
    model.train()
    for step, rows in enumerate(track(plan, "fit reward model", disable=not progress)):
        loss = F.mse_loss(model(_pixels(images[rows]), specs[rows]), soft[rows])
        stop_if_diverged(
            f"reward model's loss at step {step + 1} of {len(plan)}", loss.item(), advice
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    stop_if_weights_diverged("reward model", model.state_dict().items(), advice)
    fit = _fit_quality(model, images[val], specs[val], soft[val])  # leaves it in eval mode
    for key in ("val_mse", "val_pearson"):
        stop_if_diverged(f"held-out {key}", fit[key], advice)
    with atomic_directory(out / "reward_model") as tmp:
        model.save_pretrained(tmp)
        atomic_write_json(tmp / "reward_recipe.json", {**asdict(recipe), **fit})
    return fit


def _pixels(images: torch.Tensor) -> torch.Tensor:
    return images.permute(0, 3, 1, 2).float() / 255.0


@torch.no_grad()
def _fit_quality(
    model: ToyRewardModel, images: torch.Tensor, specs: torch.Tensor, soft: torch.Tensor
) -> dict[str, float]:
    model.eval()
    pred = torch.cat(
        [model(_pixels(images[i : i + 512]), specs[i : i + 512]) for i in range(0, len(soft), 512)]
    )
    return {
        "val_images": len(soft),
        "val_mse": float(F.mse_loss(pred, soft)),
        "val_pearson": float(np.corrcoef(pred.numpy(), soft.numpy())[0, 1]),
    }


@torch.no_grad()
def _scored_images(
    folder: Path, recipe: RewardRecipe, progress: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """uint8 images `[N, 32, 32, 3]`, prompt specs and exact soft scores; drawn once per chunk."""
    folder.mkdir(parents=True, exist_ok=True)
    _claim_images(folder, _draw_settings(recipe))
    chunks = recipe.images // CHUNK
    prompts = sample_prompts(chunks * CHUNK, recipe.seed, "train")
    scales = np.random.default_rng(recipe.seed).uniform(*SCALE_RANGE, chunks * CHUNK)
    ledger = _ledger(folder)
    paths = [folder / f"chunk_{c:04d}.npz" for c in range(chunks)]
    # every drawn chunk is checked before any is drawn, so a refused fit writes nothing
    drawn = {path: ledger.read(path) for path in paths if path.is_file()}
    pipe = None
    loaded = []
    for c in track(range(chunks), "draw and score images", disable=not progress):
        if paths[c] not in drawn:
            pipe = pipe or _pipeline()
            rows = slice(c * CHUNK, (c + 1) * CHUNK)
            seed = SEED_BASE + c * CHUNK
            drawn[paths[c]] = _draw_chunk(pipe, ledger, paths[c], prompts[rows], scales[rows], seed)
        with np.load(io.BytesIO(drawn.pop(paths[c]))) as data:
            loaded.append((data["images"], data["soft"]))
    images = torch.from_numpy(np.concatenate([i for i, _ in loaded]))
    soft = torch.from_numpy(np.concatenate([s for _, s in loaded]))
    specs = torch.stack([spec_vector(p) for p in prompts])
    return images, specs, soft


def _check_fit_settings(model: Path, recipe: RewardRecipe) -> None:
    """Refuse a fit whose settings differ from those of the finished model in `model`: it
    would replace that model. The same settings fit it again, to the same weights. A fit writes
    `model` whole with its record (`atomic_directory`), so a `model` without one holds files
    nothing vouches for (a deleted record, or someone's own), and is refused too."""
    record = model / "reward_recipe.json"
    if not record.is_file():
        if model.exists():
            raise GoldenNoiseError(
                f"{model} exists but holds no reward_recipe.json, the record of the settings "
                "that fitted it, so fitting would replace files nothing vouches for. Choose "
                f"another --out, or delete {model} to fit again"
            )
        return
    changed = changed_settings(record, asdict(recipe))
    if changed:
        raise GoldenNoiseError(
            f"{model} holds a model fitted with other settings ({'; '.join(changed)}); fitting "
            f"again would replace it. Choose another --out, or delete {model} to fit again"
        )


def _draw_settings(recipe: RewardRecipe) -> dict[str, object]:
    """Everything chunk c's images and scores depend on: its prompts and noise scales (drawn
    from the seed), its noise seeds, the chunk size, the sampler call and the pipeline. Not the
    image count: the prompts and scales of a longer draw start with those of a shorter one, so
    chunk c is the same for every count that reaches it."""
    return {
        "seed": recipe.seed,
        "chunk": CHUNK,
        "seed_base": SEED_BASE,
        "scale_range": list(SCALE_RANGE),
        "steps": DEFAULT_STEPS,
        "guidance": DEFAULT_GUIDANCE,
        "pipeline_sha256": shipped_pipeline_sha256(),
    }


def _claim_images(folder: Path, settings: dict[str, object]) -> None:
    """Refuse chunks drawn with other settings (a fit would pair them with other prompts and
    report the new settings); record the settings, and their digest, before the first chunk
    is drawn."""
    path = folder / DRAW_SETTINGS
    ledger = DigestLedger(
        folder / CHUNK_DIGESTS,
        f"The record of how the images in {folder} were drawn was changed, so it no longer "
        f"vouches for them. Delete {folder} to draw them again, or choose a new --out",
    )
    if path.is_file():
        ledger.read(path)
        changed = changed_settings(path, settings)
        if changed:
            raise GoldenNoiseError(
                f"{folder} holds images drawn with other settings ({'; '.join(changed)}); "
                "fitting on them would pair them with other prompts. Pass the settings they "
                f"were drawn with, choose a new --out, or delete {folder} to draw them again"
            )
        return
    drawn = sorted(folder.glob("chunk_*.npz"))
    if drawn:
        raise GoldenNoiseError(
            f"{folder} holds {len(drawn)} image chunks but no {DRAW_SETTINGS}, the record of "
            "the seed and pipeline that drew them, so they may be another fit's. Choose a new "
            f"--out, or delete {folder} to draw them again"
        )
    ledger.write(path, (json.dumps(settings, indent=2, sort_keys=True) + "\n").encode())


def _pipeline():
    pipe = load_pipeline()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _ledger(folder: Path) -> DigestLedger:
    """The SHA-256 of each image chunk, recorded as it is written: a chunk edited or damaged
    since would otherwise be fitted on as if the pipeline had drawn it."""
    return DigestLedger(
        folder / CHUNK_DIGESTS, "Delete that chunk so it is drawn again, or choose a new --out"
    )


def _draw_chunk(
    pipe, ledger: DigestLedger, path: Path, prompts: list[str], scales: np.ndarray, seed: int
) -> bytes:
    """Draw and score one chunk; write it with its digest and return its bytes."""
    noise = (
        torch.stack(
            [
                torch.randn((4, 8, 8), generator=torch.Generator().manual_seed(seed + i))
                for i in range(len(prompts))
            ]
        )
        * torch.from_numpy(scales).float()[:, None, None, None]
    )
    pixels = pipe(
        prompts,
        latents=noise,
        num_inference_steps=DEFAULT_STEPS,
        guidance_scale=DEFAULT_GUIDANCE,
        output_type="np",
    ).images
    images = (np.clip(pixels, 0, 1) * 255).round().astype(np.uint8)
    soft = score(images, prompts).soft.numpy()
    buffer = io.BytesIO()
    np.savez(buffer, images=images, soft=soft)
    data = buffer.getvalue()
    ledger.write(path, data)
    return data
