"""Teachers score source and target with the collection sampler; local search stays Gaussian."""

import math

import numpy as np
import pytest
import tiny_pipelines
import torch
from references import ddim_round_trip_by_hand, plain_soft_score

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.scorers.base import Scorer
from golden_noise.teachers import (
    CollectionSampler,
    LocalSearchTeacher,
    RedenoiseTeacher,
    SamplerSettings,
    get_teacher,
)
from golden_noise.teachers.local_search import candidate_noise
from golden_noise.teachers.sampler import take_rows, tile_rows

PROMPTS = ["a red circle", "two blue squares", "a green triangle"]


@pytest.fixture(scope="module")
def setup():
    return tiny_pipelines.sd_teacher_setup(PROMPTS)


class _Brightness(Scorer):
    """Mean pixel value: a deterministic, continuous scorer (ties between candidates unlikely)."""

    name = "brightness"
    scale = "mean pixel value, 0-255"

    def _load(self) -> None:
        pass

    def _score_batch(self, images, prompts):
        return torch.tensor([float(np.asarray(im).mean()) for im in images])


def test_redenoise_teacher_scores_what_it_returns(setup):
    """Target: the DDIM round trip written out (references.py); scores: toy-soft of a plain
    2-step DDIM pipeline call on each latent, one row at a time."""
    pipe, rows, sampler = setup
    taught = RedenoiseTeacher().teach(rows, sampler)
    expected = ddim_round_trip_by_hand(pipe, rows.source, rows.call_kwargs)
    # float64 vs float32 step arithmetic, ~1e-6 (see test_redenoise); a wrong target is ~1e-1
    torch.testing.assert_close(taught.target, expected, rtol=0, atol=1e-4)
    for i, prompt in enumerate(PROMPTS):
        for latents, scores in (
            (rows.source, taught.score_source),
            (expected, taught.score_target),
        ):
            plain = plain_soft_score(pipe, prompt, latents[i], rows.seeds[i])
            # a batch of 3 vs a batch of 1 moves pixels by float round-off: 1e-2 on [0, 1]
            assert float(scores[i]) == pytest.approx(plain, abs=1e-2), (i, prompt)


def test_local_search_picks_the_best_candidate(setup):
    pipe, rows, _ = setup
    sampler = CollectionSampler(pipe, _Brightness(), SamplerSettings(steps=2), batch_size=7)
    teacher = LocalSearchTeacher(candidates=3, angle=0.6)
    taught = teacher.teach(rows, sampler)
    for i in range(len(rows)):
        eps = candidate_noise(rows.source[i], rows.seeds[i], rows.prompt_index[i], 3)
        candidates = rows.source[i] * math.cos(0.6) + eps * math.sin(0.6)
        one = tile_rows(take_rows(rows.call_kwargs, slice(i, i + 1)), 3)
        scores = sampler.score(candidates, one, [rows.prompts[i]] * 3, [rows.seeds[i]] * 3)
        best = int(scores.argmax())
        torch.testing.assert_close(taught.target[i], candidates[best])
        torch.testing.assert_close(taught.score_target[i], scores[best], rtol=0, atol=1e-4)


def test_candidates_are_fixed_by_the_row_key_and_standard_gaussian():
    source = torch.randn(4, 8, 8)
    first = candidate_noise(source, seed=7, prompt_index=2, k=3)
    assert torch.equal(first, candidate_noise(source, seed=7, prompt_index=2, k=3))
    assert not torch.equal(first, candidate_noise(source, seed=7, prompt_index=3, k=3))
    assert not torch.equal(first, candidate_noise(source, seed=8, prompt_index=2, k=3))
    x = torch.randn(20_000, 16, generator=torch.Generator().manual_seed(0))
    eps = torch.cat([candidate_noise(x[i], i, 0, 1) for i in range(2000)]).reshape(-1)
    mixed = x[:2000].reshape(-1) * math.cos(0.5) + eps * math.sin(0.5)
    # 32,000 draws: standard errors of mean and std are ~0.006 and ~0.004.
    assert abs(float(mixed.mean())) < 0.03
    assert abs(float(mixed.std()) - 1.0) < 0.02


def test_cost_floor_per_row(setup):
    _, _, sampler = setup  # 2 steps at CFG 5.5: 4 evaluations per image
    assert RedenoiseTeacher().model_calls_per_row(sampler) == 3 + 2 * 4
    assert LocalSearchTeacher(candidates=4).model_calls_per_row(sampler) == 5 * 4


def test_registry_and_bad_options():
    assert isinstance(get_teacher("local-search", candidates=2), LocalSearchTeacher)
    with pytest.raises(GoldenNoiseError, match="unknown teacher"):
        get_teacher("oracle")
    with pytest.raises(GoldenNoiseError):
        LocalSearchTeacher(candidates=0)
    with pytest.raises(GoldenNoiseError):
        LocalSearchTeacher(angle=4.0)
    with pytest.raises(GoldenNoiseError):
        SamplerSettings(guidance=0.5)
