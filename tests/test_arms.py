"""The one batched arms path on a tiny SD pipeline: what each arm starts from, and batching."""

import numpy as np
import pytest
import torch
from tiny_pipelines import build_sd, tiny_npnet

from golden_noise.generation import arms
from golden_noise.generation.arms import generate_arms, make_samples
from golden_noise.generation.generate import GoldenNoise
from golden_noise.teachers import RedenoiseTeacher
from golden_noise.teachers.redenoise_step import RedenoiseSettings, redenoise

PROMPTS = ["a red circle", "two blue squares", "a green cube"]
CALL = {"num_inference_steps": 2, "guidance_scale": 3.0}
# Batch 4 vs 1 runs other kernels: ~1e-6 on [0, 1] images of this tiny pipeline, far below
# 1e-4 on any CPU; the ancestral sampler's own noise moves them by ~2e-3, another net by ~1e-1.
IMAGE_ATOL = 1e-4


@pytest.fixture(scope="module")
def pipe():
    pipe = build_sd()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _noise(seeds):
    """Each seed's own noise as the pipeline draws it: a CPU generator, `[4, 16, 16]`."""
    return torch.stack(
        [torch.randn(4, 16, 16, generator=torch.Generator().manual_seed(s)) for s in seeds]
    )


def test_each_arm_starts_from_its_change_of_the_seeds_noise(pipe, monkeypatch):
    golden = GoldenNoise(tiny_npnet(32), pipe)
    teacher = RedenoiseTeacher(RedenoiseSettings(steps=4))
    made = {
        "standard": arms.standard(),
        "golden": arms.golden(golden),
        "norm-matched": arms.norm_matched(golden),
        "teacher": arms.teacher(teacher),
    }
    starts = []
    call = type(pipe).__call__

    def spy(self, *args, **kwargs):
        if "generator" in kwargs:  # image calls; re-denoise's own calls pass none
            starts.append(kwargs["latents"])
        return call(self, *args, **kwargs)

    monkeypatch.setattr(type(pipe), "__call__", spy)
    samples = make_samples(PROMPTS[:2], [5])
    (batch,) = generate_arms(pipe, samples, made, batch_size=2, **CALL)
    starts = dict(zip(made, starts, strict=True))
    noise = _noise([5, 5])
    gold = golden.latents(PROMPTS[:2], latents=noise)
    # The same draw, and the same net on the same batch (same kernels, same order): exact.
    torch.testing.assert_close(starts["standard"], noise, rtol=0, atol=0)
    torch.testing.assert_close(starts["golden"], gold, rtol=0, atol=0)
    kwargs = golden.adapter.call_kwargs(PROMPTS[:2])
    target = redenoise(pipe, noise, kwargs, teacher.settings)
    # Both sides run the same kernels on the same batch of 2 on whatever CPU runs the test, so
    # they agree bit for bit (measured 0); 1e-6 (~2 ulp at |x| <= 4) only absorbs thread-level
    # reduction order, while a wrong teacher input moves the target by > 1e-2.
    torch.testing.assert_close(starts["teacher"], target, rtol=0, atol=1e-6)
    control = starts["norm-matched"]
    # One float32 rescale: norms agree to ~1e-7 relative, on any CPU well inside 1e-5.
    norms = control.flatten(1).norm(dim=1), gold.flatten(1).norm(dim=1)
    torch.testing.assert_close(*norms, rtol=1e-5, atol=0)
    cosine = torch.nn.functional.cosine_similarity(control.flatten(1), noise.flatten(1))
    # Three float32 sums over 1024 values, each off by ~log2(1024) * 6e-8 relative in any
    # summation order: the cosine of a rescaled vector is 1 within ~2e-6 (1.2e-7 measured);
    # 1e-5 holds on any CPU, and a changed direction moves it by > 1e-2.
    torch.testing.assert_close(cosine, torch.ones(2), rtol=0, atol=1e-5)
    ratio = gold.flatten(1).norm(dim=1) / noise.flatten(1).norm(dim=1)
    assert abs(ratio - 1).min() > 1e-3  # a random net changes the norm: the check can fail
    for arm in ("golden", "norm-matched"):
        np.testing.assert_allclose(batch.norm_ratio[arm], ratio.numpy(), rtol=1e-6)
    assert batch.norm_ratio["standard"] == [1.0, 1.0]
    assert {arm: len(images) for arm, images in batch.images.items()} == dict.fromkeys(made, 2)


