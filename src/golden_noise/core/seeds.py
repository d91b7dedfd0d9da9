"""The project's seed convention: every (prompt, seed) image starts from a CPU generator."""

from __future__ import annotations

from typing import TYPE_CHECKING

from golden_noise.core.errors import GoldenNoiseError

if TYPE_CHECKING:
    import torch

# torch.Generator.manual_seed takes up to 2**64 - 1, but datasets, indexes and npz names keep
# seeds as int64: a larger seed would be stored as another number (or not at all).
MAX_SEED = 2**63 - 1
# One command's seed list: a million images is already days of generation; more is a typo
# (0-99999999999) that would only fill memory before anything runs.
MAX_SEEDS = 1_000_000


def check_seed_range(first: int, last: int) -> None:
    """Refuse seeds torch cannot take and ranges no run could use, before expanding them."""
    for seed in (first, last):
        if not 0 <= seed <= MAX_SEED:
            raise GoldenNoiseError(
                f"seeds must be between 0 and 2**63 - 1 ({MAX_SEED}); got {seed}"
            )
    if last - first + 1 > MAX_SEEDS:
        raise GoldenNoiseError(
            f"the seed range {first}-{last} has {last - first + 1} seeds; at most {MAX_SEEDS} "
            "per command"
        )


def seed_plan_keys(
    n_prompts: int, per_prompt: int, offset: int, distinct: bool
) -> list[tuple[int, int]]:
    """Every (prompt_index, seed) row of a collect's seed plan (`collection.plan.SeedPlan`;
    a dataset manifest records it, so its reader can list them), replicate-major: all prompts
    once before any prompt twice. Prompt i gets seeds `offset + i * per_prompt + j` when
    `distinct`, else `offset + j`."""
    step = per_prompt if distinct else 0
    return [(i, offset + i * step + j) for j in range(per_prompt) for i in range(n_prompts)]


def seeded_generator(seed: int) -> torch.Generator:
    """A CPU generator draws the same noise on any device, so the standard, golden and teacher
    images of one seed share their initial noise everywhere."""
    import torch  # here, so the CLI's seed parsing does not load it

    check_seed_range(seed, seed)
    return torch.Generator(device="cpu").manual_seed(seed)


def keyed_generator(*key: int) -> torch.Generator:
    """A CPU generator fixed by a tuple of integers (row keys, steps, epochs), whatever their
    size: NumPy's SeedSequence hashes them, so nearby keys give unrelated draws and every
    process, batch layout and resumed run draws the same noise for the same key."""
    import numpy as np
    import torch

    state = np.random.SeedSequence([int(k) for k in key]).generate_state(1, np.uint64)
    return torch.Generator().manual_seed(int(state[0]) & MAX_SEED)
