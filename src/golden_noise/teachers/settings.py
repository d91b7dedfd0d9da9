"""What a collection is told, as plain settings (no torch): the sampler that judges noises
(`SamplerSettings`) and the re-denoise step (`RedenoiseSettings`); both go into the manifest.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.core.validate import integer, number

SchedulerChoice = Literal["ddim", "pipeline"]


@dataclass(frozen=True)
class SamplerSettings:
    """How collection generates images; recorded in the dataset manifest.

    `scheduler="ddim"` builds a DDIM scheduler from the pipeline's config (deterministic, the
    paper's choice; `clip_sample` off because latents are not images); "pipeline" keeps the
    pipeline's own (stochastic ones get one generator per row, seeded by the row's seed).
    Flow-matching pipelines (SD3, FLUX) need "pipeline": their Euler scheduler is
    deterministic, and DDIM does not apply to them.
    """

    steps: int = 10
    guidance: float = 5.5
    scheduler: SchedulerChoice = "ddim"

    def __post_init__(self) -> None:
        integer("sampler steps", self.steps, 1, 1000)  # schedulers have 1000 timesteps
        if number("sampler guidance", self.guidance) < 1.0:
            raise GoldenNoiseError(
                f"sampler guidance must be >= 1.0 (pipelines skip CFG below 1); got {self.guidance}"
            )
        if self.scheduler not in ("ddim", "pipeline"):
            raise GoldenNoiseError(
                f"sampler scheduler must be 'ddim' or 'pipeline'; got {self.scheduler!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def model_calls_per_image(self) -> int:
        """Denoiser evaluations (per image) one generation costs."""
        return self.steps * (2 if self.guidance > 1.0 else 1)


InversionMode = Literal["exact", "authors"]
TimestepSpacing = Literal["leading", "trailing", "linspace"]


@dataclass(frozen=True)
class RedenoiseSettings:
    """What the re-denoise teacher does; recorded in the dataset manifest.

    `steps`: length N of the DDIM schedule whose first timestep the step is taken at (the
    paper's SDXL setting is 10). `repeats`: how many step+inversion rounds (the authors'
    `T_max`). `timestep_spacing`: None keeps the pipeline's own.

    `w_l` (the step's guidance) and `w_w` (the inversion's) may be any finite number: the
    prediction is `uncond + w (text - uncond)`, as the authors combine it; `w_w = 0` is
    Z-Sampling's unconditional inversion, the setting the authors say made their released
    data. Below 1, a family without an unconditional branch (FLUX-dev) is refused at use.
    """

    steps: int = 10
    w_l: float = 5.5
    w_w: float = 1.0
    repeats: int = 1
    inversion: InversionMode = "exact"
    timestep_spacing: TimestepSpacing | None = None

    def __post_init__(self) -> None:
        integer("re-denoise steps", self.steps, 2, 1000)  # a schedule with a next timestep
        integer("re-denoise repeats", self.repeats, 1, 100)
        for name in ("w_l", "w_w"):
            number(name, getattr(self, name))
        if self.inversion not in ("exact", "authors"):
            raise GoldenNoiseError(
                f"inversion must be 'exact' or 'authors'; got {self.inversion!r}"
            )
        if self.timestep_spacing not in (None, "leading", "trailing", "linspace"):
            raise GoldenNoiseError(
                "timestep_spacing must be 'leading', 'trailing', 'linspace' or None; "
                f"got {self.timestep_spacing!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def model_calls_per_row(self) -> int:
        """Denoiser evaluations per row (both branches double a call's batch)."""
        return self.repeats * (_cfg_factor(self.w_l) + _cfg_factor(self.w_w))


def _cfg_factor(guidance_scale: float) -> int:
    """At w = 1 the combination is the text branch alone; any other w needs both."""
    return 1 if guidance_scale == 1.0 else 2
