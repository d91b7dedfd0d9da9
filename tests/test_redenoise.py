"""Re-denoise sampling: the captured guided prediction, the DDIM step/inversion, three families."""

import pytest
import tiny_pipelines
import torch
from diffusers import DDIMScheduler
from references import ddim_round_trip_by_hand

from golden_noise.adapters import adapter_for
from golden_noise.core.errors import GoldenNoiseError
from golden_noise.teachers.redenoise_step import (
    DDIMStepPair,
    RedenoiseSettings,
    guided_prediction,
    redenoise,
)

PROMPTS = ["a red circle", "two blue squares on the left"]

# float32 round-off of one DDIM step and its inverse with the same prediction: each is a few
# multiply-adds whose largest coefficient is 1/sqrt(alpha_bar_t) ~ 15 at t ~ 981, so on unit-
# variance latents (|x| < 5) the error is bounded by ~15 * 5 * 1.2e-7 ~ 1e-5; measured ~5e-7.
ROUND_TRIP_ATOL = 1e-5
# Two UNet calls on different batch sizes (the pipeline's CFG batch vs ours, a batch of 2 vs
# 1) run different GEMM/conv kernels, so their float32 sums are ordered differently: outputs
# of size ~2 differ by ~1e-6 (1.8e-6 measured on an AMD EPYC, 0 on another CPU). Guidance 5.5
# scales a difference of two predictions by up to 1 + 2 * 5.5 = 12, and one DDIM step by
# ~15: 1e-4 covers that with room, while a wrong guidance scale (5.0 for 5.5) or a row taken
# from the wrong prompt moves the result by >= 5e-2.
BATCH_ATOL = 1e-4


@pytest.fixture(scope="module")
def sd():
    return tiny_pipelines.build_sd()


def _noise(adapter, n=2, seed=0):
    generators = [torch.Generator().manual_seed(seed + i) for i in range(n)]
    return adapter.initial_noise(n, None, None, generators, torch.float32)


def test_captured_prediction_is_the_pipelines_own_cfg_output(sd):
    adapter = adapter_for(sd)
    kwargs = adapter.call_kwargs(PROMPTS)
    x = _noise(adapter)
    eps = guided_prediction(sd, x, 981, 5.5, kwargs)
    with torch.no_grad():
        both = sd.unet(
            torch.cat([x, x]),
            981,
            encoder_hidden_states=torch.cat(
                [kwargs["negative_prompt_embeds"], kwargs["prompt_embeds"]]
            ),
        ).sample
    uncond, cond = both.chunk(2)
    torch.testing.assert_close(eps, uncond + 5.5 * (cond - uncond), rtol=0, atol=BATCH_ATOL)
    single = guided_prediction(sd, x, 981, 1.0, kwargs)  # no CFG: a batch of 2, not 4
    torch.testing.assert_close(single, cond, rtol=0, atol=BATCH_ATOL)


@pytest.mark.parametrize(
    ("steps", "spacing", "first"),
    [(50, None, 981), (10, None, 901), (4, None, 751), (4, "trailing", 999)],
)
def test_exact_inversion_undoes_the_step_and_authors_does_not(sd, steps, spacing, first):
    pair = DDIMStepPair(sd.scheduler.config, steps, spacing)
    assert pair.first_timestep == first
    x = torch.randn(4, 4, 16, 16)
    eps = torch.randn_like(x)
    stepped = pair.step(eps, x)
    assert (stepped - x).abs().max() > 1e-2  # the step did something
    torch.testing.assert_close(pair.invert(eps, stepped, "exact"), x, rtol=0, atol=ROUND_TRIP_ATOL)
    assert (pair.invert(eps, stepped, "authors") - x).abs().max() > 1e-3


def test_clipping_is_forced_off_so_the_step_stays_invertible():
    clipping = DDIMScheduler(beta_schedule="scaled_linear", clip_sample=True)
    pair = DDIMStepPair(clipping.config, 10)
    x = 3 * torch.randn(2, 4, 8, 8)
    eps = torch.randn_like(x)
    torch.testing.assert_close(pair.invert(eps, pair.step(eps, x)), x, rtol=0, atol=1e-4)


