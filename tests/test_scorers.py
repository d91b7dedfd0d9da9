"""The scorer interface and registry, exercised with the toy world's exact scorer."""

import numpy as np
import pytest
import torch
from PIL import Image

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.scorers import SCORERS, available_scorers, get_scorer
from golden_noise.toy import render, sample_prompts


def toy_batch(n=5):
    prompts = sample_prompts(n, 0, "heldout")
    perfect = [Image.fromarray(render(p, seed)) for seed, p in enumerate(prompts)]
    return prompts, perfect


def test_registry_names_and_declared_scales():
    assert available_scorers() == [
        "hpsv2.1", "hpsv2", "imagereward", "pickscore", "clipscore", "aesthetic",
        "toy-soft", "toy-correct",
    ]  # fmt: skip
    for name, (cls, _) in SCORERS.items():
        assert cls.name == name and cls.scale and isinstance(cls.higher_is_better, bool)


def test_unknown_scorer_and_misplaced_source():
    with pytest.raises(GoldenNoiseError, match="unknown scorer 'hps'.*hpsv2.1"):
        get_scorer("hps")
    with pytest.raises(GoldenNoiseError, match="takes no checkpoint"):
        get_scorer("toy-soft=/some/file")


def test_spec_source_fills_the_checkpoint_argument():
    assert get_scorer("hpsv2.1=/ckpt/HPS.pt").checkpoint == "/ckpt/HPS.pt"
    assert get_scorer("pickscore=me/model", processor="me/proc").model_source == "me/model"
    assert get_scorer("aesthetic=head.pth").head_source == "head.pth"


def test_toy_scorers_rate_rendered_scenes():
    prompts, perfect = toy_batch()
    correct = get_scorer("toy-correct").score(perfect, prompts)
    soft = get_scorer("toy-soft").score(perfect, prompts)
    assert correct.dtype == torch.float32 and correct.tolist() == [1.0] * 5
    assert (soft > 0.8).all()
    blank = [Image.new("RGB", (32, 32))] * 5
    assert get_scorer("toy-correct").score(blank, prompts).tolist() == [0.0] * 5
    shuffled = get_scorer("toy-soft").score(perfect, prompts[1:] + prompts[:1])
    assert shuffled.mean() < soft.mean()  # the prompt matters


def test_batching_is_invisible():
    prompts, perfect = toy_batch()
    one = get_scorer("toy-soft", batch_size=1).score(perfect, prompts)
    three = get_scorer("toy-soft", batch_size=3).score(perfect, prompts)
    assert torch.equal(one, three)


def test_bad_calls_name_what_was_expected():
    scorer = get_scorer("toy-soft")
    with pytest.raises(GoldenNoiseError, match="one prompt per image, got 2 images and 1"):
        scorer.score([Image.new("RGB", (32, 32))] * 2, ["a red circle"])
    with pytest.raises(GoldenNoiseError, match="expected PIL images, found ndarray"):
        scorer.score([np.zeros((32, 32, 3), np.uint8)], ["a red circle"])
    with pytest.raises(GoldenNoiseError, match="batch_size"):
        get_scorer("toy-soft", batch_size=0)
    assert scorer.score([], []).shape == (0,)


def test_hub_ids_resolve_offline_from_the_given_cache_dir(tmp_path):
    """A hub id is served from `cache_dir` (huggingface_hub's layout) with HF_HUB_OFFLINE."""
    from golden_noise.core.weights import hub_offline, resolve_file

    assert hub_offline()  # tests/conftest.py sets HF_HUB_OFFLINE=1
    repo = tmp_path / "models--xswu--HPSv2"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "HPS_v2.1_compressed.pt").write_bytes(b"weights")
    path = resolve_file("xswu/HPSv2", "HPS_v2.1_compressed.pt", cache_dir=tmp_path)
    assert path.read_bytes() == b"weights"
    with pytest.raises(GoldenNoiseError, match="HPS_v2_compressed.pt"):
        resolve_file("xswu/HPSv2", "HPS_v2_compressed.pt", cache_dir=tmp_path)
    with pytest.raises(GoldenNoiseError, match="expected a file 'ImageReward.pt' in folder"):
        resolve_file(tmp_path, "ImageReward.pt")
