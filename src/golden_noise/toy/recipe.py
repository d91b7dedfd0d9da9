"""The training recipe of the shipped toy pipeline: its defaults reproduce the shipped weights.

Kept free of heavy imports so the CLI can show these defaults without loading torch.
"""

from dataclasses import dataclass


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