@pytest.mark.parametrize("family", ["sd", "sdxl", "hunyuan-dit"])
def test_redenoise_is_the_ddim_round_trip_written_out(family):
    """SD's DDIM, SDXL's Euler and Hunyuan-DiT's DDPM configs (scaled-linear and linear
    betas, steps_offset 1 and 0), all re-denoised by DDIM built from their config."""
    pipe = tiny_pipelines.BUILDERS[family]()
    scheduler = pipe.scheduler
    adapter = adapter_for(pipe)
    kwargs = adapter.call_kwargs(PROMPTS)
    x = _noise(adapter)
    first = redenoise(pipe, x, kwargs)
    assert first.shape == x.shape and first.dtype == torch.float32
    assert torch.equal(first, redenoise(pipe, x, kwargs))
    # float32 (diffusers) vs float64 (here) alpha-bars and step arithmetic: coefficients up
    # to 1/sqrt(alpha_bar) ~ 7 on latents |x| < 5 give ~1e-5 (measured 7e-7); a wrong
    # guidance scale, timestep or inversion target moves the result by > 1e-2.
    torch.testing.assert_close(first, ddim_round_trip_by_hand(pipe, x, kwargs), rtol=0, atol=1e-4)
    assert (first - x).abs().max() > 1e-2  # the round trip really moved the noise
    assert pipe.scheduler is scheduler  # the capture scheduler was swapped back out


def test_rows_are_independent_of_their_batch(sd):
    adapter = adapter_for(sd)
    x = _noise(adapter)
    both = redenoise(sd, x, adapter.call_kwargs(PROMPTS))
    alone = redenoise(sd, x[1:], adapter.call_kwargs(PROMPTS[1:]))
    torch.testing.assert_close(both[1:], alone, rtol=0, atol=BATCH_ATOL)


def test_guidance_gap_is_what_moves_the_noise(sd):
    """w_l = w_w leaves only the (small) model-evaluation mismatch; w_l > w_w moves more."""
    adapter = adapter_for(sd)
    kwargs = adapter.call_kwargs(PROMPTS)
    x = _noise(adapter)
    control = redenoise(sd, x, kwargs, RedenoiseSettings(w_l=1.0, w_w=1.0))
    guided = redenoise(sd, x, kwargs, RedenoiseSettings(w_l=9.0, w_w=1.0))
    assert (guided - x).norm() > 1.5 * (control - x).norm()


def test_repeats_apply_the_round_trip_again(sd):
    adapter = adapter_for(sd)
    kwargs = adapter.call_kwargs(PROMPTS)
    x = _noise(adapter)
    once = redenoise(sd, x, kwargs)
    twice = redenoise(sd, x, kwargs, RedenoiseSettings(repeats=2))
    # The same batch through the same kernels in the same order: bit-identical on any CPU.
    torch.testing.assert_close(twice, redenoise(sd, once, kwargs), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"steps": 1}, r"steps must be at least 2; got 1"),
        ({"repeats": 0}, r"repeats must be at least 1; got 0"),
        ({"w_l": float("nan")}, r"w_l must be a finite number; got nan"),
        ({"steps": 10.5}, r"steps must be an integer; got 10.5"),
        ({"inversion": "approximate"}, r"'exact' or 'authors'; got 'approximate'"),
        ({"timestep_spacing": "random"}, r"'leading', 'trailing', 'linspace' or None; got 'ra"),
    ],
)
def test_bad_settings_are_refused(bad, message):
    with pytest.raises(GoldenNoiseError, match=message):
        RedenoiseSettings(**bad)


def test_model_calls_count_cfg_batches():
    assert RedenoiseSettings().model_calls_per_row() == 3  # 2 (CFG step) + 1 (w_w = 1)
    assert RedenoiseSettings(w_w=2.0, repeats=2).model_calls_per_row() == 8
