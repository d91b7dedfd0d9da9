"""The training recipes of the shipped toy pipeline and reward model: their defaults
reproduce the shipped weights.

Kept free of heavy imports so the CLI can show these defaults without loading torch.
"""

from dataclasses import dataclass

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.core.validate import flag, integer, number

CHUNK = 256  # images drawn and saved together by the reward-model fit


@dataclass
class ToyRecipe:
    """Everything that determines the trained weights (with the code version)."""

    seed: int = 0
    tiny: bool = False
    batch_size: int = 64
    vae_steps: int = 600
    vae_lr: float = 2e-3
    kl_weight: float = 1e-6
    unet_steps: int = 3000
    unet_lr: float = 5e-4
    warmup_steps: int = 200
    cfg_drop: float = 0.1
    ema_decay: float = 0.999
    checkpoint_every: int = 250
    threads: int | None = None  # torch threads; None: the faster of 1 and 2, re-measured

    def __post_init__(self) -> None:
        integer("seed", self.seed, 0, 2**32 - 1)
        flag("tiny", self.tiny)
        for name in ("batch_size", "vae_steps", "unet_steps", "checkpoint_every"):
            integer(name, getattr(self, name), 1, 10_000_000)
        integer("warmup_steps", self.warmup_steps, 0)
        for name in ("vae_lr", "unet_lr"):
            number(name, getattr(self, name), above=0)
        number("kl_weight", self.kl_weight, 0)
        number("cfg_drop", self.cfg_drop, 0, 1)
        number("ema_decay", self.ema_decay, 0, 1)
        if self.threads is not None:
            integer("threads", self.threads, 1, 1024)


@dataclass(frozen=True)
class RewardRecipe:
    """How the shipped reward model was fitted (saved as `reward_recipe.json`)."""

    images: int = 20480
    epochs: int = 8
    batch_size: int = 128
    lr: float = 2e-3
    width: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        integer("images", self.images, 2 * CHUNK)
        if self.images % CHUNK:
            raise GoldenNoiseError(
                f"images must be a whole number of chunks of {CHUNK} (images are drawn and "
                f"fitted a chunk at a time); got {self.images}: pass "
                f"{self.images // CHUNK * CHUNK} or {(self.images // CHUNK + 1) * CHUNK}"
            )
        for name in ("epochs", "batch_size", "width"):
            integer(name, getattr(self, name), 1)
        integer("seed", self.seed, 0)
        number("lr", self.lr, above=0)
        if self.width % 8:
            raise GoldenNoiseError(
                f"width must be a multiple of 8 (GroupNorm of 8 groups); got {self.width}"
            )
