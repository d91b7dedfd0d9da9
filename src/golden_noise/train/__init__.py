"""Stage II: train NPNet on a Noise Prompt Dataset (accelerate; one process or many).

`train.config` is plain settings; the loop (torch, accelerate) loads on first use."""

from typing import Any

from golden_noise.train.config import TrainConfig

__all__ = ["TrainConfig", "TrainResult", "train"]


def __getattr__(name: str) -> Any:
    if name in ("TrainResult", "train"):
        from golden_noise.train import loop

        return getattr(loop, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
