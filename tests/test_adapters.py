"""Adapters reproduce each family's own noise draw and prompt encoding on tiny pipelines."""

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionXLPipeline
from tiny_pipelines import (
    ALL_BUILDERS,
    BUILDERS,
    CALL_KWARGS,
    build_hunyuan_dit,
    build_sd,
    build_sdxl,
)

from golden_noise.adapters import adapter_for
from golden_noise.core.errors import GoldenNoiseError

FAMILY_OF = {"sd": "sd", "sd2": "sd", "sdxl": "sdxl", "hunyuan-dit": "hunyuan-dit"}


@pytest.fixture(scope="module")
def pipes():
    built = {name: build() for name, build in BUILDERS.items()}
    for pipe in built.values():
        pipe.set_progress_bar_config(disable=True)
    return built


def _generators(seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


@pytest.mark.parametrize("name", list(BUILDERS))
def test_family_is_detected(pipes, name):
    assert adapter_for(pipes[name]).family == FAMILY_OF[name]


def test_subclass_of_a_supported_pipeline_is_covered():
    class MyXL(StableDiffusionXLPipeline):
        pass

    assert adapter_for(MyXL(**build_sdxl().components)).family == "sdxl"


def test_img2img_and_foreign_objects_are_refused_with_the_supported_list():
    img2img = StableDiffusionImg2ImgPipeline(**build_sd().components)
    for thing in (img2img, object()):
        with pytest.raises(GoldenNoiseError, match="sdxl.*hunyuan-dit") as info:
            adapter_for(thing)
        assert type(thing).__name__ in str(info.value)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_prompt_embedding_shape_and_order(pipes, name):
    pipe = pipes[name]
    adapter = adapter_for(pipe)
    text_dim = adapter.text_shape()[1]
    embeds = adapter.encode_prompt(["a red cube", "a blue ball"], num_images_per_prompt=2)
    assert embeds.tokens.shape == (4, 77, text_dim)
    assert embeds.tokens.dtype == torch.float32
    # Pipeline order: each prompt repeated num_images_per_prompt times, prompts in order.
    assert torch.equal(embeds.tokens[0], embeds.tokens[1])
    assert not torch.equal(embeds.tokens[1], embeds.tokens[2])


def test_text_widths_match_the_family_encoders():
    assert adapter_for(build_sd(text_dim=24)).text_shape() == (77, 24)
    assert adapter_for(build_sdxl(text_dims=(8, 24))).text_shape() == (77, 32)
    assert adapter_for(build_hunyuan_dit(text_dim=40)).text_shape() == (77, 40)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_initial_noise_is_the_pipelines_own_draw(pipes, name):
    """`prepare_latents` = our noise x init_noise_sigma, for one generator and for a list."""
    pipe = pipes[name]
    adapter = adapter_for(pipe)
    height, width = adapter.default_size()
    channels = adapter.latent_channels
    for make in (lambda: torch.Generator().manual_seed(7), lambda: _generators([7, 8, 9])):
        ours = adapter.initial_noise(3, None, None, make(), torch.float32)
        theirs = pipe.prepare_latents(
            3, channels, height, width, torch.float32, adapter.device, make()
        )
        assert ours.shape == adapter.latent_shape(3)
        torch.testing.assert_close(ours * pipe.scheduler.init_noise_sigma, theirs)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_passing_the_noise_back_reproduces_the_seeded_image(pipes, name):
    """Unit-variance noise passed as `latents=` gives exactly the seeded call's image.

    SDXL's tiny pipeline runs Euler (init_noise_sigma ~14.6) and Hunyuan-DiT a stochastic
    DDPM, so this checks both the scaling contract and that the generator is consumed as the
    pipeline consumes it. Same ops on the same inputs: equality is exact.
    """
    pipe = pipes[name]
    adapter = adapter_for(pipe)
    kwargs = {"num_inference_steps": 2, "output_type": "np", **CALL_KWARGS[name]}
    seeded = pipe("a red cube", generator=torch.Generator().manual_seed(3), **kwargs).images
    generator = torch.Generator().manual_seed(3)
    noise = adapter.initial_noise(1, None, None, generator, torch.float32)
    passed = pipe("a red cube", latents=noise, generator=generator, **kwargs).images
    np.testing.assert_array_equal(seeded, passed)


def test_size_defaults_and_divisibility(pipes):
    adapter = adapter_for(pipes["sdxl"])
    assert adapter.default_size() == (32, 32)
    assert adapter.latent_shape(2, 64, 48) == (2, 4, 32, 24)
    with pytest.raises(GoldenNoiseError, match="divisible by 2; got 33x32"):
        adapter.latent_shape(1, 33, 32)
    assert adapter_for(pipes["hunyuan-dit"]).latent_shape(1) == (1, 4, 8, 8)


def test_wrong_number_of_generators_is_refused(pipes):
    adapter = adapter_for(pipes["sd"])
    with pytest.raises(GoldenNoiseError, match="got 2 generators for 3 images"):
        adapter.initial_noise(3, None, None, _generators([1, 2]), torch.float32)


def test_float16_pipeline_draws_float16_noise_like_the_pipeline():
    pipe = build_sdxl().to(torch.float16)
    adapter = adapter_for(pipe)
    embeds = adapter.encode_prompt("a red cube")
    assert embeds.tokens.dtype == torch.float16
    ours = adapter.initial_noise(1, None, None, torch.Generator().manual_seed(1), torch.float16)
    theirs = pipe.prepare_latents(
        1, 4, 32, 32, torch.float16, adapter.device, torch.Generator().manual_seed(1)
    )
    assert ours.dtype == torch.float16
    torch.testing.assert_close(ours * pipe.scheduler.init_noise_sigma, theirs)


def test_sdxl_prompt_embedding_is_both_encoders_penultimate_states():
    """Written out from SDXL's definition: each CLIP encoder's second-to-last hidden state
    over the 77 padded tokens, concatenated (16 + 32 = 48 wide here). Same modules on the
    same token ids: bit for bit."""
    pipe = build_sdxl()
    states = []
    for tokenizer, encoder in (
        (pipe.tokenizer, pipe.text_encoder),
        (pipe.tokenizer_2, pipe.text_encoder_2),
    ):
        ids = tokenizer(
            ["a red cube"],
            padding="max_length",
            max_length=77,
            truncation=True,
            return_tensors="pt",
        ).input_ids
        with torch.no_grad():
            states.append(encoder(ids, output_hidden_states=True).hidden_states[-2])
    expected = torch.cat(states, dim=-1)
    assert torch.equal(adapter_for(pipe).encode_prompt("a red cube").tokens, expected)


@pytest.mark.parametrize("name", list(ALL_BUILDERS))
def test_prompt_embeddings_read_from_call_kwargs_are_encode_prompts(name):
    """An evaluation batch encodes its prompts once (`call_kwargs`) and hands NPNet the rows
    read from them: bit for bit what `encode_prompt` gives (the same encoder on the same
    batch of prompts)."""
    adapter = adapter_for(ALL_BUILDERS[name]())
    prompts = ["a red cube", "two blue circles on the left"]
    read = adapter.prompt_embeddings(adapter.call_kwargs(prompts))
    encoded = adapter.encode_prompt(prompts)
    assert torch.equal(read.tokens, encoded.tokens) and read.tokens.dtype == encoded.tokens.dtype
    if encoded.attention_mask is None:
        assert read.attention_mask is None
    else:
        assert torch.equal(read.attention_mask, encoded.attention_mask)
