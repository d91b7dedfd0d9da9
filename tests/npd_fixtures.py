"""Synthetic Noise Prompt Datasets for the dataset and training tests.

The target is a known prompt-dependent function of the source: each prompt p has a hidden
code z_p; its text embedding is a fixed linear image of z_p, and its target is the source
shifted per channel by another linear image of z_p. A net that reads the prompt can learn
the shift for unseen prompts; the identity and the mean-residual predictor cannot.
"""

from __future__ import annotations

from pathlib import Path

import torch

from golden_noise.dataset import DatasetManifest, DatasetWriter, PromptRecord

LATENT = (4, 8, 8)
TEXT = (8, 16)


def manifest(
    latent: tuple[int, int, int] = LATENT, text: tuple[int, int] = TEXT, **kw
) -> DatasetManifest:
    return DatasetManifest(
        family="synthetic",
        model="tests/npd_fixtures",
        latent_shape=latent,
        text_shape=text,
        sampler={"name": "ddim", "steps": 4},
        w_l=5.5,
        w_w=1.0,
        scorer="synthetic",
        margin=0.0,
        **kw,
    )


def synthetic_world(n_prompts: int, code_dim: int = 3, shift_scale: float = 0.7, seed: int = 0):
    """(text embeddings [P, L, D], per-channel shifts [P, C]) from hidden prompt codes."""
    gen = torch.Generator().manual_seed(seed)
    codes = torch.randn(n_prompts, code_dim, generator=gen)
    to_text = torch.randn(code_dim, TEXT[0] * TEXT[1], generator=gen) / code_dim**0.5
    to_shift = torch.randn(code_dim, LATENT[0], generator=gen) / code_dim**0.5
    embeds = (codes @ to_text).reshape(n_prompts, *TEXT)
    return embeds, shift_scale * (codes @ to_shift)


def source_latents(prompts: list[int], seeds: list[int]) -> torch.Tensor:
    """Per-row Gaussian latents, a pure function of (prompt, seed)."""
    return torch.stack(
        [
            torch.randn(LATENT, generator=torch.Generator().manual_seed(p * 100_003 + s))
            for p, s in zip(prompts, seeds, strict=True)
        ]
    )


def write_synthetic_dataset(
    root: Path, n_prompts: int = 12, seeds_per_prompt: int = 4, rows_per_shard: int = 16
) -> Path:
    """Rows for every (prompt, seed); the target beats the source by +1 for even seeds and
    loses by 1 for odd ones, so a margin filter keeps exactly the even-seed half."""
    embeds, shifts = synthetic_world(n_prompts)
    records = [PromptRecord(index=p, text=f"prompt {p}") for p in range(n_prompts)]
    with DatasetWriter(root, manifest(), prompts=records, rows_per_shard=rows_per_shard) as writer:
        writer.add_embeddings(list(range(n_prompts)), embeds)
        for p in range(n_prompts):
            seeds = list(range(seeds_per_prompt))
            source = source_latents([p] * len(seeds), seeds)
            target = source + shifts[p][None, :, None, None]
            base = torch.linspace(0.2, 0.4, len(seeds))
            delta = torch.tensor([1.0 if s % 2 == 0 else -1.0 for s in seeds])
            writer.add(source, target, [p] * len(seeds), seeds, base, base + delta)
    return root
