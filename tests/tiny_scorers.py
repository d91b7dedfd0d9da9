"""Tiny random-weight scorer checkpoints, written offline in each scorer's REAL file layout.

Each builder writes what the real download would hold (same file names, same keys, tiny
shapes) so tests drive the scorers' real loading code through a local path. Imported as
`tiny_scorers` (pytest puts `tests/` on sys.path); tokenizers come from `tiny_pipelines`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tiny_pipelines import bert_tokenizer, clip_tokenizer
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

TINY_OPEN_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


def images(n: int, seed: int = 0, size: tuple[int, int] = (48, 40)) -> list[Image.Image]:
    """Random RGB images, not square, so resize and centre crop both matter."""
    rng = np.random.default_rng(seed)
    return [
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
        for _ in range(n)
    ]


PROMPTS = ["a red circle", "two blue squares on a table", "a photo of a cat"]


def register_open_clip_arch(folder: Path, name: str = "Tiny-HPS") -> str:
    """Register a tiny open_clip architecture (HPS's ViT-H-14 in miniature) by name."""
    import open_clip

    path = folder / f"{name}.json"
    path.write_text(json.dumps(TINY_OPEN_CLIP))
    open_clip.add_model_config(path)
    return name


def hps_checkpoint(folder: Path, filename: str, arch: str) -> Path:
    """`{"state_dict": open_clip keys}` as in xswu/HPSv2's files, random tiny weights."""
    import open_clip

    torch.manual_seed(1)
    model = open_clip.create_model(arch, pretrained=None)
    path = folder / filename
    torch.save({"state_dict": model.state_dict()}, path)
    return path


def clip_model_dir(folder: Path, projection: int = 16) -> Path:
    """A transformers CLIPModel + CLIPProcessor folder (PickScore / CLIP ViT layout)."""
    torch.manual_seed(2)
    config = CLIPConfig(
        text_config={
            "vocab_size": 520,
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "max_position_embeddings": 77,
            "bos_token_id": 0,
            "eos_token_id": 1,
            "pad_token_id": 1,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=projection,
        logit_scale_init_value=2.6592,
    )
    CLIPModel(config).save_pretrained(folder)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size=32)
    CLIPProcessor(image_processor=image_processor, tokenizer=clip_tokenizer()).save_pretrained(
        folder
    )
    return folder


def aesthetic_checkpoint(folder: Path, width: int = 16) -> Path:
    """The improved-aesthetic-predictor MLP's keys: layers.{0,2,4,6,7}, random weights."""
    torch.manual_seed(3)
    shapes = {0: (1024, width), 2: (128, 1024), 4: (64, 128), 6: (16, 64), 7: (1, 16)}
    state = {}
    for index, (out_features, in_features) in shapes.items():
        state[f"layers.{index}.weight"] = torch.randn(out_features, in_features) / in_features**0.5
        state[f"layers.{index}.bias"] = torch.randn(out_features) * 0.1
    path = folder / "sac+logos+ava1-l14-linearMSE.pth"
    torch.save(state, path)
    return path


# ImageReward in miniature: BLIP ViT (timm names) + BLIP med.py BERT with cross-attention.
IR_VISION = {"width": 32, "layers": 2, "heads": 2, "patch": 8, "image": 32, "mlp": 64}
IR_MED = {
    "architectures": ["BertModel"],
    "attention_probs_dropout_prob": 0.1,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 24,
    "initializer_range": 0.02,
    "intermediate_size": 48,
    "layer_norm_eps": 1e-12,
    "max_position_embeddings": 40,
    "model_type": "bert",
    "num_attention_heads": 2,
    "num_hidden_layers": 2,
    "pad_token_id": 0,
    "type_vocab_size": 2,
    "vocab_size": len(bert_tokenizer()) + 2,  # BLIP adds [DEC] and [ENC]
    "encoder_width": 768,
    "add_cross_attention": True,
}


def _imagereward_shapes() -> dict[str, tuple[int, ...]]:
    """Every key of ImageReward.pt and its shape, for the tiny sizes above."""
    v, t, med = IR_VISION, IR_MED["hidden_size"], IR_MED
    tokens = (v["image"] // v["patch"]) ** 2 + 1
    shapes: dict[str, tuple[int, ...]] = {
        "blip.visual_encoder.cls_token": (1, 1, v["width"]),
        "blip.visual_encoder.pos_embed": (1, tokens, v["width"]),
        "blip.visual_encoder.patch_embed.proj.weight": (v["width"], 3, v["patch"], v["patch"]),
        "blip.visual_encoder.patch_embed.proj.bias": (v["width"],),
        "blip.visual_encoder.norm.weight": (v["width"],),
        "blip.visual_encoder.norm.bias": (v["width"],),
        "blip.text_encoder.embeddings.word_embeddings.weight": (med["vocab_size"], t),
        "blip.text_encoder.embeddings.position_embeddings.weight": (
            med["max_position_embeddings"],
            t,
        ),
        "blip.text_encoder.embeddings.LayerNorm.weight": (t,),
        "blip.text_encoder.embeddings.LayerNorm.bias": (t,),
        "blip.vision_proj.weight": (256, v["width"]),
        "blip.vision_proj.bias": (256,),
        "blip.text_proj.weight": (256, t),
        "blip.text_proj.bias": (256,),
    }
    for i in range(v["layers"]):
        block = f"blip.visual_encoder.blocks.{i}"
        w = v["width"]
        shapes |= {
            f"{block}.norm1.weight": (w,),
            f"{block}.norm1.bias": (w,),
            f"{block}.attn.qkv.weight": (3 * w, w),
            f"{block}.attn.qkv.bias": (3 * w,),
            f"{block}.attn.proj.weight": (w, w),
            f"{block}.attn.proj.bias": (w,),
            f"{block}.norm2.weight": (w,),
            f"{block}.norm2.bias": (w,),
            f"{block}.mlp.fc1.weight": (v["mlp"], w),
            f"{block}.mlp.fc1.bias": (v["mlp"],),
            f"{block}.mlp.fc2.weight": (w, v["mlp"]),
            f"{block}.mlp.fc2.bias": (w,),
        }
    for i in range(med["num_hidden_layers"]):
        layer = f"blip.text_encoder.encoder.layer.{i}"
        for part, source_width in (("attention", t), ("crossattention", v["width"])):
            shapes |= {
                f"{layer}.{part}.self.query.weight": (t, t),
                f"{layer}.{part}.self.query.bias": (t,),
                f"{layer}.{part}.self.key.weight": (t, source_width),
                f"{layer}.{part}.self.key.bias": (t,),
                f"{layer}.{part}.self.value.weight": (t, source_width),
                f"{layer}.{part}.self.value.bias": (t,),
                f"{layer}.{part}.output.dense.weight": (t, t),
                f"{layer}.{part}.output.dense.bias": (t,),
                f"{layer}.{part}.output.LayerNorm.weight": (t,),
                f"{layer}.{part}.output.LayerNorm.bias": (t,),
            }
        shapes |= {
            f"{layer}.intermediate.dense.weight": (med["intermediate_size"], t),
            f"{layer}.intermediate.dense.bias": (med["intermediate_size"],),
            f"{layer}.output.dense.weight": (t, med["intermediate_size"]),
            f"{layer}.output.dense.bias": (t,),
            f"{layer}.output.LayerNorm.weight": (t,),
            f"{layer}.output.LayerNorm.bias": (t,),
        }
    for index, (out_features, in_features) in {
        0: (1024, t),
        2: (128, 1024),
        4: (64, 128),
        6: (16, 64),
        7: (1, 16),
    }.items():
        shapes[f"mlp.layers.{index}.weight"] = (out_features, in_features)
        shapes[f"mlp.layers.{index}.bias"] = (out_features,)
    return shapes


def imagereward_dir(folder: Path) -> Path:
    """ImageReward.pt (random, real key names) + med_config.json + a BERT tokenizer folder."""
    generator = torch.Generator().manual_seed(4)
    state = {}
    for key, shape in _imagereward_shapes().items():
        fan_in = shape[-1] if len(shape) > 1 else 1
        tensor = torch.randn(shape, generator=generator) / fan_in**0.5
        if key.endswith(("norm.weight", "norm1.weight", "norm2.weight", "LayerNorm.weight")):
            tensor = 1 + 0.1 * tensor
        state[key] = tensor
    state["blip.text_encoder.embeddings.position_ids"] = torch.arange(
        IR_MED["max_position_embeddings"]
    ).expand(1, -1)
    torch.save(state, folder / "ImageReward.pt")
    (folder / "med_config.json").write_text(json.dumps(IR_MED))
    bert_tokenizer().save_pretrained(folder / "tokenizer")
    return folder
