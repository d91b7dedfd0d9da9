"""Straight-line re-implementations the tests compare library code against.

Each one is written from the paper's or the pipeline's own definition, not by calling the
library path it checks, so a bug there cannot hide in the expected value.
"""

import torch
from diffusers import DDIMScheduler

from golden_noise.teachers.redenoise_step import guided_prediction
from golden_noise.toy.scorer import score as toy_score


def ddim_round_trip_by_hand(pipe, x, kwargs, steps=10, w_l=5.5, w_w=1.0):
    """The paper's Stage I written out: the DDIM formulas on alpha-bars computed here from
    the scheduler's betas (float64), "leading" spacing, the pipeline's guided prediction."""
    config = pipe.scheduler.config
    start, end, count = config.beta_start, config.beta_end, config.num_train_timesteps
    if config.beta_schedule == "scaled_linear":
        betas = torch.linspace(start**0.5, end**0.5, count, dtype=torch.float64) ** 2
    else:
        assert config.beta_schedule == "linear"
        betas = torch.linspace(start, end, count, dtype=torch.float64)
    alpha_bar = torch.cumprod(1 - betas, 0)
    stride = count // steps
    t = stride * (steps - 1) + config.steps_offset  # first timestep, e.g. 901 for SD
    a_t, a_prev = alpha_bar[t], alpha_bar[t - stride]

    def move(latents, eps, a_from, a_to):  # DDIM: x0 from (latents, eps), re-noised to a_to
        x0 = (latents - (1 - a_from).sqrt() * eps) / a_from.sqrt()
        return (a_to.sqrt() * x0 + (1 - a_to).sqrt() * eps).float()

    stepped = move(x, guided_prediction(pipe, x, t, w_l, kwargs), a_t, a_prev)
    return move(stepped, guided_prediction(pipe, stepped, t, w_w, kwargs), a_prev, a_t)


def plain_soft_score(pipe, prompt: str, latents: torch.Tensor, seed: int, steps: int = 2) -> float:
    """toy-soft of the image a plain `steps`-step DDIM pipeline call at CFG 5.5 (the
    collection sampler's settings) makes from `latents`."""
    original = pipe.scheduler
    pipe.scheduler = DDIMScheduler.from_config(original.config, clip_sample=False)
    try:
        image = pipe(
            prompt,
            latents=latents[None],
            num_inference_steps=steps,
            guidance_scale=5.5,
            generator=torch.Generator().manual_seed(seed),
        ).images[0]
    finally:
        pipe.scheduler = original
    return float(toy_score(image, prompt).soft[0])
