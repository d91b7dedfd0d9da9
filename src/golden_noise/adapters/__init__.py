"""Adapters: everything model-specific about each supported diffusers pipeline family."""

from golden_noise.adapters.base import PipelineAdapter, PromptEmbeddings
from golden_noise.adapters.registry import (
    ADAPTERS,
    adapter_for,
    is_known_family,
    supported_families,
)

__all__ = [
    "ADAPTERS",
    "PipelineAdapter",
    "PromptEmbeddings",
    "adapter_for",
    "is_known_family",
    "supported_families",
]
