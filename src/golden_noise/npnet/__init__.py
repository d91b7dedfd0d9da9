"""NPNet, the noise prompt network: model, configuration and loading of published weights."""

from typing import Any

from golden_noise.npnet.config import NPNetConfig


def __getattr__(name: str) -> Any:
    # The model (torch, timm) loads on first use: the CLI reads NPNetConfig to declare options.
    if name == "NPNet":
        from golden_noise.npnet.model import NPNet

        return NPNet
    raise AttributeError(f"module 'golden_noise.npnet' has no attribute {name!r}")


__all__ = ["NPNet", "NPNetConfig"]
