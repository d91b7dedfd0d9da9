"""Which (prompt, seed) rows a collection makes: `SeedPlan`, plain settings (no torch) that the
CLI turns into options and the manifest records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.core.seeds import MAX_SEED, MAX_SEEDS, seed_plan_keys
from golden_noise.core.validate import integer

Key = tuple[int, int]
# One dataset's planned rows: the paper's is 100K; a hundred million is a typo, not a plan.
MAX_ROWS = 100_000_000


@dataclass(frozen=True)
class SeedPlan:
    """Which seeds each prompt gets.

    `distinct=True` (the authors' practice: one fresh noise per row) gives prompt i the seeds
    `offset + i * per_prompt + j`; `distinct=False` gives every prompt `offset + j`.
    """

    per_prompt: int = 1
    offset: int = 0
    distinct: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.per_prompt, int) and self.per_prompt < 1:
            raise GoldenNoiseError(f"seeds per prompt must be >= 1; got {self.per_prompt}")
        if isinstance(self.offset, int) and self.offset < 0:
            raise GoldenNoiseError(f"seed offset must be >= 0; got {self.offset}")
        integer("seeds per prompt", self.per_prompt, 1, MAX_SEEDS)
        integer("seed offset", self.offset, 0, MAX_SEED)

    def keys(self, n_prompts: int) -> list[Key]:
        """Every row (`core.seeds.seed_plan_keys`), checked to fit the seed and row limits."""
        step = self.per_prompt if self.distinct else 0
        last = self.offset + max(n_prompts - 1, 0) * step + self.per_prompt - 1
        if last > MAX_SEED:
            raise GoldenNoiseError(
                f"seed offset {self.offset} with {n_prompts} prompts x {self.per_prompt} seeds "
                f"reaches seed {last}; seeds are stored as int64, at most {MAX_SEED}"
            )
        if n_prompts * self.per_prompt > MAX_ROWS:
            raise GoldenNoiseError(
                f"{n_prompts} prompts x {self.per_prompt} seeds is {n_prompts * self.per_prompt} "
                f"rows; at most {MAX_ROWS} per dataset"
            )
        return seed_plan_keys(n_prompts, **self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return {"per_prompt": self.per_prompt, "offset": self.offset, "distinct": self.distinct}
