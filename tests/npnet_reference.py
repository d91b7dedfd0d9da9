"""Test helpers: an independent, straight-line NPNet forward on raw released-layout tensors,
and a tiny configuration for fast tests.

The reference follows the authors' `npnet_pipeline.py` / `SVDNoiseUnet` / `NoiseTransformer`
op for op, using none of golden_noise's modules: only torch functions, einops and timm's Swin.
"""

from __future__ import annotations

import einops
import timm
import torch
from torch.nn import functional as F

from golden_noise import NPNetConfig

SWIN = "swin_tiny_patch4_window7_224"
TINY_VIT = {"img_size": 16, "patch_size": 8, "depth": 1, "embed_dim": 32, "num_heads": 2}


def tiny_config(**changes: object) -> NPNetConfig:
    """A few-thousand-parameter NPNet: 8x8 latents, 5x16 prompts, a one-block ViT residual."""
    fields = {
        "height": 8,
        "width": 8,
        "text_tokens": 5,
        "text_dim": 16,
        "svd_hidden": 16,
        "svd_mlp_hidden": 32,
        "svd_heads": 4,
        "backbone": "vit_tiny_patch16_224",
        "backbone_kwargs": dict(TINY_VIT),
        "backbone_input_size": 16,
        "family": "sd15",
    }
    return NPNetConfig(**{**fields, **changes})


def swin_state() -> dict[str, torch.Tensor]:
    """Random Swin-T weights in timm's key layout, as `unet_embedding.swin.*` holds them."""
    return timm.create_model(SWIN, pretrained=False).state_dict()


def _rand(*shape: int, scale: float = 0.05) -> torch.Tensor:
    return torch.randn(*shape) * scale


def released_checkpoint(
    text_dim: int, *, tokens: int = 77, size: int = 128, channels: int = 4
) -> dict[str, object]:
    """A random checkpoint in exactly the layout of the authors' `torch.save`d `.pth` files."""
    d = size * channels // 2
    unet_svd = {
        "mlp1.0.weight": _rand(64, d),
        "mlp1.0.bias": _rand(64),
        "mlp1.2.weight": _rand(d, 64),
        "mlp1.2.bias": _rand(d),
        "mlp2.0.weight": _rand(64, d),
        "mlp2.0.bias": _rand(64),
        "mlp2.2.weight": _rand(d, 64),
        "mlp2.2.bias": _rand(d),
        "mlp3.0.weight": _rand(d, d),
        "mlp3.0.bias": _rand(d),
        "attention.qkv.weight": _rand(3 * d, d),
        "attention.proj.weight": _rand(d, d),
        "attention.proj.bias": _rand(d),
        "bn.weight": torch.ones(d),
        "bn.bias": torch.zeros(d),
        "bn.running_mean": torch.zeros(d),
        "bn.running_var": torch.ones(d),
        "bn.num_batches_tracked": torch.tensor(0),
        "mlp4.0.weight": _rand(1024, d),
        "mlp4.0.bias": _rand(1024),
        "mlp4.2.weight": _rand(d, 1024),
        "mlp4.2.bias": _rand(d),
    }
    unet_embedding = {
        "upconv.weight": _rand(channels, 7, 1, 1, scale=0.3),
        "upconv.bias": _rand(channels),
        "downconv.weight": _rand(3, channels, 1, 1, scale=0.3),
        "downconv.bias": _rand(3),
        **{f"swin.{key}": value for key, value in swin_state().items()},
    }
    embeeding = {
        "linear.weight": _rand(2 * channels, tokens * text_dim, scale=0.002),
        "linear.bias": _rand(2 * channels),
    }
    return {
        "unet_embedding": unet_embedding,
        "unet_svd": unet_svd,
        "embeeding": embeeding,
        "alpha": torch.tensor([0.7]),
        "beta": torch.tensor([0.3]),
    }


