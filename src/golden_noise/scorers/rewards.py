"""Differentiable rewards by name: images `[B, 3, H, W]` in [0, 1] and prompts -> `[B]`.

Scorers (`golden_noise.scorers`) judge PIL images and need no gradient; a reward must carry
one back to the noise, so it takes the pipeline's own image tensor. Two users share this
registry: the reward-gradient teacher (ascends a reward per row at collection time) and the
`reward` training objective (trains NPNet on it directly). Factories build a reward only
when asked, so naming one never imports the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from golden_noise.core.errors import GoldenNoiseError

Reward = Callable[[torch.Tensor, Sequence[str]], torch.Tensor]


def _toy_surrogate() -> Reward:
    from golden_noise.toy.surrogate import reward

    return reward


def _toy_reward_model() -> Reward:
    from golden_noise.toy.reward_model import reward

    return reward


# toy-reward-model: a CNN fitted to the exact toy scorer (Pearson 0.90 on unseen images);
# toy-surrogate: hand-made colour-area and position terms (Pearson 0.52), kept for comparison.
REWARDS: dict[str, Callable[[], Reward]] = {
    "toy-reward-model": _toy_reward_model,
    "toy-surrogate": _toy_surrogate,
}


def load_reward(name: str) -> Reward:
    """The differentiable reward registered as `name`; an unknown name names the known ones."""
    if name not in REWARDS:
        raise GoldenNoiseError(
            f"unknown differentiable reward {name!r}; expected one of {', '.join(REWARDS)}"
        )
    return REWARDS[name]()
