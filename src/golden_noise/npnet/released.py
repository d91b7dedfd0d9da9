"""The authors' released checkpoint layout (`sdxl.pth`, `dreamshaper.pth`, `dit.pth`) and the
flat safetensors conversions people publish: key mapping and config inference from shapes.
`NPNet.from_single_file` reads such a file through `convert_released`."""

from __future__ import annotations

import math
from typing import Any

import torch

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.npnet.config import NPNetConfig

# Released prefix -> our module path. `embeeding` (sic) is the authors' key; asagi4/NPNet's
# safetensors conversion renames it `text_embedding`; LucipherDev's keeps it.
_PREFIXES = {
    "unet_svd.": "svd.",
    "unet_embedding.swin.": "residual.backbone.",
    "unet_embedding.": "residual.",
    "embeeding.": "text.norm.",
    "text_embedding.": "text.norm.",
}
_SCALARS = ("alpha", "beta")
_TEXT_WEIGHT_KEYS = ("embeeding.linear.weight", "text_embedding.linear.weight")
_REQUIRED = ("unet_svd.mlp1.0.weight", "unet_svd.mlp2.0.weight", "unet_svd.mlp4.0.weight")

# The released files' text encoders: SDXL/DreamShaper (77x2048) and Hunyuan-DiT's BERT (77x1024).
RELEASED_TEXT_TOKENS = 77
_RELEASED_FAMILIES = {2048: "sdxl", 1024: "hunyuan"}
_RELEASED_BACKBONE = "swin_tiny_patch4_window7_224"


def convert_released(
    checkpoint: dict[str, Any], source: object, **overrides: Any
) -> tuple[NPNetConfig, dict[str, torch.Tensor]]:
    """The configuration and NPNet-keyed state dict of a checkpoint in the released layout.

    `overrides` set config fields the shapes cannot show (e.g. `svd_variant="mean"`).
    """
    flat = flatten_released(checkpoint)
    if not any(key.startswith("unet_svd.") for key in flat):
        raise GoldenNoiseError(
            f"not an NPNet checkpoint: {source} has no 'unet_svd.' weights (released layout) "
            f"and no config.json beside it; its keys start {sorted(flat)[:5]}"
        )
    return released_config(flat, **overrides), to_model_keys(flat)


def flatten_released(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """`{"unet_svd": {...}, ..., "alpha": t}` (the .pth) -> flat `"unet_svd.mlp1.0.weight"` keys.

    Already-flat dicts (the safetensors conversions) pass through unchanged.
    """
    flat: dict[str, torch.Tensor] = {}
    for key, value in checkpoint.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{sub}": tensor for sub, tensor in value.items()})
        else:
            flat[key] = value
    not_tensors = sorted(key for key, value in flat.items() if not isinstance(value, torch.Tensor))
    if not_tensors:
        raise GoldenNoiseError(
            f"not an NPNet checkpoint: expected only tensors, found other values at {not_tensors}"
        )
    return flat


def released_config(flat: dict[str, torch.Tensor], **overrides: Any) -> NPNetConfig:
    """Infer the architecture from tensor shapes; `overrides` set fields shapes cannot show."""
    text_key = next((key for key in _TEXT_WEIGHT_KEYS if key in flat), None)
    missing = [key for key in (*_REQUIRED, *_SCALARS) if key not in flat]
    if text_key is None or missing:
        expected = ", ".join((*_REQUIRED, "embeeding.linear.weight", *_SCALARS))
        raise GoldenNoiseError(
            f"not an NPNet checkpoint in the released layout: expected keys {expected}; "
            f"missing {missing or [_TEXT_WEIGHT_KEYS[0]]}"
        )
    text_out, text_in = flat[text_key].shape
    channels = text_out // 2
    tokens = overrides.pop("text_tokens", RELEASED_TEXT_TOKENS)
    if text_in % tokens:
        raise GoldenNoiseError(
            f"the text injection takes {text_in} inputs, not a multiple of text_tokens={tokens}"
        )
    fold = max(math.isqrt(channels), 1)  # NPNetConfig below rejects non-square channel counts
    text_dim = text_in // tokens
    inferred: dict[str, Any] = {
        "channels": channels,
        "height": flat["unet_svd.mlp1.0.weight"].shape[1] // fold,
        "width": flat["unet_svd.mlp2.0.weight"].shape[1] // fold,
        "text_tokens": tokens,
        "text_dim": text_dim,
        "svd_variant": "attention",
        "svd_hidden": flat["unet_svd.mlp1.0.weight"].shape[0],
        "svd_mlp_hidden": flat["unet_svd.mlp4.0.weight"].shape[0],
        "backbone": _RELEASED_BACKBONE,
        "backbone_input_size": 224,
        "family": _RELEASED_FAMILIES.get(text_dim),
    }
    return NPNetConfig(**{**inferred, **overrides})


def to_model_keys(flat: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename released keys to NPNet's module paths; unknown keys are kept for the strict check."""
    renamed: dict[str, torch.Tensor] = {}
    for key, tensor in flat.items():
        prefix = next((p for p in _PREFIXES if key.startswith(p)), None)
        new_key = _PREFIXES[prefix] + key[len(prefix) :] if prefix else key
        renamed[new_key] = tensor.reshape(1) if key in _SCALARS else tensor
    return renamed
