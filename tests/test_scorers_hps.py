"""HPSv2 / HPSv2.1 glue on a tiny open_clip architecture, checkpoint in the real layout."""

import open_clip
import pytest
import torch
from tiny_scorers import PROMPTS, hps_checkpoint, images, register_open_clip_arch

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.scorers import get_scorer
from golden_noise.scorers.preprocess import CLIP_MEAN, CLIP_STD, clip_image_transform


@pytest.fixture
def arch(tmp_path):
    return register_open_clip_arch(tmp_path)


def reference_hps(path, arch, pics, prompts):
    """What the hpsv2 package computes: open_clip's own loader, transform and encoders."""
    model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=str(path))
    tokenizer = open_clip.get_tokenizer(arch)
    with torch.no_grad():
        image = model.encode_image(torch.stack([preprocess(p) for p in pics]), normalize=True)
        text = model.encode_text(tokenizer(prompts), normalize=True)
    return (image * text).sum(-1)


def test_preprocessing_matches_open_clip():
    assert CLIP_MEAN == open_clip.OPENAI_DATASET_MEAN
    assert CLIP_STD == open_clip.OPENAI_DATASET_STD
    ours = clip_image_transform(32)
    theirs = open_clip.image_transform(32, is_train=False)
    for pic in images(2):
        # The same PIL resize and crop, then one subtract and one divide per pixel: equal up to
        # one rounding of values below ~3 (<= 2.4e-7); measured 0.
        assert torch.allclose(ours(pic), theirs(pic), rtol=0, atol=1e-6)
    assert ours(images(1)[0]).shape == (3, 32, 32)


def test_hps21_scores_equal_open_clip_reference(tmp_path, arch):
    path = hps_checkpoint(tmp_path, "HPS_v2.1_compressed.pt", arch)
    pics = images(3)
    scorer = get_scorer(f"hpsv2.1={tmp_path}", architecture=arch, batch_size=2)
    scores = scorer.score(pics, PROMPTS)
    expected = reference_hps(path, arch, pics, PROMPTS)
    assert scores.shape == (3,) and scores.dtype == torch.float32
    assert torch.allclose(scores, expected, atol=1e-5)
    assert scores.abs().max() <= 1  # a cosine
    assert scores.std() > 0


def test_batching_and_determinism(tmp_path, arch):
    path = hps_checkpoint(tmp_path, "HPS_v2_compressed.pt", arch)
    pics = images(3, seed=5)
    one = get_scorer(f"hpsv2={path}", architecture=arch, batch_size=1).score(pics, PROMPTS)
    scorer = get_scorer(f"hpsv2={path}", architecture=arch, batch_size=3)
    three = scorer.score(pics, PROMPTS)
    # Batch 1 vs 3 runs different GEMM kernels (sums in another order): features move by
    # ~1e-6 relative, a cosine of unit vectors by less than 1e-5; swapping prompts moves it
    # by ~6e-2.
    assert torch.allclose(one, three, rtol=0, atol=1e-5)
    assert torch.equal(three, scorer.score(pics, PROMPTS))
    swapped = scorer.score(pics, PROMPTS[::-1])
    assert not torch.allclose(swapped, three)  # the prompt matters


def test_versions_pick_their_file(tmp_path, arch):
    hps_checkpoint(tmp_path, "HPS_v2_compressed.pt", arch)
    with pytest.raises(GoldenNoiseError, match="HPS_v2.1_compressed.pt"):
        get_scorer(f"hpsv2.1={tmp_path}", architecture=arch).load()


def test_checkpoint_without_state_dict_key_is_refused(tmp_path, arch):
    model = open_clip.create_model(arch, pretrained=None)
    path = tmp_path / "flat.pt"
    torch.save(model.state_dict(), path)
    with pytest.raises(GoldenNoiseError, match="state_dict"):
        get_scorer(f"hpsv2.1={path}", architecture=arch).load()


def test_lazy_loading(tmp_path, arch):
    scorer = get_scorer(f"hpsv2.1={tmp_path / 'missing.pt'}", architecture=arch)
    assert not hasattr(scorer, "model")  # building reads nothing
    with pytest.raises(GoldenNoiseError):
        scorer.score(images(1), PROMPTS[:1])
