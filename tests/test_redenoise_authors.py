"""Re-denoise as the authors' released collector does it, and guidance below 1 (Z-Sampling).

`forward_ours_first_step` re-states the first loop iteration of the authors'
`training/utils/pipeline_stable_diffusion_xl.py::forward_ours` (T_max = 1) on a tiny
SDXL-shaped pipeline, calling the UNet directly: it shares no code with the library path.
"""

import pytest
import tiny_pipelines
import torch
from diffusers import DDIMInverseScheduler, DDIMScheduler

import golden_noise
from golden_noise.adapters import adapter_for
from golden_noise.core.errors import GoldenNoiseError
from golden_noise.teachers.redenoise_step import flow_prediction, guided_prediction

PROMPTS = ["a red circle", "two blue squares on the left"]

# Why 1e-4 holds on any x86 CPU: the authors' UNet batch is [uncond; text] = 2B rows; ours is
# the same batch for w != 1, but B text rows alone for w = 1 (u + 1 (c - u) = c in exact
# arithmetic). Different batch sizes run different GEMM/conv kernels, so predictions of size
# ~2 differ by ~2e-6 at most (1.8e-6 measured on an AMD EPYC, 0 on other CPUs), and float32
# rounding of u + w (c - u) adds ~1e-6. The DDIM step multiplies a prediction by at most
# 1 + 5.5 * 2 = 12 (CFG) times ~15 (1/sqrt(alpha_bar) at t = 981): ~4e-4 in the worst case
# on paper, measured 2e-6 here. A wrong guidance, inversion target or branch moves the result
# by > 1e-2 (asserted below), so 1e-4 separates right from wrong with room on both sides.
AUTHORS_ATOL = 1e-4


@pytest.fixture(scope="module")
def sdxl():
    return tiny_pipelines.build_sdxl()


def _noise(adapter, n=2, seed=0):
    generators = [torch.Generator().manual_seed(seed + i) for i in range(n)]
    return adapter.initial_noise(n, None, None, generators, torch.float32)


@torch.no_grad()
def forward_ours_first_step(pipe, latents, prompts, steps, w_l, w_w):
    """The authors' collector, first timestep: DDIM step with CFG w_l, the UNet again on
    x_{T-1} at the same t with both branches weighted by w_w, then DDIMInverseScheduler.step
    told the schedule's *second* timestep.

    Their schedulers: `DDIMScheduler.from_config(pipe.scheduler.config)` and
    `DDIMInverseScheduler.from_pretrained(SDXL, subfolder="scheduler")`, i.e. SDXL's config,
    which says clip_sample false; a random pipeline's config omits it (DDIM would default to
    True), so it is stated here.
    """
    scheduler = DDIMScheduler.from_config(pipe.scheduler.config, clip_sample=False)
    inverse = DDIMInverseScheduler.from_config(pipe.scheduler.config, clip_sample=False)
    scheduler.set_timesteps(steps)
    inverse.set_timesteps(steps)
    timesteps = scheduler.timesteps
    t = timesteps[0]
    height, width = (s * pipe.vae_scale_factor for s in latents.shape[-2:])
    embeds, negative, pooled, negative_pooled = pipe.encode_prompt(
        prompt=prompts, device="cpu", do_classifier_free_guidance=True
    )
    time_ids = pipe._get_add_time_ids(
        (height, width), (0, 0), (height, width), dtype=embeds.dtype,
        text_encoder_projection_dim=pipe.text_encoder_2.config.projection_dim,
    ).repeat(2 * len(prompts), 1)  # fmt: skip
    cond = {"text_embeds": torch.cat([negative_pooled, pooled]), "time_ids": time_ids}
    hidden = torch.cat([negative, embeds])

    def guided(x, w):
        out = pipe.unet(torch.cat([x, x]), t, encoder_hidden_states=hidden,
                        added_cond_kwargs=cond, return_dict=False)[0]  # fmt: skip
        uncond, text = out.chunk(2)
        return uncond + w * (text - uncond)

    next_latents = scheduler.step(guided(latents, w_l), t, latents, return_dict=False)[0]
    eps = guided(next_latents, w_w)
    return inverse.step(eps, timesteps[1], next_latents, return_dict=False)[0]


@pytest.mark.parametrize("steps", [50, 10])
@pytest.mark.parametrize("w_w", [1.0, 0.0])
def test_released_collector_is_reproduced(sdxl, steps, w_w):
    adapter = golden_noise.adapters.adapter_for(sdxl)
    x = _noise(adapter)
    settings = golden_noise.RedenoiseSettings(steps=steps, w_l=5.5, w_w=w_w, inversion="authors")
    ours = golden_noise.redenoise(sdxl, x, adapter.call_kwargs(PROMPTS), settings)
    theirs = forward_ours_first_step(sdxl, x, PROMPTS, steps, 5.5, w_w)
    assert (theirs - x).abs().max() > 1e-2  # the round trip really moved the noise
    torch.testing.assert_close(ours, theirs, rtol=0, atol=AUTHORS_ATOL)
    # The other inversion guidance is a different dataset: the check can tell them apart.
    other = forward_ours_first_step(sdxl, x, PROMPTS, steps, 5.5, 1.0 - w_w)
    assert (ours - other).abs().max() > 1e-2


