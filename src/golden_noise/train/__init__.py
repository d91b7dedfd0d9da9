"""Stage II: train NPNet on a Noise Prompt Dataset (accelerate; one process or many)."""

from golden_noise.train.config import TrainConfig
from golden_noise.train.loop import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "train"]