def test_random_move_moves_as_far_as_golden_in_a_direction_of_its_own(pipe, monkeypatch):
    """The same-size control: |move| and norm equal golden's, the direction unrelated to
    golden's and fixed by the sample's seed alone (the same in a batch of 1 or 3)."""
    golden = GoldenNoise(tiny_npnet(32), pipe)
    made = {"standard": arms.standard(), "random move": arms.random_move(golden)}
    starts = []
    call = type(pipe).__call__

    def spy(self, *args, **kwargs):
        starts.append(kwargs["latents"])
        return call(self, *args, **kwargs)

    monkeypatch.setattr(type(pipe), "__call__", spy)
    list(generate_arms(pipe, make_samples(PROMPTS, [5]), made, batch_size=3, **CALL))
    list(generate_arms(pipe, make_samples(PROMPTS[2:], [5]), made, batch_size=1, **CALL))
    noise = _noise([5, 5, 5])
    gold = golden.latents(PROMPTS, latents=noise)
    moved = starts[1]
    norm = lambda z: z.flatten(1).norm(dim=1)  # noqa: E731
    # Float32 sums over 1024 values: the norms agree to ~1e-6 relative on any CPU; 1e-4
    # holds anywhere while a move of another size (or no rescale) is off by > 1e-2.
    torch.testing.assert_close(norm(moved), norm(gold), rtol=1e-4, atol=0)
    # as documented: a direction from SeedSequence([0, seed]), golden's move in length, then
    # golden's norm
    state = np.random.SeedSequence([0, 5]).generate_state(1, np.uint64)
    direction = torch.randn(4, 16, 16, generator=torch.Generator().manual_seed(
        int(state[0]) & (2**63 - 1)))  # fmt: skip
    golden_move = (gold - noise).flatten(1)
    shifted = noise + direction * (golden_move.norm(dim=1) / direction.norm())[:, None, None, None]
    expected = shifted * (norm(gold) / norm(shifted))[:, None, None, None]
    # the same float32 operations in another order: ~1e-6 of values below 5 on any CPU
    torch.testing.assert_close(moved, expected, rtol=0, atol=1e-5)
    cosine = torch.nn.functional.cosine_similarity((moved - noise).flatten(1), golden_move)
    assert cosine.abs().max() < 0.3  # random directions in 1024-D: |cos| ~ 0.03
    # the third prompt's sample, alone in its batch: the same start (other kernels: 1e-5)
    torch.testing.assert_close(starts[3][0], moved[2], rtol=0, atol=1e-5)


def test_batches_give_the_one_image_calls_images():
    """With an ancestral (stochastic) sampler, so each arm must get the seed's generator."""
    from diffusers import EulerAncestralDiscreteScheduler

    pipe = build_sd()
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
    golden = GoldenNoise(tiny_npnet(32), pipe)
    made = {"standard": arms.standard(), "golden": arms.golden(golden)}
    samples = make_samples(PROMPTS, [0, 1])
    call = {**CALL, "output_type": "np"}
    batched = list(generate_arms(pipe, samples, made, batch_size=4, **call))
    assert [len(b.samples) for b in batched] == [4, 2]
    for arm in made:
        images = [im for b in batched for im in b.images[arm]]
        for image, sample in zip(images, samples, strict=True):
            (one,) = next(generate_arms(pipe, [sample], made, batch_size=1, **call)).images[arm]
            np.testing.assert_allclose(image, one, rtol=0, atol=IMAGE_ATOL)
    own = pipe(PROMPTS[2], generator=torch.Generator().manual_seed(1), **call).images[0]
    np.testing.assert_allclose(batched[1].images["standard"][1], own, rtol=0, atol=IMAGE_ATOL)
    assert np.abs(batched[1].images["golden"][1] - own).max() > 1e-2
