"""Residual branch: a timm backbone's features of the text-injected noise, mapped back to noise."""

from __future__ import annotations

import timm
import torch
from torch import nn
from torch.nn import functional as F

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.npnet.config import NPNetConfig


def _as_feature_map(features: torch.Tensor) -> torch.Tensor:
    """Read any backbone's `forward_features` output as an NCHW map, the released way.

    The authors resized timm 1.x Swin's NHWC `[B, 7, 7, 768]` output as if it were NCHW, so its
    7 rows became 7 channels; the released weights were trained on that, and every 4-D output
    is read the same way (a CNN's true NCHW map stays as it is). Token outputs `[B, N, F]`
    (ViT-like, prefix tokens included) become one channel of an `N x F` "image".
    """
    if features.ndim == 4:
        return features
    if features.ndim == 3:
        return features.unsqueeze(1)
    raise GoldenNoiseError(
        "the residual backbone's forward_features must return 3-D tokens [B, N, F] or a 4-D "
        f"map; got shape {list(features.shape)}"
    )


def _create_backbone(config: NPNetConfig) -> nn.Module:
    try:
        return timm.create_model(config.backbone, pretrained=False, **config.backbone_kwargs)
    except (RuntimeError, TypeError, ValueError) as error:
        raise GoldenNoiseError(
            f"cannot build timm backbone {config.backbone!r} with {config.backbone_kwargs}: {error}"
        ) from error


def _backbone_in_chans(config: NPNetConfig) -> int:
    return int(config.backbone_kwargs.get("in_chans", 3))


def _feature_channels(config: NPNetConfig) -> int:
    """Channels of the backbone's feature map, from a dry run on the meta device (no compute)."""
    size = config.backbone_input_size
    with torch.device("meta"):
        backbone = _create_backbone(config).eval()  # batch-1 probe: no train-mode BatchNorm
        probe = torch.empty(1, _backbone_in_chans(config), size, size)
        try:
            features = backbone.forward_features(probe)
        except (RuntimeError, AssertionError, ValueError) as error:
            raise GoldenNoiseError(
                f"timm backbone {config.backbone!r} does not accept a {size}x{size} input "
                f"(backbone_input_size); set backbone_kwargs such as img_size: {error}"
            ) from error
    return _as_feature_map(features).shape[1]


class ResidualBranch(nn.Module):
    """The authors' `NoiseTransformer` on any timm backbone.

    Nearest-resize to the backbone's input size, 1x1 `downconv` to its input channels,
    `forward_features`, nearest-resize of the (NCHW-read) features to the latent size, 1x1
    `upconv` to the latent channels. With Swin-T at 224 this is the released module exactly.
    """

    def __init__(self, config: NPNetConfig) -> None:
        super().__init__()
        self.input_size = (config.backbone_input_size, config.backbone_input_size)
        self.output_size = (config.height, config.width)
        self.downconv = nn.Conv2d(config.channels, _backbone_in_chans(config), 1)
        self.backbone = _create_backbone(config)
        self.upconv = nn.Conv2d(_feature_channels(config), config.channels, 1)

    def forward(self, x: torch.Tensor, prompt_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """`x` float32 `[B, C, H, W]` -> `[B, C, H, W]`; the prompt reaches it only through `x`."""
        features = self.backbone.forward_features(self.downconv(F.interpolate(x, self.input_size)))
        return self.upconv(F.interpolate(_as_feature_map(features), self.output_size))


def build_residual_branch(config: NPNetConfig) -> nn.Module:
    """The residual branch `config.residual_kind` names: `forward(x, prompt_embeds)`."""
    shape = (config.channels, config.height, config.width, config.text_dim)
    if config.residual_kind == "unet":
        from golden_noise.npnet.unet_branch import UNetResidualBranch

        return UNetResidualBranch(*shape, config.backbone_kwargs)
    if config.residual_kind == "prompt-offset":
        from golden_noise.npnet.offset_branch import PromptOffsetBranch

        return PromptOffsetBranch(*shape, config.backbone_kwargs)
    return ResidualBranch(config)
