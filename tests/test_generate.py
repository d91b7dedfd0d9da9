"""GoldenNoise on tiny pipelines of each family: shapes, determinism, identity, mismatches."""

import numpy as np
import pytest
import torch
from diffusers import EulerDiscreteScheduler
from tiny_pipelines import (
    BUILDERS,
    CALL_KWARGS,
    build_sd,
    build_sdxl,
    make_identity,
    tiny_npnet,
)
from torch.nn import functional as F

from golden_noise import GoldenNoise
from golden_noise.adapters import adapter_for
from golden_noise.core.errors import GoldenNoiseError

# Identity NPNet vs the pipeline's own noise: the SVD round trip U diag(s) Vh in float32
# leaves ~3e-6 on unit-variance noise; a few tiny denoiser steps and the VAE keep that far
# below 1e-4 on [0, 1] images, while any real change to the noise moves pixels by ~1e-2.
IMAGE_ATOL = 1e-4


def _seeded(seed):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def pipes():
    built = {name: build() for name, build in BUILDERS.items()}
    for pipe in built.values():
        pipe.set_progress_bar_config(disable=True)
    return built


def _golden(pipe, identity=False, **kwargs):
    adapter = adapter_for(pipe)
    _, width = adapter.text_shape()
    size = adapter.latent_shape(1)[-1]
    net = tiny_npnet(width, size)
    return GoldenNoise(make_identity(net) if identity else net, pipe, **kwargs)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_latents_have_the_pipelines_shape_and_dtype(pipes, name):
    golden = _golden(pipes[name])
    generators = [_seeded(s) for s in range(4)]
    latents = golden.latents(["a red cube", "a blue ball"], generators, num_images_per_prompt=2)
    assert latents.shape == golden.adapter.latent_shape(4)
    assert latents.dtype == torch.float32
    noise = golden.adapter.initial_noise(
        4, None, None, [_seeded(s) for s in range(4)], torch.float32
    )
    assert (latents - noise).abs().mean() > 0.05  # a non-identity net does edit the noise


def test_same_seed_same_golden_noise_and_batch_rows_match_single_calls(pipes):
    golden = _golden(pipes["sdxl"])
    one = golden.latents("a red cube", _seeded(5))
    again = golden.latents("a red cube", _seeded(5))
    other = golden.latents("a red cube", _seeded(6))
    # The same call twice (same batch, same kernels, same order): bit-identical on any CPU.
    torch.testing.assert_close(one, again, rtol=0, atol=0)
    assert not torch.allclose(one, other)
    batch = golden.latents(["a blue ball", "a red cube"], [_seeded(9), _seeded(5)])
    # Batch 2 vs 1 runs different kernels: NPNet's outputs (size ~5) differ by ~5e-7 here;
    # 1e-4 leaves room for other CPUs while another prompt's row differs by ~1.
    torch.testing.assert_close(batch[1:], one, rtol=0, atol=1e-4)
    assert not torch.allclose(batch[0], one)


def test_given_embeddings_stand_for_the_encoder_and_must_fit_the_request(pipes):
    golden = _golden(pipes["sdxl"])
    prompts = ["a blue ball", "a red cube"]
    embeddings = golden.adapter.encode_prompt(prompts)
    own = golden.latents(prompts, [_seeded(1), _seeded(2)])
    # the same embedding rows and noise through the same kernels: bit-identical on any CPU
    given = golden.latents(prompts, [_seeded(1), _seeded(2)], embeddings=embeddings)
    torch.testing.assert_close(given, own, rtol=0, atol=0)
    with pytest.raises(GoldenNoiseError, match="embeddings hold 2 rows for 1 images"):
        golden.latents(prompts[0], _seeded(1), embeddings=embeddings)


def _standard_and_identity_images(pipe, name, prompt, **call):
    golden = _golden(pipe, identity=True)
    call = {"num_inference_steps": 3, "output_type": "np", **CALL_KWARGS[name], **call}
    standard = pipe(prompt, generator=_seeded(11), **call).images
    generator = _seeded(11)
    latents = golden.latents(
        prompt, generator, num_images_per_prompt=call.get("num_images_per_prompt", 1)
    )
    return standard, pipe(prompt, latents=latents, generator=generator, **call).images


@pytest.mark.parametrize("name", list(BUILDERS))
def test_identity_npnet_gives_the_pipelines_own_images(pipes, name):
    """Golden noise replaces exactly the seed's noise: an identity net changes nothing.

    Covers DDIM (SD), Euler with init_noise_sigma ~14.6 (SDXL) and stochastic DDPM
    (Hunyuan-DiT, where the generator must be consumed as the pipeline consumes it).
    """
    standard, golden = _standard_and_identity_images(
        pipes[name], name, "a red cube", guidance_scale=5.0
    )
    np.testing.assert_allclose(golden, standard, rtol=0, atol=IMAGE_ATOL)


