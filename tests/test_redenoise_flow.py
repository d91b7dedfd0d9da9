"""Re-denoise beyond the paper: flow matching (SD3, FLUX), PixArt-Sigma, few-step samplers."""

import pytest
import torch
from diffusers import LCMScheduler
from tiny_pipelines import BEYOND_BUILDERS

from golden_noise.adapters import adapter_for
from golden_noise.core.errors import GoldenNoiseError
from golden_noise.teachers.redenoise_step import (
    DDIMStepPair,
    FlowStep,
    RedenoiseSettings,
    flow_prediction,
    redenoise,
)

FLOW = ("sd3", "flux-dev", "flux-schnell")
PROMPTS = ["a red cube", "two blue balls"]


@pytest.fixture(scope="module")
def pipes():
    built = {name: build() for name, build in BEYOND_BUILDERS.items()}
    for pipe in built.values():
        pipe.set_progress_bar_config(disable=True)
    return built


def _noise(adapter, n=2):
    generators = [torch.Generator().manual_seed(i) for i in range(n)]
    return adapter.initial_noise(n, None, None, generators, torch.float32)


def test_flow_inverse_undoes_the_step_with_the_same_velocity():
    """x + d*v - d*v in float32: two roundings of values below ~8, each <= 4.8e-7; measured
    1.2e-7. Any wrong sign or sigma pair would leave ~|d*v| ~ 1e-2."""
    step = FlowStep(1.0, 0.9931243658065796)
    x, v = torch.randn(4, 16, 8, 8), torch.randn(4, 16, 8, 8)
    stepped = step.step(v, x)
    assert (stepped - x).abs().max() > 1e-2
    torch.testing.assert_close(step.invert(v, stepped), x, rtol=0, atol=1e-6)


@pytest.mark.parametrize("steps", [4, 50])
@pytest.mark.parametrize("name", FLOW)
def test_sigmas_are_the_ones_the_pipeline_itself_uses(pipes, name, steps):
    """Compared with the pipeline's own scheduler after a real N-step call (SD3's shift,
    FLUX-dev's resolution-dependent mu, schnell's plain linspace)."""
    pipe = pipes[name]
    adapter = adapter_for(pipe)
    kwargs = adapter.call_kwargs(PROMPTS)
    x = _noise(adapter)
    _, first = flow_prediction(pipe, x, steps, 1.0, kwargs)
    pipe(**kwargs, latents=adapter.pipeline_latents(x), num_inference_steps=steps)
    own = pipe.scheduler.sigmas
    assert (first.sigma_0, first.sigma_1) == (float(own[0]), float(own[1]))
    assert first.sigma_0 == 1.0


def test_known_sigma_values():
    """SD3's shift 3 at 50 steps gives sigma_1 = 3s/(1+2s), s = 1 - 0.98/49: 0.99312."""
    sd3, schnell = BEYOND_BUILDERS["sd3"](), BEYOND_BUILDERS["flux-schnell"]()
    for pipe, steps, sigma_1 in ((sd3, 50, 0.993124), (schnell, 4, 0.75)):
        pipe.set_progress_bar_config(disable=True)
        adapter = adapter_for(pipe)
        _, first = flow_prediction(pipe, _noise(adapter, 1), steps, 1.0, adapter.call_kwargs(["x"]))
        assert first.sigma_1 == pytest.approx(sigma_1, abs=1e-6)


def _sd3_by_hand(pipe, x, kwargs, scale):
    both = pipe.transformer(
        hidden_states=torch.cat([x, x]),
        timestep=torch.full((2 * len(x),), 1000.0),
        encoder_hidden_states=torch.cat(
            [kwargs["negative_prompt_embeds"], kwargs["prompt_embeds"]]
        ),
        pooled_projections=torch.cat(
            [kwargs["negative_pooled_prompt_embeds"], kwargs["pooled_prompt_embeds"]]
        ),
    ).sample
    uncond, cond = both.chunk(2)
    return uncond + scale * (cond - uncond)


