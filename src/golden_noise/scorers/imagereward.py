"""ImageReward: BLIP (ViT-L image tower, BERT text tower with cross-attention) + rating MLP.

The `image-reward` package no longer imports on transformers 5, so this rebuilds the same
network from transformers' BLIP modules and renames the keys of `ImageReward.pt` onto them:
BLIP's timm-style ViT -> `BlipVisionModel`, BLIP's `med.py` BERT -> `BlipTextModel` (same
key names; its cross-attention layers exist when the config says `is_decoder`, while the
forward runs bidirectionally with `is_decoder=False`, as BLIP's "multimodal" mode does).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from PIL import Image

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.core.weights import load_strict, read_tensors, resolve_file
from golden_noise.scorers.base import Scorer
from golden_noise.scorers.heads import RatingMLP
from golden_noise.scorers.preprocess import clip_image_transform

IMAGEREWARD_REPO = "THUDM/ImageReward"
BERT_TOKENIZER = "google-bert/bert-base-uncased"
# The raw reward's mean and std over ImageReward's training set (constants of the package).
REWARD_MEAN = 0.16717362830052426
REWARD_STD = 1.0333394966054072
PROMPT_TOKENS = 35  # the package pads/truncates every prompt to 35 BERT tokens

# BLIP ViT name -> BlipVisionModel name (applied after stripping "blip.visual_encoder.").
_VISION_RENAMES = [
    (r"^cls_token$", "embeddings.class_embedding"),
    (r"^pos_embed$", "embeddings.position_embedding"),
    (r"^patch_embed\.proj\.", "embeddings.patch_embedding."),
    (r"^blocks\.(\d+)\.norm1\.", r"encoder.layers.\1.layer_norm1."),
    (r"^blocks\.(\d+)\.norm2\.", r"encoder.layers.\1.layer_norm2."),
    (r"^blocks\.(\d+)\.attn\.qkv\.", r"encoder.layers.\1.self_attn.qkv."),
    (r"^blocks\.(\d+)\.attn\.proj\.", r"encoder.layers.\1.self_attn.projection."),
    (r"^blocks\.(\d+)\.mlp\.", r"encoder.layers.\1.mlp."),
    (r"^norm\.", "post_layernorm."),
]
# Stored but unused for scoring: BLIP's contrastive projections and a non-parameter buffer.
_UNUSED = re.compile(
    r"^blip\.(vision_proj|text_proj)\.|^blip\.text_encoder\.embeddings\.position_ids$"
)


def split_checkpoint(
    state: dict[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """ImageReward.pt's keys renamed into (vision, text, head) state dicts."""
    vision, text, head = {}, {}, {}
    for key, tensor in state.items():
        if _UNUSED.search(key):
            continue
        if key.startswith("blip.visual_encoder."):
            name = key.removeprefix("blip.visual_encoder.")
            for pattern, replacement in _VISION_RENAMES:
                name, hits = re.subn(pattern, replacement, name)
                if hits:
                    break
            vision[name] = tensor
        elif key.startswith("blip.text_encoder."):
            text[key.removeprefix("blip.text_encoder.")] = tensor
        elif key.startswith("mlp."):
            head[key.removeprefix("mlp.")] = tensor
        else:
            raise GoldenNoiseError(f"ImageReward checkpoint: unexpected key {key!r}")
    return vision, text, head


def vision_config(vision: dict[str, torch.Tensor], heads: int):
    """A BlipVisionConfig read off the checkpoint's tensor shapes (heads are not stored)."""
    from transformers import BlipVisionConfig

    width, _, patch, _ = vision["embeddings.patch_embedding.weight"].shape
    positions = vision["embeddings.position_embedding"].shape[1] - 1
    layers = 1 + max(int(k.split(".")[2]) for k in vision if k.startswith("encoder.layers."))
    return BlipVisionConfig(
        hidden_size=width,
        intermediate_size=vision["encoder.layers.0.mlp.fc1.weight"].shape[0],
        num_hidden_layers=layers,
        num_attention_heads=heads,
        image_size=round(positions**0.5) * patch,
        patch_size=patch,
        layer_norm_eps=1e-6,  # BLIP's ViT uses LayerNorm(eps=1e-6)
    )


