"""NPNet's configuration: everything that decides the architecture, saved as config.json."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.core.validate import flag, integer

# Upper bounds that keep a typo from allocating tens of GB (svd_mlp_hidden=10**9 asks for
# 64 GB): each is far above any pipeline's need (latents 128x128x16, text 512x4096).
SIZE_LIMITS = {
    "channels": 64,
    "height": 1024,
    "width": 1024,
    "text_tokens": 4096,
    "text_dim": 16384,
    "svd_hidden": 8192,
    "svd_mlp_hidden": 16384,
    "svd_heads": 1024,
    "backbone_input_size": 2048,
}
MAX_TEXT_NUMBERS = 4096 * 1024

# The latent shape the authors' released checkpoints were made for (SDXL, Hunyuan-DiT).
RELEASED_LATENT = (4, 128, 128)
# Fields that choose the residual branch; naming any of them opts out of the default below
# (`backbone_kwargs` alone only sizes the default branch).
BRANCH_FIELDS = ("residual_kind", "backbone", "backbone_input_size")
# The prompt-offset branch gives an offset from the prompt alone, meant to move the noise's
# direction at its own norm: the SVD and text-injection branches, which read the noise and
# add to it, only blur that (docs/prompt-offsets.md). Naming the branch brings these fields
# with it; flags given still win.
OFFSET_NET_FIELDS: dict[str, Any] = {
    "residual_kind": "prompt-offset", "keep_norm": True, "use_svd": False, "use_text": False,
}  # fmt: skip
# The UNet branch a new latent shape gets: ~1.1M parameters (unet_branch's own default,
# (64, 128) channels, is ~4.2M), so toy-size training takes minutes on a CPU. On the spatial
# test set (tests/spatial_fixtures.py: 4x8x8 latents, a bump where the prompt says) it reaches
# val MSE 0.007x the better baseline in 8 epochs (lr 3e-3, batch 32), about 30 s.
NEW_SHAPE_UNET: dict[str, Any] = {
    "block_out_channels": [32, 64],
    "norm_num_groups": 16,
    "attention_head_dim": 8,
}

SvdVariant = Literal["attention", "mean"]
TextReduction = Literal["none", "mean", "projection"]
ResidualKind = Literal["timm", "unet", "prompt-offset"]


@dataclass
class NPNetConfig:
    """Architecture of an NPNet; the defaults are the authors' released SDXL configuration.

    `svd_variant`: the authors' inference code (which produced the published numbers) runs
    self-attention over the SVD tokens ("attention"); their trainer averages an MLP over the
    tokens instead ("mean"). Both share state-dict keys, so the variant must be explicit.
    `family`: the pipeline family the net was made for (e.g. "sdxl"), used in error messages.
    `residual_kind`: "timm" is the released residual branch (a timm `backbone` on a resized
    copy of the noise); "unet" is a cross-attention UNet at the latent's own resolution that
    reads the prompt's tokens (`npnet.unet_branch`), for prompt-dependent spatial structure;
    "prompt-offset" draws an offset from the prompt alone, the same for every seed
    (`npnet.offset_branch`); `backbone_kwargs` override the chosen branch's construction
    arguments. `keep_norm`: the golden noise is rescaled, per sample, to the input noise's
    norm, so the net can change the noise's direction but never its temperature.
    """

    channels: int = 4
    height: int = 128
    width: int = 128
    text_tokens: int = 77
    text_dim: int = 2048
    svd_variant: SvdVariant = "attention"
    svd_hidden: int = 64
    svd_mlp_hidden: int = 1024
    svd_heads: int = 8
    backbone: str = "swin_tiny_patch4_window7_224"
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    backbone_input_size: int = 224
    residual_kind: ResidualKind = "timm"
    text_reduction: TextReduction = "none"
    text_reduction_dim: int = 0
    use_svd: bool = True
    use_residual: bool = True
    use_text: bool = True
    keep_norm: bool = False
    family: str | None = None

    def __post_init__(self) -> None:
        for name, maximum in SIZE_LIMITS.items():
            integer(f"NPNetConfig.{name}", getattr(self, name), 1, maximum)
        integer(
            "NPNetConfig.text_reduction_dim", self.text_reduction_dim, 0, SIZE_LIMITS["text_dim"]
        )
        if self.text_tokens * self.text_dim > MAX_TEXT_NUMBERS:
            raise GoldenNoiseError(
                f"NPNetConfig.text_tokens x text_dim must be at most {MAX_TEXT_NUMBERS} (the text "
                f"injection's Linear reads them all); got {self.text_tokens} x {self.text_dim}"
            )
        for name in ("use_svd", "use_residual", "use_text", "keep_norm"):
            flag(f"NPNetConfig.{name}", getattr(self, name))
        if not isinstance(self.backbone, str) or not isinstance(self.backbone_kwargs, dict):
            raise GoldenNoiseError(
                "NPNetConfig.backbone must be a timm model name and backbone_kwargs a dict; got "
                f"{self.backbone!r} and {self.backbone_kwargs!r}"
            )
        fold = math.isqrt(self.channels)
        if fold * fold != self.channels:
            raise GoldenNoiseError(
                f"NPNetConfig.channels must be a square number (4 or 16) so the SVD branch can "
                f"fold channels into one matrix; got {self.channels}"
            )
        if self.svd_variant not in ("attention", "mean"):
            raise GoldenNoiseError(
                f"NPNetConfig.svd_variant must be 'attention' or 'mean'; got {self.svd_variant!r}"
            )
        if self.residual_kind not in ("timm", "unet", "prompt-offset"):
            raise GoldenNoiseError(
                "NPNetConfig.residual_kind must be 'timm', 'unet' or 'prompt-offset'; "
                f"got {self.residual_kind!r}"
            )
        if self.text_reduction not in ("none", "mean", "projection"):
            raise GoldenNoiseError(
                "NPNetConfig.text_reduction must be 'none', 'mean' or 'projection'; "
                f"got {self.text_reduction!r}"
            )
        if (self.text_reduction == "projection") != (self.text_reduction_dim > 0):
            raise GoldenNoiseError(
                "NPNetConfig.text_reduction_dim must be positive exactly when text_reduction is "
                f"'projection'; got text_reduction={self.text_reduction!r}, "
                f"text_reduction_dim={self.text_reduction_dim}"
            )
        if self.use_svd and self.svd_rank % self.svd_heads:  # heads of a branch that exists
            raise GoldenNoiseError(
                f"NPNetConfig.svd_heads must divide the SVD rank fold*min(height, width) = "
                f"{self.svd_rank}; got svd_heads={self.svd_heads}"
            )

    @property
    def fold(self) -> int:
        """Channels fold into a `fold x fold` grid of planes for the SVD (2 for 4, 4 for 16)."""
        return math.isqrt(self.channels)

    @property
    def svd_rank(self) -> int:
        """Number of singular values of the folded `[fold*height, fold*width]` noise matrix."""
        return self.fold * min(self.height, self.width)

    @property
    def text_description(self) -> str:
        """What prompt embedding the net expects, for error messages (e.g. "sdxl 77x2048")."""
        shape = f"{self.text_tokens}x{self.text_dim}"
        return f"{self.family} {shape}" if self.family else shape

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NPNetConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise GoldenNoiseError(
                f"unknown NPNet config keys {unknown}; expected a subset of {sorted(known)}"
            )
        return cls(**data)


def default_architecture(
    latent_shape: tuple[int, ...],
    overrides: dict[str, Any],
) -> dict[str, Any]:
    """The residual-branch fields a fresh net gets when the user chose no branch.

    The released shape keeps the released configuration bit-for-bit (its timm Swin reads a
    224x224 resize). Any other shape gets the cross-attention UNet at the latent's own
    resolution (`residual_kind="unet"`): the released branch lets the prompt in only as a
    per-channel scale and shift, so it cannot put prompt-dependent structure *where* it
    belongs in the latent (docs/learned-gain.md), while the UNet can. `backbone_kwargs`
    alone sizes that default branch (its keys over the default's); a user naming the branch
    (`BRANCH_FIELDS`) gets exactly what they asked for, with the dataclass defaults, except
    that the prompt-offset branch comes with its companion fields (`OFFSET_NET_FIELDS`).
    The data's teacher may choose otherwise (`train.model.fresh_architecture`): the model
    layer knows branches, not teachers.
    """
    if overrides.get("residual_kind") == "prompt-offset":
        return dict(OFFSET_NET_FIELDS)
    if set(overrides) & set(BRANCH_FIELDS) or tuple(latent_shape) == RELEASED_LATENT:
        return {}
    return {
        "residual_kind": "unet",
        "backbone_kwargs": {**NEW_SHAPE_UNET, **overrides.get("backbone_kwargs", {})},
    }