def test_identity_with_euler_on_sd_batched_with_negative_prompt():
    pipe = build_sd()
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    assert pipe.scheduler.init_noise_sigma > 1
    standard, golden = _standard_and_identity_images(
        pipe,
        "sd",
        ["a red cube", "a blue ball"],
        negative_prompt=["blurry", "dark"],
        num_images_per_prompt=2,
    )
    assert standard.shape[0] == 4
    np.testing.assert_allclose(golden, standard, rtol=0, atol=IMAGE_ATOL)


def test_a_real_edit_changes_the_image(pipes):
    pipe = pipes["sd"]
    golden = _golden(pipe)
    standard = pipe("a red cube", generator=_seeded(1), num_inference_steps=2, output_type="np")
    generator = _seeded(1)
    latents = golden.latents("a red cube", generator)
    edited = pipe(
        "a red cube", latents=latents, generator=generator, num_inference_steps=2, output_type="np"
    )
    assert np.abs(edited.images - standard.images).max() > 100 * IMAGE_ATOL


def test_float16_pipeline_gets_float16_latents_from_a_float32_net():
    pipe = build_sdxl().to(torch.float16)
    golden = _golden(pipe)
    latents = golden.latents("a red cube", _seeded(2))
    assert latents.dtype == torch.float16
    assert golden.npnet.alpha.dtype == torch.float32
    # Independently: the pipeline's own float16 draw and prompt encoding, upcast, a float32
    # forward, cast back to float16 once at the end (a float16 forward differs by ~1e-3).
    noise = torch.randn(1, 4, 16, 16, generator=_seeded(2), dtype=torch.float16)
    tokens = pipe.encode_prompt("a red cube", device="cpu", do_classifier_free_guidance=False)[0]
    assert tokens.dtype == torch.float16
    with torch.no_grad():
        reference = golden.npnet(noise.float(), tokens.float()).half()
    assert torch.equal(latents, reference)


def test_given_latents_are_used_instead_of_a_draw(pipes):
    golden = _golden(pipes["sd"])
    noise = golden.adapter.initial_noise(1, None, None, _seeded(4), torch.float32)
    torch.testing.assert_close(
        golden.latents("a cat", latents=noise), golden.latents("a cat", _seeded(4))
    )
    with pytest.raises(GoldenNoiseError, match=r"shape \[1, 4, 16, 16\].*got \[1, 4, 8, 8\]"):
        golden.latents("a cat", latents=torch.randn(1, 4, 8, 8))


def test_net_for_another_text_encoder_is_refused(pipes):
    golden = GoldenNoise(tiny_npnet(32, 16, family="my-sd"), pipes["sdxl"])
    with pytest.raises(GoldenNoiseError) as info:
        golden.latents("a red cube", _seeded(0))
    message = str(info.value)
    assert "made for my-sd (prompt embedding 77x32" in message
    assert "StableDiffusionXLPipeline (sdxl) gives prompt embedding 77x48" in message


def test_net_for_another_family_is_refused_at_construction(pipes):
    with pytest.raises(GoldenNoiseError, match=r"made for sdxl.*\(family sd\)"):
        GoldenNoise(tiny_npnet(32, 16, family="sdxl"), pipes["sd"])
    GoldenNoise(tiny_npnet(32, 16, family="sd1.5"), pipes["sd"])  # an alias of the sd family
    # The released dit.pth loads as family "hunyuan": served by Hunyuan-DiT, refused by SDXL.
    GoldenNoise(tiny_npnet(32, 8, family="hunyuan"), pipes["hunyuan-dit"])
    with pytest.raises(GoldenNoiseError, match=r"made for hunyuan.*\(family sdxl\)"):
        GoldenNoise(tiny_npnet(48, 16, family="hunyuan"), pipes["sdxl"])


def test_net_for_another_latent_size_is_refused_unless_resizing(pipes):
    golden = _golden(pipes["sdxl"])
    with pytest.raises(
        GoldenNoiseError, match=r"made for .*32x32 px on this pipeline.*resize_noise=True"
    ):
        golden.latents("a red cube", _seeded(0), height=64, width=64)


