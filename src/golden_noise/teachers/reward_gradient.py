"""A teacher with a deterministic, learnable target: gradient ascent on a differentiable reward.

Local search and evolution strategies only see scores, so their targets carry random
directions that a network can only average away. With a differentiable reward the improving
direction is exact: the reward of the generated image is backpropagated through the
pipeline's own sampling loop (`CollectionSampler.differentiable_images`) to the noise, in
the manner of ReNO (arXiv 2406.04312), and x_T takes `ascent_steps` normalised steps of
`ascent_size` along it, each followed by a rescale to x_T's own norm:

    x <- |x_T| (x + size g/|g|) / |x + size g/|g||,   g = d reward(image(x)) / dx

The target is a deterministic function of (x_T, prompt), so MSE regression can learn it, and
it keeps x_T's norm, so no part of its gain is a temperature change. The reward guides; the
collection scorer (the real metric) still scores source and target. Cost per row: the
ascent's forward and backward passes through the sampler (about three generations each) plus
two generations to score.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.core.latent_norms import latent_norms, with_norms
from golden_noise.scorers.rewards import load_reward
from golden_noise.teachers.base import Rows, Taught, Teacher, score_source_and_target
from golden_noise.teachers.sampler import CollectionSampler


class RewardGradientTeacher(Teacher):
    """x_T' = a few norm-preserving gradient-ascent steps of a differentiable reward."""

    name = "reward-gradient"

    def __init__(
        self, reward: str = "toy-surrogate", ascent_steps: int = 2, ascent_size: float = 3.0
    ) -> None:
        self.reward = load_reward(reward)
        if isinstance(ascent_steps, bool) or not isinstance(ascent_steps, int) or ascent_steps < 1:
            raise GoldenNoiseError(f"ascent_steps must be an integer >= 1; got {ascent_steps!r}")
        if not math.isfinite(ascent_size) or ascent_size <= 0:
            raise GoldenNoiseError(f"ascent_size must be a positive number; got {ascent_size}")
        self.reward_name = reward
        self.ascent_steps = ascent_steps
        self.ascent_size = ascent_size

    def options(self) -> dict[str, Any]:
        return {
            "reward": self.reward_name,
            "ascent_steps": self.ascent_steps,
            "ascent_size": self.ascent_size,
        }

    def ascend(self, rows: Rows, sampler: CollectionSampler) -> torch.Tensor:
        """The target noises of `rows` (float32, on the sources' device)."""
        source = rows.source.float()
        norm = latent_norms(source)
        size = torch.full_like(norm, self.ascent_size)
        x = source
        for _ in range(self.ascent_steps):
            with torch.enable_grad():  # collection runs under no_grad
                x = x.detach().requires_grad_(True)
                images = sampler.differentiable_images(x, rows.call_kwargs, rows.seeds)
                value = self.reward(images.float(), rows.prompts).sum()
                (grad,) = torch.autograd.grad(value, x)
            x = with_norms(x.detach() + with_norms(grad, size), norm)
        return x.detach()

    def teach(self, rows: Rows, sampler: CollectionSampler) -> Taught:
        target = self.ascend(rows, sampler)
        return score_source_and_target(rows, target, sampler)

    def model_calls_per_row(self, sampler: CollectionSampler) -> int:
        # forward + backward through the sampler ~ 3 forward passes per ascent step
        return (3 * self.ascent_steps + 2) * sampler.settings.model_calls_per_image()
