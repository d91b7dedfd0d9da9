"""golden-noise: better initial noise for diffusion models (NPNet, ICCV 2025)."""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from golden_noise.errors import GoldenNoiseError

try:
    __version__ = version("golden-noise")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

# Heavy submodules (torch, diffusers, timm) load on first use so `golden-noise --help` stays fast.
_LAZY = {
    "NPNet": "golden_noise.npnet",
    "NPNetConfig": "golden_noise.npnet",
    "GoldenNoise": "golden_noise.generate",
}

__all__ = ["GoldenNoiseError", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'golden_noise' has no attribute {name!r}")
