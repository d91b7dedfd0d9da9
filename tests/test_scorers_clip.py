"""PickScore, CLIPScore and the LAION aesthetic head on a tiny transformers CLIP folder."""

import numpy as np
import pytest
import torch
from tiny_scorers import PROMPTS, aesthetic_checkpoint, clip_model_dir, images
from torchmetrics.functional.multimodal import clip_score
from transformers import CLIPModel, CLIPProcessor

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.scorers import get_scorer
from golden_noise.scorers.clip import projected


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return clip_model_dir(tmp_path_factory.mktemp("clip"))


def test_pickscore_equals_clip_logits(clip_dir):
    """PickScore = logit_scale.exp() * cosine, i.e. the diagonal of CLIP's logits."""
    pics = images(3)
    scores = get_scorer(f"pickscore={clip_dir}", processor=clip_dir, batch_size=2).score(
        pics, PROMPTS
    )
    model = CLIPModel.from_pretrained(clip_dir).eval()
    inputs = CLIPProcessor.from_pretrained(clip_dir)(
        text=PROMPTS, images=pics, padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        logits = model(**inputs).logits_per_image
    assert torch.allclose(scores, logits.diagonal(), atol=1e-4)
    assert scores.std() > 0


def test_clipscore_equals_torchmetrics(clip_dir):
    """torchmetrics' definition, with its transformers-5 return-type problem wrapped away."""
    pics = images(3, seed=1)
    scores = get_scorer(f"clipscore={clip_dir}", batch_size=3).score(pics, PROMPTS)

    class Features(torch.nn.Module):  # torchmetrics expects tensors from get_*_features
        def __init__(self, model):
            super().__init__()
            self.model = model
            self.config = model.config

        def get_image_features(self, *args, **kwargs):
            return projected(self.model.get_image_features(*args, **kwargs))

        def get_text_features(self, *args, **kwargs):
            return projected(self.model.get_text_features(*args, **kwargs))

    def load():
        return Features(CLIPModel.from_pretrained(clip_dir)), CLIPProcessor.from_pretrained(
            clip_dir
        )

    for pic, prompt, ours in zip(pics, PROMPTS, scores, strict=True):
        pixels = torch.from_numpy(np.array(pic)).permute(2, 0, 1)
        theirs = clip_score(pixels, prompt, model_name_or_path=load)
        assert torch.allclose(ours, theirs, atol=1e-3), (ours, theirs)


def test_clip_batching_and_determinism(clip_dir):
    pics = images(3, seed=2)
    one = get_scorer(f"clipscore={clip_dir}", batch_size=1).score(pics, PROMPTS)
    scorer = get_scorer(f"clipscore={clip_dir}", batch_size=3)
    three = scorer.score(pics, PROMPTS)
    assert torch.allclose(one, three, atol=1e-4)
    assert torch.equal(three, scorer.score(pics, PROMPTS))


def test_aesthetic_head_on_normalised_clip_features(clip_dir, tmp_path):
    path = aesthetic_checkpoint(tmp_path)
    pics = images(3, seed=3)
    scorer = get_scorer(f"aesthetic={tmp_path}", clip=clip_dir, batch_size=2)
    scores = scorer.score(pics, ["ignored"] * 3)
    model = CLIPModel.from_pretrained(clip_dir).eval()
    pixels = CLIPProcessor.from_pretrained(clip_dir)(images=pics, return_tensors="pt")
    state = torch.load(path, weights_only=True)
    with torch.no_grad():
        x = projected(model.get_image_features(**pixels))
        x = x / x.norm(dim=-1, keepdim=True)
        for index in (0, 2, 4, 6, 7):
            x = x @ state[f"layers.{index}.weight"].T + state[f"layers.{index}.bias"]
    assert torch.allclose(scores, x.squeeze(-1), atol=1e-5)
    assert torch.equal(scores, scorer.score(pics, PROMPTS))  # the prompt is ignored
    one = get_scorer(f"aesthetic={path}", clip=clip_dir, batch_size=1).score(pics, PROMPTS)
    assert torch.allclose(one, scores, atol=1e-5)


def test_aesthetic_head_with_wrong_keys_is_refused(clip_dir, tmp_path):
    torch.save({"mlp.0.weight": torch.zeros(1)}, tmp_path / "sac+logos+ava1-l14-linearMSE.pth")
    with pytest.raises(GoldenNoiseError, match="missing keys"):
        get_scorer(f"aesthetic={tmp_path}", clip=clip_dir).load()
