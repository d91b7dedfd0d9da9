"""Scorers by name, and the `name` / `name=SOURCE` spec the CLI accepts."""

from __future__ import annotations

from typing import Any

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.scorers.aesthetic import Aesthetic
from golden_noise.scorers.base import Scorer
from golden_noise.scorers.clip import CLIPScore, PickScore
from golden_noise.scorers.hps import HPSv2, HPSv21
from golden_noise.scorers.imagereward import ImageReward
from golden_noise.scorers.toy import ToyCorrect, ToySoft

# name -> (class, the keyword that a spec's SOURCE fills: the main checkpoint)
SCORERS: dict[str, tuple[type[Scorer], str | None]] = {
    HPSv21.name: (HPSv21, "checkpoint"),
    HPSv2.name: (HPSv2, "checkpoint"),
    ImageReward.name: (ImageReward, "checkpoint"),
    PickScore.name: (PickScore, "model"),
    CLIPScore.name: (CLIPScore, "model"),
    Aesthetic.name: (Aesthetic, "head"),
    ToySoft.name: (ToySoft, None),
    ToyCorrect.name: (ToyCorrect, None),
}


def available_scorers() -> list[str]:
    """Every registered scorer name."""
    return list(SCORERS)


def get_scorer(spec: str, **kwargs: Any) -> Scorer:
    """Build a scorer (weights load on first use) from `name` or `name=SOURCE`.

    SOURCE is the scorer's main checkpoint: a local path or a hub id. `kwargs` (device,
    batch_size, dtype, cache_dir, ...) go to the scorer's constructor.
    """
    name, _, source = spec.strip().partition("=")
    if name not in SCORERS:
        raise GoldenNoiseError(
            f"unknown scorer {name!r}; expected one of {', '.join(available_scorers())}"
        )
    cls, source_arg = SCORERS[name]
    if source:
        if source_arg is None:
            raise GoldenNoiseError(f"scorer {name!r} takes no checkpoint, got {source!r}")
        kwargs[source_arg] = source
    return cls(**kwargs)
