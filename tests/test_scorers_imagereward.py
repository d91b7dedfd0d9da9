"""ImageReward glue: the real ImageReward.pt key layout (tiny sizes) mapped onto transformers'
BLIP modules, checked against an independent forward (timm ViT + a plain-torch BLIP BERT)."""

import math

import pytest
import timm
import torch
import torch.nn.functional as F
from tiny_scorers import IR_MED, IR_VISION, PROMPTS, imagereward_dir, images
from transformers import BertTokenizer

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.scorers import get_scorer
from golden_noise.scorers.imagereward import REWARD_MEAN, REWARD_STD
from golden_noise.scorers.preprocess import clip_image_transform


@pytest.fixture
def folder(tmp_path):
    return imagereward_dir(tmp_path)


def scorer(folder, **kwargs):
    return get_scorer(
        f"imagereward={folder}",
        tokenizer=folder / "tokenizer",
        vision_heads=IR_VISION["heads"],
        **kwargs,
    )


def reference_vision(state, pixels):
    """BLIP's ViT is timm's VisionTransformer key for key: load the blip.visual_encoder keys."""
    v = IR_VISION
    vit = timm.models.vision_transformer.VisionTransformer(
        img_size=v["image"],
        patch_size=v["patch"],
        embed_dim=v["width"],
        depth=v["layers"],
        num_heads=v["heads"],
        mlp_ratio=v["mlp"] / v["width"],
        num_classes=0,
    )
    prefix = "blip.visual_encoder."
    vit.load_state_dict({k[len(prefix) :]: t for k, t in state.items() if k.startswith(prefix)})
    return vit.eval().forward_features(pixels)


def reference_text(state, ids, mask, image_embeds):
    """BLIP med.py's BertModel in "multimodal" mode, written out in plain torch."""
    heads, eps = IR_MED["num_attention_heads"], IR_MED["layer_norm_eps"]
    p = "blip.text_encoder."

    def linear(x, name):
        return F.linear(x, state[f"{name}.weight"], state[f"{name}.bias"])

    def norm(x, name):
        return F.layer_norm(x, x.shape[-1:], state[f"{name}.weight"], state[f"{name}.bias"], eps)

    def attention(x, source, name, key_mask):
        b, n, d = x.shape
        split = lambda t: t.view(b, -1, heads, d // heads).transpose(1, 2)  # noqa: E731
        q, k, v = (
            split(linear(y, f"{name}.self.{w}"))
            for y, w in ((x, "query"), (source, "key"), (source, "value"))
        )
        logits = q @ k.transpose(-1, -2) / math.sqrt(d // heads)
        logits = logits.masked_fill(~key_mask[:, None, None, :].bool(), float("-inf"))
        out = (logits.softmax(-1) @ v).transpose(1, 2).reshape(b, n, d)
        return norm(linear(out, f"{name}.output.dense") + x, f"{name}.output.LayerNorm")

    x = state[f"{p}embeddings.word_embeddings.weight"][ids]
    x = x + state[f"{p}embeddings.position_embeddings.weight"][: ids.shape[1]]
    x = norm(x, f"{p}embeddings.LayerNorm")
    image_mask = torch.ones(image_embeds.shape[:2])
    for i in range(IR_MED["num_hidden_layers"]):
        layer = f"{p}encoder.layer.{i}"
        x = attention(x, x, f"{layer}.attention", mask)
        x = attention(x, image_embeds, f"{layer}.crossattention", image_mask)
        hidden = F.gelu(linear(x, f"{layer}.intermediate.dense"))
        x = norm(linear(hidden, f"{layer}.output.dense") + x, f"{layer}.output.LayerNorm")
    return x


def reference_imagereward(folder, pics, prompts):
    state = torch.load(folder / "ImageReward.pt", weights_only=True)
    pixels = torch.stack([clip_image_transform(IR_VISION["image"])(p) for p in pics])
    tokens = BertTokenizer.from_pretrained(folder / "tokenizer")(
        prompts, padding="max_length", truncation=True, max_length=35, return_tensors="pt"
    )
    with torch.no_grad():
        image_embeds = reference_vision(state, pixels)
        text = reference_text(state, tokens.input_ids, tokens.attention_mask, image_embeds)
        x = text[:, 0]
        for index in (0, 2, 4, 6, 7):
            x = linear_head(x, state, index)
    return (x.squeeze(-1) - REWARD_MEAN) / REWARD_STD


def linear_head(x, state, index):
    return F.linear(x, state[f"mlp.layers.{index}.weight"], state[f"mlp.layers.{index}.bias"])


def test_scores_equal_independent_blip_forward(folder):
    pics = images(3)
    scores = scorer(folder, batch_size=2).score(pics, PROMPTS)
    expected = reference_imagereward(folder, pics, PROMPTS)
    assert scores.shape == (3,)
    assert torch.allclose(scores, expected, atol=1e-4), (scores, expected)
    assert scores.std() > 0


def test_batching_determinism_and_prompt_dependence(folder):
    pics = images(3, seed=7)
    one = scorer(folder, batch_size=1).score(pics, PROMPTS)
    model = scorer(folder, batch_size=3)
    three = model.score(pics, PROMPTS)
    assert torch.allclose(one, three, atol=1e-5)
    assert torch.equal(three, model.score(pics, PROMPTS))
    assert not torch.allclose(model.score(pics, PROMPTS[::-1]), three)


def test_unknown_key_is_refused(folder):
    state = torch.load(folder / "ImageReward.pt", weights_only=True)
    state["blip.itm_head.weight"] = torch.zeros(2, 3)
    torch.save(state, folder / "ImageReward.pt")
    with pytest.raises(GoldenNoiseError, match="itm_head"):
        scorer(folder).load()


def test_missing_key_is_refused(folder):
    state = torch.load(folder / "ImageReward.pt", weights_only=True)
    del state["blip.text_encoder.encoder.layer.1.crossattention.self.key.weight"]
    torch.save(state, folder / "ImageReward.pt")
    with pytest.raises(GoldenNoiseError, match="crossattention"):
        scorer(folder).load()


def test_file_instead_of_folder_is_refused(folder):
    with pytest.raises(GoldenNoiseError, match="folder or hub repo"):
        get_scorer(f"imagereward={folder / 'ImageReward.pt'}")
