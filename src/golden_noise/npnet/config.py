"""NPNet's configuration: everything that decides the architecture, saved as config.json."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from golden_noise.errors import GoldenNoiseError

SvdVariant = Literal["attention", "mean"]
TextReduction = Literal["none", "mean", "projection"]


@dataclass
class NPNetConfig:
    """Architecture of an NPNet; the defaults are the authors' released SDXL configuration.

    `svd_variant`: the authors' inference code (which produced the published numbers) runs
    self-attention over the SVD tokens ("attention"); their trainer averages an MLP over the
    tokens instead ("mean"). Both share state-dict keys, so the variant must be explicit.
    `family`: the pipeline family the net was made for (e.g. "sdxl"), used in error messages.
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
    text_reduction: TextReduction = "none"
    text_reduction_dim: int = 0
    use_svd: bool = True
    use_residual: bool = True
    use_text: bool = True
    family: str | None = None

    def __post_init__(self) -> None:
        fold = math.isqrt(self.channels)
        if fold * fold != self.channels:
            raise GoldenNoiseError(
                f"NPNetConfig.channels must be a square number (4 or 16) so the SVD branch can "
                f"fold channels into one matrix; got {self.channels}"
            )
        for name in ("height", "width", "text_tokens", "text_dim", "backbone_input_size"):
            if getattr(self, name) <= 0:
                raise GoldenNoiseError(
                    f"NPNetConfig.{name} must be positive; got {getattr(self, name)}"
                )
        if self.svd_variant not in ("attention", "mean"):
            raise GoldenNoiseError(
                f"NPNetConfig.svd_variant must be 'attention' or 'mean'; got {self.svd_variant!r}"
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
        if self.svd_rank % self.svd_heads:
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
