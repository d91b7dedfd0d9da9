"""SD3, FLUX-dev, FLUX-schnell and PixArt-Sigma adapters and golden noise on tiny pipelines."""

import numpy as np
import pytest
import torch
from tiny_pipelines import BEYOND_BUILDERS, CALL_KWARGS, make_identity, tiny_npnet

from golden_noise import GoldenNoise
from golden_noise.adapters import adapter_for
from golden_noise.core.errors import GoldenNoiseError
from golden_noise.npnet.text_injection import TextInjection

# (latent channels, prompt tokens) of each tiny pipeline; the tokens are the real models'
# (SD3 77 CLIP + 256 T5, FLUX-dev 512 / schnell 256 T5, PixArt 300 T5), the width is tiny.
EXPECTED = {
    "sd3": (16, 333),
    "flux-dev": (16, 512),
    "flux-schnell": (16, 256),
    "pixart-sigma": (4, 300),
}
FAMILIES = list(BEYOND_BUILDERS)
PACKED = ("flux-dev", "flux-schnell")
# Identity NPNet vs the pipeline's own noise: see IMAGE_ATOL in test_generate.py (the SVD
# round trip leaves ~3e-6 on unit noise; a real change to the noise moves pixels by ~1e-2).
IMAGE_ATOL = 1e-4


def _seeded(seed):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def pipes():
    built = {name: build() for name, build in BEYOND_BUILDERS.items()}
    for pipe in built.values():
        pipe.set_progress_bar_config(disable=True)
    return built


def _net_for(adapter, identity=False, **config):
    tokens, width = adapter.text_shape()
    _, channels, size, _ = adapter.latent_shape(1)
    net = tiny_npnet(
        width, size, channels=channels, text_tokens=tokens, family=adapter.family, **config
    )
    return make_identity(net) if identity else net


@pytest.mark.parametrize("name", FAMILIES)
def test_family_latent_and_text_shapes(pipes, name):
    adapter = adapter_for(pipes[name])
    assert adapter.family == name
    channels, tokens = EXPECTED[name]
    assert adapter.latent_shape(2) == (2, channels, 8, 8)
    assert adapter.text_shape() == (tokens, 32)
    embeds = adapter.encode_prompt(["a red cube", "a blue ball"], num_images_per_prompt=2)
    assert embeds.tokens.shape == (4, tokens, 32)
    assert torch.equal(embeds.tokens[0], embeds.tokens[1])
    assert not torch.equal(embeds.tokens[1], embeds.tokens[2])


def test_flux_dev_and_schnell_are_told_apart_by_the_guidance_embedding(pipes):
    dev, schnell = adapter_for(pipes["flux-dev"]), adapter_for(pipes["flux-schnell"])
    assert dev.guidance_kwargs(5.5) == {"guidance_scale": 5.5}
    assert schnell.guidance_kwargs(5.5) == {"true_cfg_scale": 5.5}
    assert all(adapter_for(pipes[n]).flow_matching for n in ("sd3", *PACKED))
    assert not adapter_for(pipes["pixart-sigma"]).flow_matching


@pytest.mark.parametrize("name", FAMILIES)
def test_initial_noise_is_the_pipelines_own_draw(pipes, name):
    pipe = pipes[name]
    adapter = adapter_for(pipe)
    height, width = adapter.default_size()
    for make in (lambda: _seeded(7), lambda: [_seeded(s) for s in (7, 8, 9)]):
        ours = adapter.initial_noise(3, None, None, make(), torch.float32)
        assert ours.shape == adapter.latent_shape(3)
        if name in PACKED:
            channels = adapter.latent_channels
            theirs, _ = pipe.prepare_latents(
                3, channels, height, width, torch.float32, "cpu", make()
            )
            # Packing only moves values: exact on any CPU.
            torch.testing.assert_close(adapter.pipeline_latents(ours), theirs, rtol=0, atol=0)
        else:
            channels = adapter.latent_channels
            theirs = pipe.prepare_latents(3, channels, height, width, torch.float32, "cpu", make())
            # SD3 uses the draw as is (its flow scheduler has no init_noise_sigma); PixArt
            # scales it by its scheduler's.
            scale = pipe.scheduler.init_noise_sigma if name == "pixart-sigma" else 1.0
            # The same draw times the same scalar on both sides: exact on any CPU.
            torch.testing.assert_close(ours * scale, theirs, rtol=0, atol=0)


