"""Which adapter serves a pipeline: the one place that lists the supported families."""

from __future__ import annotations

from typing import Any

from golden_noise.adapters.base import PipelineAdapter
from golden_noise.adapters.flux import FluxDevAdapter, FluxSchnellAdapter
from golden_noise.adapters.hunyuan_dit import HunyuanDiTAdapter
from golden_noise.adapters.pixart_sigma import PixArtSigmaAdapter
from golden_noise.adapters.sd3 import StableDiffusion3Adapter
from golden_noise.adapters.sdxl import StableDiffusionXLAdapter
from golden_noise.adapters.stable_diffusion import StableDiffusionAdapter
from golden_noise.core.errors import GoldenNoiseError

ADAPTERS: tuple[type[PipelineAdapter], ...] = (
    StableDiffusionAdapter,
    StableDiffusionXLAdapter,
    HunyuanDiTAdapter,
    StableDiffusion3Adapter,
    FluxDevAdapter,
    FluxSchnellAdapter,
    PixArtSigmaAdapter,
)


def supported_families() -> list[str]:
    """Human-readable list of what `adapter_for` accepts, for error messages and `--help`."""
    return [f"{a.family}: {a.description}" for a in ADAPTERS]


def is_known_family(name: str) -> bool:
    """True when `name` names a family some adapter serves (NPNets may carry other labels)."""
    return any(adapter.answers_to(name) for adapter in ADAPTERS)


def adapter_for(pipe: Any) -> PipelineAdapter:
    """The adapter for `pipe`'s family, or a GoldenNoiseError naming the supported ones."""
    for adapter in ADAPTERS:
        if adapter.covers(pipe):
            return adapter(pipe)
    raise GoldenNoiseError(
        f"unsupported pipeline {type(pipe).__name__}; golden noise supports text-to-image "
        f"pipelines of these families: {'; '.join(supported_families())}"
    )
