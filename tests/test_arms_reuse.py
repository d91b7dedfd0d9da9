"""Shared work in the batched arms path: a scoring teacher's images (the seed's own noise and
its chosen candidate) serve as the standard and teacher images instead of being generated
again, on the toy pipeline whose DDIM scheduler the collection sampler renders exactly."""

import numpy as np
import pytest
from diffusers import EulerDiscreteScheduler

from golden_noise.generation import arms
from golden_noise.generation.arms import RecordingSampler, generate_arms, make_samples
from golden_noise.generation.generate import GoldenNoise
from golden_noise.scorers import get_scorer
from golden_noise.teachers import CollectionSampler, SamplerSettings, get_teacher
from golden_noise.toy import load_npnet, load_pipeline

CALL = {"num_inference_steps": 3, "guidance_scale": 2.0}
SETTINGS = SamplerSettings(steps=3, guidance=2.0)
# The sampler renders a teacher's rows in a batch of (K + 1) x B, the plain path in one of B:
# other kernels, ~1e-6 apart in [0, 1] before the images are rounded to 8 bits, so at most a
# rare pixel moves by one level, on any CPU. A different noise moves most pixels by many.
MAX_LEVELS = 1
MAX_MOVED_SHARE = 0.01


@pytest.fixture(scope="module")
def pipe():
    pipe = load_pipeline()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _arms(pipe, sampler):
    golden = GoldenNoise(load_npnet(), pipe)
    teacher = get_teacher("local-search", candidates=2, angle=0.5)
    return {
        "standard": arms.standard(),
        "golden": arms.golden(golden),
        "teacher": arms.teacher(teacher, sampler),
    }


def _count_rows(pipe, monkeypatch):
    """Rows of every pipeline call made with `generator=` (image calls), in order."""
    rows = []
    call = type(pipe).__call__

    def spy(self, *args, **kwargs):
        rows.append(len(kwargs["latents"]))
        return call(self, *args, **kwargs)

    monkeypatch.setattr(type(pipe), "__call__", spy)
    return rows


def _same_image(a, b):
    a, b = np.asarray(a, dtype=np.int16), np.asarray(b, dtype=np.int16)
    moved = np.abs(a - b)
    return moved.max() <= MAX_LEVELS and (moved > 0).mean() <= MAX_MOVED_SHARE


def test_teacher_images_are_reused_and_match_the_plain_path(pipe, monkeypatch):
    scorer = get_scorer("toy-soft")
    # two samples share seed 7 (the same noise) under different prompts: never confused
    samples = make_samples(["a red circle", "two blue squares"], [7]) + make_samples(
        ["a red circle and a green triangle"], [8]
    )
    plain = list(generate_arms(pipe, samples, _arms(pipe, CollectionSampler(
        pipe, scorer, SETTINGS, 64)), batch_size=3, **CALL))  # fmt: skip
    recording = RecordingSampler(pipe, scorer, SETTINGS, 64)
    assert recording.renders_like(CALL)
    rows = _count_rows(pipe, monkeypatch)
    (reused,) = generate_arms(pipe, samples, _arms(pipe, recording), batch_size=3, **CALL)
    # one sampler call of (K + 1) x 3 rows for the teacher, then only golden's 3 rows
    assert rows == [9, 3]
    assert recording.seen == {}  # handed to the batch, not kept across batches
    for arm in ("standard", "golden", "teacher"):
        for ours, theirs in zip(reused.images[arm], plain[0].images[arm], strict=True):
            assert _same_image(ours, theirs), arm
    assert reused.norm_ratio == plain[0].norm_ratio  # the same start latents, exactly
    first, second = reused.images["standard"][:2]
    assert not _same_image(first, second)  # same noise, other prompt: another image


def test_reuse_only_where_the_sampler_renders_like_the_call(pipe):
    scorer = get_scorer("toy-soft")
    sampler = RecordingSampler(pipe, scorer, SETTINGS, 8)
    assert sampler.renders_like(CALL)
    assert not sampler.renders_like({**CALL, "num_inference_steps": 4})
    assert not sampler.renders_like({**CALL, "guidance_scale": 7.5})
    original = pipe.scheduler
    try:
        pipe.scheduler = EulerDiscreteScheduler.from_config(original.config)
        assert not RecordingSampler(pipe, scorer, SETTINGS, 8).renders_like(CALL)
    finally:
        pipe.scheduler = original
