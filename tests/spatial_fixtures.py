"""A Noise Prompt Dataset whose target depends on the prompt through a spatial pattern.

Each prompt names a colour and a side ("red left ..."): its target is the source plus a
Gaussian bump on that side of the latent grid, in the channel the colour names. The text
embedding is one fixed random vector per word (a bag of tokens, like an encoder's per-token
output), with two filler words drawn per prompt so that held-out prompts are new token
sequences. A per-channel scale and shift of the noise (the released net's only route for
the prompt) cannot put a bump on one side; a branch that is aligned with the latent grid and
attends to the tokens can.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import torch
from npd_fixtures import manifest

from golden_noise.dataset import DatasetWriter, PromptRecord

LATENT = (4, 8, 8)
TEXT = (4, 16)
COLOURS = ("red", "green", "blue", "yellow")  # word -> latent channel
SIDES = {"left": (3.5, 1.5), "right": (3.5, 5.5), "top": (1.5, 3.5), "bottom": (5.5, 3.5)}
FILLERS = ("a", "the", "some", "one", "nice", "small", "big", "odd")
BUMP_HEIGHT = 2.5
BUMP_WIDTH = 1.2  # latent cells (Gaussian sigma)


def bump(side: str) -> torch.Tensor:
    """`[H, W]` Gaussian bump centred on `side`'s half of the grid, peak BUMP_HEIGHT."""
    row, col = SIDES[side]
    rows = torch.arange(LATENT[1], dtype=torch.float32)[:, None]
    cols = torch.arange(LATENT[2], dtype=torch.float32)[None, :]
    squared = (rows - row) ** 2 + (cols - col) ** 2
    return BUMP_HEIGHT * torch.exp(-squared / (2 * BUMP_WIDTH**2))


def word_vectors(seed: int = 0) -> dict[str, torch.Tensor]:
    """One fixed random `[D]` embedding per word."""
    gen = torch.Generator().manual_seed(seed)
    words = [*COLOURS, *SIDES, *FILLERS]
    return {word: torch.randn(TEXT[1], generator=gen) for word in words}


def spatial_prompts(n_prompts: int, seed: int = 0) -> list[tuple[str, str, list[str]]]:
    """(colour, side, tokens) per prompt: every colour x side pair in turn, random fillers."""
    rng = random.Random(seed)
    pairs = list(itertools.product(COLOURS, SIDES))
    out = []
    for p in range(n_prompts):
        colour, side = pairs[p % len(pairs)]
        tokens = [colour, side, *rng.sample(FILLERS, TEXT[0] - 2)]
        rng.shuffle(tokens)
        out.append((colour, side, tokens))
    return out


def spatial_target(source: torch.Tensor, colour: str, side: str) -> torch.Tensor:
    """`source` `[B, C, H, W]` plus the prompt's bump in the prompt's channel."""
    target = source.clone()
    target[:, COLOURS.index(colour)] += bump(side)
    return target


def write_spatial_dataset(root: Path, n_prompts: int = 96, seeds_per_prompt: int = 4) -> Path:
    """`n_prompts` prompts x `seeds_per_prompt` Gaussian sources; every row passes any margin."""
    vectors = word_vectors()
    prompts = spatial_prompts(n_prompts)
    records = [PromptRecord(p, " ".join(tokens)) for p, (_, _, tokens) in enumerate(prompts)]
    embeds = torch.stack([torch.stack([vectors[w] for w in tokens]) for _, _, tokens in prompts])
    gen = torch.Generator().manual_seed(1)
    spec = manifest(latent=LATENT, text=TEXT)
    with DatasetWriter(root, spec, prompts=records, rows_per_shard=256) as writer:
        writer.add_embeddings(list(range(n_prompts)), embeds)
        for p, (colour, side, _) in enumerate(prompts):
            seeds = list(range(seeds_per_prompt))
            source = torch.randn(len(seeds), *LATENT, generator=gen)
            scores = torch.zeros(len(seeds))
            writer.add(
                source, spatial_target(source, colour, side), [p] * len(seeds), seeds, scores,
                scores + 1,
            )  # fmt: skip
    return root