def test_resize_noise_keeps_shape_and_unit_variance(pipes):
    pipe = pipes["sdxl"]
    adapter = adapter_for(pipe)
    net = tiny_npnet(adapter.text_shape()[1], 16)
    noise = adapter.initial_noise(2, 96, 64, [_seeded(1), _seeded(2)], torch.float32)
    resized = GoldenNoise(net, pipe, resize_noise=True)
    latents = resized.latents(["a red cube", "a blue ball"], [_seeded(1), _seeded(2)], 96, 64)
    assert latents.shape == (2, 4, 48, 32)

    # The documented approximation written out: antialiased bilinear resize to the net's
    # 16x16, standardise each plane, the net's edit resized back onto the seed's noise, and
    # the seed's per-plane mean and std restored.
    def planes(t, like=None):
        centred = (t - t.mean((-2, -1), keepdim=True)) / t.std((-2, -1), keepdim=True)
        if like is None:
            return centred
        return centred * like.std((-2, -1), keepdim=True) + like.mean((-2, -1), keepdim=True)

    small = planes(F.interpolate(noise, (16, 16), mode="bilinear", antialias=True))
    tokens = adapter.encode_prompt(["a red cube", "a blue ball"]).tokens
    with torch.no_grad():
        edit = net(small, tokens) - small
    edit = F.interpolate(edit, (48, 32), mode="bilinear", antialias=True)
    # same operations in the same order: only the net's batch differs (none here): 1e-5
    torch.testing.assert_close(latents, planes(noise + edit, like=noise), rtol=0, atol=1e-5)
    assert (latents.std(dim=(-2, -1)) - 1).abs().max() < 0.15
    assert (latents - noise).abs().mean() > 0.05
    identity = GoldenNoise(make_identity(net), pipe, resize_noise=True)
    unchanged = identity.latents(["a red cube", "a blue ball"], [_seeded(1), _seeded(2)], 96, 64)
    torch.testing.assert_close(unchanged, noise, rtol=0, atol=1e-5)


def test_compare_returns_standard_and_golden_for_every_prompt_and_seed(pipes):
    pipe = pipes["sd"]
    golden = _golden(pipe, identity=True)
    results = golden.compare(
        ["a red cube", "a blue ball"],
        [0, 1],
        num_inference_steps=2,
        output_type="np",
        show_progress=False,
    )
    assert [(r.prompt, r.seed) for r in results] == [
        ("a red cube", 0),
        ("a red cube", 1),
        ("a blue ball", 0),
        ("a blue ball", 1),
    ]
    own = pipe("a blue ball", generator=_seeded(1), num_inference_steps=2, output_type="np").images[
        0
    ]
    # compare() may run the pipeline on a batch of several rows, the reference on one row:
    # different kernels, so pixels differ by float round-off (IMAGE_ATOL), not bit for bit.
    np.testing.assert_allclose(results[3].standard, own, rtol=0, atol=IMAGE_ATOL)
    np.testing.assert_allclose(results[3].golden, own, rtol=0, atol=IMAGE_ATOL)


def test_from_pretrained_loads_a_saved_net(pipes, tmp_path):
    pipe = pipes["sd"]
    net = tiny_npnet(32, 16)
    net.save_pretrained(tmp_path / "net")
    loaded = GoldenNoise.from_pretrained(tmp_path / "net", pipe)
    expected = GoldenNoise(net, pipe).latents("a red cube", _seeded(3))
    torch.testing.assert_close(loaded.latents("a red cube", _seeded(3)), expected)


def test_released_layout_weights_plug_into_an_sdxl_shaped_pipeline(tmp_path):
    """The authors' `.pth` layout (77x2048 text, 128x128 latents) on a tiny SDXL denoiser.

    Checked against an independent re-implementation of the authors' forward.
    """
    from npnet_reference import npnet_reference, released_checkpoint

    checkpoint = released_checkpoint(2048)
    torch.save(checkpoint, tmp_path / "sdxl.pth")
    pipe = build_sdxl(text_dims=(768, 1280), sample_size=128, vae_blocks=4)
    pipe.set_progress_bar_config(disable=True)
    golden = GoldenNoise.from_pretrained(tmp_path / "sdxl.pth", pipe)
    assert golden.npnet.config.family == "sdxl"
    latents = golden.latents("a red cube", _seeded(0))
    assert latents.shape == (1, 4, 128, 128)
    noise = golden.adapter.initial_noise(1, None, None, _seeded(0), torch.float32)
    tokens = golden.adapter.encode_prompt("a red cube").tokens
    torch.testing.assert_close(
        latents, npnet_reference(checkpoint, noise, tokens), rtol=1e-4, atol=1e-4
    )
    out = pipe("a red cube", latents=latents, num_inference_steps=1, output_type="latent")
    assert out.images.shape == (1, 4, 128, 128) and torch.isfinite(out.images).all()