@pytest.mark.parametrize("name", PACKED)
def test_flux_pack_unpack_round_trip_and_patch_layout(pipes, name):
    adapter = adapter_for(pipes[name])
    x = torch.randn(2, 16, 8, 12)
    packed = adapter.pipeline_latents(x)
    assert packed.shape == (2, 4 * 6, 64)
    # Token (i, j) holds the 2x2 patch at rows 2i..2i+1, cols 2j..2j+1, channel-major.
    # Packing and unpacking only move values: exact on any CPU.
    torch.testing.assert_close(packed[1, 6 + 2], x[1, :, 2:4, 4:6].reshape(-1), rtol=0, atol=0)
    torch.testing.assert_close(adapter.unit_latents(packed, 16, 24), x, rtol=0, atol=0)


@pytest.mark.parametrize("name", FAMILIES)
def test_identity_npnet_gives_the_pipelines_own_images(pipes, name):
    """Same seed: the pipeline's own image and the identity-NPNet golden image agree."""
    pipe = pipes[name]
    golden = GoldenNoise(_net_for(adapter_for(pipe), identity=True), pipe)
    call = {"num_inference_steps": 3, "output_type": "np", **CALL_KWARGS[name]}
    prompts = ["a red cube", "two blue balls"]
    standard = pipe(prompts, generator=[_seeded(11), _seeded(12)], **call).images
    generators = [_seeded(11), _seeded(12)]
    latents = golden.latents(prompts, generators)
    ours = pipe(prompts, latents=latents, generator=generators, **call).images
    np.testing.assert_allclose(ours, standard, rtol=0, atol=IMAGE_ATOL)
    moved = GoldenNoise(_net_for(adapter_for(pipe)), pipe).latents(prompts, [_seeded(11)] * 2)
    changed = pipe(prompts, latents=moved, **call).images
    assert np.abs(changed - standard).max() > 1e-2  # a non-identity net does change the image


@pytest.mark.parametrize("name", PACKED)
def test_flux_golden_latents_come_packed_for_the_pipeline(pipes, name):
    golden = GoldenNoise(_net_for(adapter_for(pipes[name])), pipes[name])
    assert golden.latents("a red cube", _seeded(0)).shape == (1, 16, 64)


def test_pixart_padding_is_zeroed_and_the_mean_reduction_ignores_it(pipes):
    adapter = adapter_for(pipes["pixart-sigma"])
    embeds = adapter.encode_prompt(["a cube", "a much longer prompt about a red cube"])
    mask = embeds.attention_mask.bool()
    assert mask.sum(1).tolist()[0] < mask.sum(1).tolist()[1] < 300
    assert torch.all(embeds.tokens[~mask] == 0)
    assert torch.all(embeds.tokens[mask].abs().sum(-1) > 0)
    net = _net_for(adapter, text_reduction="mean")
    text: TextInjection = net.text
    seen = {}
    text.norm.register_forward_hook(lambda _m, args, _o: seen.update(condition=args[1]))
    net(torch.randn(2, 4, 8, 8), embeds.tokens)
    for row in range(2):
        masked_mean = embeds.tokens[row][mask[row]].mean(0)
        # Two means of up to 300 values of size ~1 summed in different orders (the SIMD width
        # differs between CPUs): a few roundings each, well under 1e-5.
        torch.testing.assert_close(seen["condition"][row], masked_mean, rtol=0, atol=1e-5)


def test_npnet_for_flux_dev_is_refused_on_schnell(pipes):
    dev_net = _net_for(adapter_for(pipes["flux-dev"]))
    with pytest.raises(GoldenNoiseError, match="made for flux-dev.*FluxPipeline"):
        GoldenNoise(dev_net, pipes["flux-schnell"])
    unnamed = _net_for(adapter_for(pipes["flux-dev"]))
    unnamed.config.family = None
    with pytest.raises(GoldenNoiseError, match="prompt embedding 256x32"):
        GoldenNoise(unnamed, pipes["flux-schnell"]).latents("a red cube", _seeded(0))


def test_sizes_must_fit_packing_and_patches(pipes):
    flux = adapter_for(pipes["flux-dev"])
    assert flux.latent_shape(1, 32, 24) == (1, 16, 16, 12)
    with pytest.raises(GoldenNoiseError, match="divisible by 4; got 18x16"):
        flux.latent_shape(1, 18, 16)
    with pytest.raises(GoldenNoiseError, match="divisible by 2; got 15x16"):
        adapter_for(pipes["sd3"]).latent_shape(1, 15, 16)


def test_pixart_overlong_prompts_use_its_300_token_limit(pipes):
    adapter = adapter_for(pipes["pixart-sigma"])
    assert adapter.prompt_token_limit == 300
    # The tiny T5 tokenizer is character-level: 200 characters fit, 400 do not.
    assert adapter.overlong_prompts(["a" * 200, "ab" * 200]) == [1]