def _mlp2(x: torch.Tensor, sd: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    hidden = F.relu(F.linear(x, sd[f"{name}.0.weight"], sd[f"{name}.0.bias"]))
    return F.linear(hidden, sd[f"{name}.2.weight"], sd[f"{name}.2.bias"])


def svd_reference(
    x: torch.Tensor, sd: dict[str, torch.Tensor], variant: str, heads: int = 8
) -> torch.Tensor:
    """`SVDNoiseUnet.forward` (variant "attention") / `SVDNoiseUnet_wo_attention` ("mean").

    The authors' full SVD only fits square matrices; non-square ones take the reduced SVD.
    """
    fold = int(round(x.shape[1] ** 0.5))
    m = einops.rearrange(x, "b (a c) h w -> b (a h) (c w)", a=fold, c=fold)
    u, s, v = torch.linalg.svd(m, full_matrices=m.shape[1] == m.shape[2])
    out = (
        _mlp2(u.permute(0, 2, 1), sd, "mlp1")
        + _mlp2(v, sd, "mlp2")
        + F.linear(s, sd["mlp3.0.weight"], sd["mlp3.0.bias"]).unsqueeze(1)
    )
    if variant == "attention":
        b, n, c = out.shape
        qkv = F.linear(out, sd["attention.qkv.weight"])
        q, k, val = qkv.reshape(b, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4).unbind(0)
        att = F.scaled_dot_product_attention(q, k, val).transpose(1, 2).reshape(b, n, c)
        att = F.linear(att, sd["attention.proj.weight"], sd["attention.proj.bias"])
        new_s = _mlp2(att.mean(1), sd, "mlp4") + s
    else:
        new_s = _mlp2(out, sd, "mlp4").mean(1) + s
    pred = u @ torch.diag_embed(new_s) @ v
    return einops.rearrange(pred, "b (a h) (c w) -> b (a c) h w", a=fold, c=fold)


def text_reference(x: torch.Tensor, c: torch.Tensor, sd: dict[str, torch.Tensor]) -> torch.Tensor:
    """diffusers `AdaGroupNorm(L*D, C, 1, eps=1e-6)` on the flattened prompt embedding."""
    emb = F.linear(c.reshape(c.shape[0], -1), sd["linear.weight"], sd["linear.bias"])
    scale, shift = emb[:, :, None, None].chunk(2, dim=1)
    return F.group_norm(x, 1, eps=1e-6) * (1 + scale) + shift


def residual_reference(
    x: torch.Tensor, sd: dict[str, torch.Tensor], swin: torch.nn.Module
) -> torch.Tensor:
    """`NoiseTransformer.forward` (residual=False): NHWC Swin features resized as if NCHW."""
    y = F.conv2d(F.interpolate(x, [224, 224]), sd["downconv.weight"], sd["downconv.bias"])
    features = swin.forward_features(y)
    assert features.shape[1:] == (7, 7, 768)  # timm 1.x NHWC: the quirk below depends on it
    y = F.interpolate(features, [x.shape[2], x.shape[3]])
    return F.conv2d(y, sd["upconv.weight"], sd["upconv.bias"])


def npnet_reference(
    checkpoint: dict[str, object],
    noise: torch.Tensor,
    prompt_embeds: torch.Tensor,
    variant: str = "attention",
) -> torch.Tensor:
    """The authors' `NPNet.forward` on a released checkpoint dict."""
    embedding = checkpoint["unet_embedding"]
    swin = timm.create_model(SWIN, pretrained=False)
    swin.load_state_dict({k[5:]: v for k, v in embedding.items() if k.startswith("swin.")})
    swin.eval()
    x = noise.float()
    t = text_reference(x, prompt_embeds.float(), checkpoint["embeeding"])
    r = residual_reference(x + t, embedding, swin)
    alpha, beta = checkpoint["alpha"], checkpoint["beta"]
    return (
        svd_reference(x, checkpoint["unet_svd"], variant)
        + (2 * torch.sigmoid(alpha) - 1) * t
        + beta * r
    )