def _flux_by_hand(pipe, x, kwargs, scale):
    adapter = adapter_for(pipe)
    n, _, h, w = x.shape
    guidance = torch.full((n,), scale) if adapter.guidance_embedded else None

    def velocity(prefix):
        embeds = kwargs[f"{prefix}prompt_embeds"]
        return pipe.transformer(
            hidden_states=adapter.pipeline_latents(x),
            timestep=torch.ones(n),
            guidance=guidance,
            pooled_projections=kwargs[f"{prefix}pooled_prompt_embeds"],
            encoder_hidden_states=embeds,
            txt_ids=torch.zeros(embeds.shape[1], 3),
            img_ids=pipe._prepare_latent_image_ids(n, h // 2, w // 2, "cpu", torch.float32),
        ).sample

    cond = velocity("")
    if not adapter.guidance_embedded:  # schnell: true CFG against the empty prompt
        uncond = velocity("negative_")
        cond = uncond + scale * (cond - uncond)
    return adapter.unit_latents(cond, kwargs["height"], kwargs["width"])


@pytest.mark.parametrize("name", FLOW)
def test_captured_velocity_is_the_pipelines_own_guided_output(pipes, name):
    """Same ops on the same batch as the pipeline's loop, so the same kernels: the only room
    is the guidance combination evaluated in another order, a few roundings of values below
    ~12 (<= 1e-6 each); measured 0."""
    pipe = pipes[name]
    adapter = adapter_for(pipe)
    kwargs = adapter.call_kwargs(PROMPTS)
    x = _noise(adapter)
    by_hand = _sd3_by_hand if name == "sd3" else _flux_by_hand
    with torch.no_grad():
        for scale in (5.5, 2.0):
            captured, _ = flow_prediction(pipe, x, 10, scale, kwargs)
            torch.testing.assert_close(captured, by_hand(pipe, x, kwargs, scale), rtol=0, atol=1e-6)
    assert not torch.allclose(captured, flow_prediction(pipe, x, 10, 5.5, kwargs)[0])


@pytest.mark.parametrize("name", FLOW)
def test_equal_guidance_round_trip_is_second_order_and_high_guidance_leaves_a_trace(pipes, name):
    """At w_l = w_w the inverse uses v(x1) for v(x), one step (|d v| ~ 1e-2) away, so x' - x
    is O(d^2): measured 0.5-1.5% of the step at 50 steps. At w_l = 5.5 the round trip keeps
    the guidance difference: measured 9-80x the equal-guidance residue."""
    pipe = pipes[name]
    adapter = adapter_for(pipe)
    kwargs = adapter.call_kwargs(PROMPTS)
    x = _noise(adapter)
    velocity, first = flow_prediction(pipe, x, 50, 1.0, kwargs)
    step_size = (first.step(velocity, x) - x).abs().max()
    equal = redenoise(pipe, x, kwargs, RedenoiseSettings(steps=50, w_l=1.0, w_w=1.0))
    guided = redenoise(pipe, x, kwargs, RedenoiseSettings(steps=50, w_l=5.5, w_w=1.0))
    residue = (equal - x).abs().max()
    assert residue < 0.05 * step_size
    assert (guided - x).abs().max() > 3 * residue
    assert guided.shape == x.shape and guided.dtype == torch.float32
    again = redenoise(pipe, x, kwargs, RedenoiseSettings(steps=50, w_l=5.5, w_w=1.0))
    # The same call twice (same batch, same kernels, same order): bit-identical on any CPU.
    torch.testing.assert_close(again, guided, rtol=0, atol=0)


@pytest.mark.parametrize(
    "settings", [{"inversion": "authors"}, {"timestep_spacing": "trailing"}], ids=str
)
def test_flow_refuses_ddim_only_settings(pipes, settings):
    pipe = pipes["sd3"]
    adapter = adapter_for(pipe)
    with pytest.raises(GoldenNoiseError, match="flow-matching.*sigma 1"):
        redenoise(
            pipe, _noise(adapter), adapter.call_kwargs(PROMPTS), RedenoiseSettings(**settings)
        )


def test_pixart_redenoises_through_ddim_with_its_learned_variance_split(pipes):
    pipe = pipes["pixart-sigma"]
    adapter = adapter_for(pipe)
    kwargs = adapter.call_kwargs(PROMPTS)
    x = _noise(adapter)
    target = redenoise(pipe, x, kwargs, RedenoiseSettings(steps=10))
    assert target.shape == x.shape == (2, 4, 8, 8)
    assert (target - x).abs().max() > 1e-3
    torch.testing.assert_close(redenoise(pipe, x, kwargs, RedenoiseSettings(steps=10)), target)


def test_few_step_samplers_start_at_999_and_trailing_ddim_matches_them():
    """LCM samples 4 steps from 999; DDIM built from its ("leading") config would re-denoise at
    751, so few-step models take timestep_spacing="trailing", which gives 999 for any N."""
    lcm = LCMScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, steps_offset=1
    )
    lcm.set_timesteps(4)
    assert int(lcm.timesteps[0]) == 999
    assert DDIMStepPair(lcm.config, 4).first_timestep == 751
    for steps in (2, 4, 8):
        assert DDIMStepPair(lcm.config, steps, "trailing").first_timestep == 999
