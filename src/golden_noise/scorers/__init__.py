"""Image scorers behind one interface: `get_scorer(name).score(images, prompts) -> tensor`."""

from golden_noise.scorers.base import Scorer
from golden_noise.scorers.registry import SCORERS, available_scorers, get_scorer

__all__ = ["SCORERS", "Scorer", "available_scorers", "get_scorer"]