def test_guidance_below_one_weights_both_branches_of_the_unet(sdxl):
    """w = 0.3 on the UNet written out: not the text branch alone, which the pipeline gives."""
    adapter = adapter_for(sdxl)
    kwargs = adapter.call_kwargs(PROMPTS)
    x = _noise(adapter)
    t = 981
    height, width = kwargs["height"], kwargs["width"]
    time_ids = sdxl._get_add_time_ids(
        (height, width), (0, 0), (height, width), dtype=torch.float32,
        text_encoder_projection_dim=sdxl.text_encoder_2.config.projection_dim,
    ).repeat(4, 1)  # fmt: skip
    with torch.no_grad():
        uncond, text = sdxl.unet(
            torch.cat([x, x]), t,
            encoder_hidden_states=torch.cat([kwargs["negative_prompt_embeds"],
                                             kwargs["prompt_embeds"]]),
            added_cond_kwargs={"time_ids": time_ids, "text_embeds": torch.cat(
                [kwargs["negative_pooled_prompt_embeds"], kwargs["pooled_prompt_embeds"]])},
        ).sample.chunk(2)  # fmt: skip
    # Same 2B batch as the library's; 1e-5 is float32 rounding of u + w (c - u) on values ~2.
    for w in (0.3, 0.0, -1.0):
        torch.testing.assert_close(
            guided_prediction(sdxl, x, t, w, kwargs), uncond + w * (text - uncond),
            rtol=0, atol=1e-5,
        )  # fmt: skip


CFG_FAMILIES = ["sd", "hunyuan-dit", "pixart-sigma", "sd3", "flux-schnell"]


@pytest.mark.parametrize("family", CFG_FAMILIES)
def test_guidance_below_one_extends_the_pipelines_own_cfg_line(family):
    """P(w) = uncond + w (text - uncond) is a line in w; the pipeline's own CFG gives it at
    w = 2 and 3, so P(0) and P(0.5) follow by extrapolation, independently of our branches."""
    pipe = tiny_pipelines.ALL_BUILDERS[family]()
    adapter = adapter_for(pipe)
    kwargs = adapter.call_kwargs(PROMPTS)
    x = _noise(adapter)

    def predict(w):
        if adapter.flow_matching:
            return flow_prediction(pipe, x, 4, w, kwargs)[0]
        return guided_prediction(pipe, x, 901, w, kwargs)

    at_2, at_3 = predict(2.0), predict(3.0)
    for w in (0.0, 0.5):
        # Extrapolating by (w - 2) <= 2 slopes of two pipeline calls doubles their ~2e-6
        # float differences (same batch size, same kernels): 1e-4 covers it; the text branch
        # alone (what the pipeline returns for w < 1) is off by > 1e-2.
        line = at_2 + (w - 2.0) * (at_3 - at_2)
        torch.testing.assert_close(predict(w), line, rtol=0, atol=1e-4)
    assert (predict(0.0) - predict(1.0)).abs().max() > 1e-2


def test_a_family_without_an_unconditional_branch_refuses_guidance_below_one():
    pipe = tiny_pipelines.ALL_BUILDERS["flux-dev"]()
    adapter = adapter_for(pipe)
    settings = golden_noise.RedenoiseSettings(steps=4, w_w=0.0)
    with pytest.raises(GoldenNoiseError, match=r"w_w=0.0 needs an unconditional branch .*"
                       r"FLUX.1-dev is guidance-distilled"):  # fmt: skip
        golden_noise.redenoise(pipe, _noise(adapter), adapter.call_kwargs(PROMPTS), settings)
    # its guidance >= 1 still works
    ok = golden_noise.redenoise(
        pipe,
        _noise(adapter),
        adapter.call_kwargs(PROMPTS),
        golden_noise.RedenoiseSettings(steps=4, w_l=3.0, w_w=1.0),
    )
    assert torch.isfinite(ok).all()


def test_settings_take_any_finite_guidance_and_count_both_branches():
    settings = golden_noise.RedenoiseSettings(w_l=0.5, w_w=0.0)
    assert settings.model_calls_per_row() == 4  # two [uncond; text] batches
    assert golden_noise.RedenoiseSettings(w_w=1.0).model_calls_per_row() == 3
    with pytest.raises(GoldenNoiseError, match="w_w must be a finite number"):
        golden_noise.RedenoiseSettings(w_w=float("inf"))
