"""golden-noise: better initial noise for diffusion models (NPNet, ICCV 2025).

Layout. Every sub-package belongs to one stage of the data flow

    prompts -> collection(adapter, teacher, scorer) -> NPD shards (dataset) -> train
    -> NPNet checkpoint (npnet) -> generation / evaluation(adapter, scorers) -> images, report

or to the shared core below all stages:

- `core`: the error type, crash-safe writes, progress bars, setting checks, distribution,
  the seed -> noise convention, weight files, per-sample latent norms. Imports nothing else.
- `npnet`: the model (config, SVD / residual / text branches, save and load, the authors'
  weights). It knows branches by name, never teachers or pipelines.
- `dataset`: the Noise Prompt Dataset on disk (sharded writer, reader, authors' importer).
- `toy`: the embedded world (procedural prompts and images, a tiny shipped pipeline, its
  exact scorer, differentiable rewards, its NPNet). The rest of the package reaches it only
  through the registries of the next rank (and the toy demo and CLI above them).
- `prompts`: prompt sources (files, the toy world, benchmark sets, the hub).
- `adapters`: one module per pipeline family, and `adapters.loading`, which turns a
  `--pipeline` spec into a pipeline (the built-in toy one included).
- `scorers`: image scorers by name, and `scorers.rewards`, the differentiable rewards.
- `teachers`: Stage I targets x_T -> x_T' (`teachers.redenoise_step` is the paper's
  re-denoise step), and the collection sampler that scores them.
- `collection` (Stage I driver), `train` (Stage II), `generation` (Stage III: `GoldenNoise`,
  and `generation.arms`, the one path that renders a sample under several noises).
- `evaluation`: standard vs golden on a prompt set, paired statistics, diversity, report.
- `demo`: the toy world's end-to-end run; `cli`: `golden-noise ...`.

Rule: a package imports only packages of a lower rank; packages of one rank are peers and
import none of each other. The ranks, as data, are `golden_noise.core.layers.LAYERS`, lowest
first: core; npnet, dataset; toy; prompts, adapters, scorers; teachers; collection, train,
generation; evaluation; demo; cli. `tests/test_architecture.py` enforces it, and that no
modules import each other in a circle. This module only re-exports, lazily.
"""

from importlib import import_module
from typing import Any

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.core.version import __version__

# Heavy submodules (torch, diffusers, timm) load on first use so `golden-noise --help` stays fast.
_LAZY = {
    "NPNet": "golden_noise.npnet",
    "NPNetConfig": "golden_noise.npnet",
    "GoldenNoise": "golden_noise.generation.generate",
    "redenoise": "golden_noise.teachers.redenoise_step",
    "RedenoiseSettings": "golden_noise.teachers.redenoise_step",
}

__all__ = ["GoldenNoiseError", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'golden_noise' has no attribute {name!r}")
