"""The embedded toy world: procedural prompts and scenes, an exact scorer, a tiny trained
``StableDiffusionPipeline`` shipped inside the package. See ``grammar`` for the prompt
templates and splits, ``scorer`` for what ``correct`` and ``soft`` mean.
"""

from importlib import import_module
from typing import Any

_LAZY = {
    "load_pipeline": "golden_noise.toy.pipeline",
    "load_npnet": "golden_noise.toy.npnet",
    "DEFAULT_STEPS": "golden_noise.toy.pipeline",
    "DEFAULT_GUIDANCE": "golden_noise.toy.pipeline",
    "score": "golden_noise.toy.scorer",
    "ToyScore": "golden_noise.toy.scorer",
    "sample_prompts": "golden_noise.toy.grammar",
    "parse": "golden_noise.toy.grammar",
    "render": "golden_noise.toy.scenes",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'golden_noise.toy' has no attribute {name!r}")