def text_config(med_config: dict, encoder_width: int):
    """A BlipTextConfig equal to BLIP's `med_config.json` with the image tower's width."""
    from transformers import BlipTextConfig

    return BlipTextConfig(
        vocab_size=med_config["vocab_size"],
        hidden_size=med_config["hidden_size"],
        encoder_hidden_size=encoder_width,
        intermediate_size=med_config["intermediate_size"],
        num_hidden_layers=med_config["num_hidden_layers"],
        num_attention_heads=med_config["num_attention_heads"],
        max_position_embeddings=med_config["max_position_embeddings"],
        hidden_act=med_config["hidden_act"],
        layer_norm_eps=med_config["layer_norm_eps"],
        pad_token_id=med_config.get("pad_token_id", 0),
        is_decoder=True,  # builds the cross-attention layers
    )


class ImageReward(Scorer):
    """ImageReward v1.0.

    `checkpoint`: a folder or hub repo holding `ImageReward.pt` and `med_config.json`;
    `tokenizer`: the bert-base-uncased tokenizer (folder or hub id).
    """

    name = "imagereward"
    scale = (
        "standardised reward (raw - 0.16717) / 1.03334 over ImageReward's training data: "
        "0 is an average image, most scores in -2..2"
    )

    def __init__(
        self,
        checkpoint: str | Path = IMAGEREWARD_REPO,
        tokenizer: str | Path = BERT_TOKENIZER,
        vision_heads: int = 16,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if Path(checkpoint).is_file():
            raise GoldenNoiseError(
                f"ImageReward: expected a folder or hub repo holding ImageReward.pt and "
                f"med_config.json, got the file {checkpoint}"
            )
        self.checkpoint = checkpoint
        self.tokenizer_source = tokenizer
        self.vision_heads = vision_heads

    def _load(self) -> None:
        from transformers import BertTokenizer, BlipTextModel, BlipVisionModel

        weights = resolve_file(self.checkpoint, "ImageReward.pt", cache_dir=self.cache_dir)
        med_config = json.loads(
            resolve_file(self.checkpoint, "med_config.json", cache_dir=self.cache_dir).read_text()
        )
        vision_state, text_state, head_state = split_checkpoint(read_tensors(weights))
        vision = BlipVisionModel(vision_config(vision_state, self.vision_heads))
        text = BlipTextModel(
            text_config(med_config, vision.config.hidden_size), add_pooling_layer=False
        )
        head = RatingMLP(med_config["hidden_size"])
        for module, state in ((vision, vision_state), (text, text_state), (head, head_state)):
            load_strict(module, state, weights)
        self.vision = vision.to(self.device, self.dtype).eval()
        self.text = text.to(self.device, self.dtype).eval()
        self.head = head.to(self.device).eval()  # float32, as the package runs it
        self.tokenizer = BertTokenizer.from_pretrained(
            str(self.tokenizer_source), cache_dir=self.cache_dir
        )
        self.transform = clip_image_transform(vision.config.image_size)

    def _score_batch(self, images: list[Image.Image], prompts: list[str]) -> torch.Tensor:
        pixels = torch.stack([self.transform(image) for image in images])
        image_embeds = self.vision(pixels.to(self.device, self.dtype)).last_hidden_state
        tokens = self.tokenizer(
            prompts,
            padding="max_length",
            truncation=True,
            max_length=PROMPT_TOKENS,
            return_tensors="pt",
        ).to(self.device)
        text = self.text(
            input_ids=tokens.input_ids,
            attention_mask=tokens.attention_mask,
            encoder_hidden_states=image_embeds,
            encoder_attention_mask=torch.ones(
                image_embeds.shape[:-1], dtype=torch.long, device=self.device
            ),
            is_decoder=False,
        )
        raw = self.head(text.last_hidden_state[:, 0].float())
        return (raw - REWARD_MEAN) / REWARD_STD
