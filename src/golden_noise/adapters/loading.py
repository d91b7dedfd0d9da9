"""Loaded diffusers pipelines: the one place that turns a `--pipeline` spec into one, and
the one way to run a call with another scheduler.

A spec is a built-in pipeline (`BUILTIN_PIPELINES`: "toy", the embedded toy world's trained
pipeline, shipped in the package), a local folder written by `save_pretrained`, or a hub id.
A built-in pipeline also brings what a run needs to use it without further flags: its
sampler's defaults, its NPNet, and the scorers that judge its images.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from golden_noise.core.errors import GoldenNoiseError

TOY = "toy"

PIPELINE_DIGEST = "pipeline_sha256"  # what records of runs on local folders hold
DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def resolve_dtype(name: str | torch.dtype | None) -> torch.dtype | None:
    """A torch dtype from its name ("float16", "fp16", ...); None keeps the saved dtype."""
    if name is None or isinstance(name, torch.dtype):
        return name
    if name.lower() not in DTYPES:
        raise GoldenNoiseError(f"dtype must be one of {sorted(DTYPES)}; got {name!r}")
    return DTYPES[name.lower()]


def check_device(device: str | torch.device) -> torch.device:
    """`device` as a torch device this machine has, or one error naming what it has."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise GoldenNoiseError(
            f"device must be a torch device such as 'cpu', 'cuda' or 'cuda:0'; got {device!r}"
        ) from error
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if parsed.index is not None and parsed.index >= count or count == 0:
            raise GoldenNoiseError(
                f"device {device!r} is not available: this machine has {count} CUDA devices"
                + (f" (cuda:0 to cuda:{count - 1})" if count else "; use --device cpu")
            )
    elif parsed.type not in ("cpu", "mps", "xpu", "meta"):
        raise GoldenNoiseError(f"device {device!r} is not supported; use 'cpu' or 'cuda[:N]'")
    return parsed


def default_device() -> str:
    """The first accelerator torch sees, else the CPU."""
    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass(frozen=True)
class BuiltinPipeline:
    """A pipeline shipped in the package, and what a run needs to use it.

    `load(device, dtype)`; `call_defaults()`: its sampler's `{"steps", "guidance"}`;
    `npnet()`: its shipped NPNet; `scorers`: the comma-separated scorers that judge it.
    """

    load: Callable[[str | torch.device, torch.dtype | None], Any]
    call_defaults: Callable[[], dict[str, Any]]
    npnet: Callable[[], Any]
    scorers: str


def _toy_pipeline(device: str | torch.device, dtype: torch.dtype | None) -> Any:
    from golden_noise.toy import load_pipeline

    return load_pipeline(device=device, dtype=dtype or torch.float32)


def _toy_call_defaults() -> dict[str, Any]:
    from golden_noise.toy import DEFAULT_GUIDANCE, DEFAULT_STEPS

    return {"steps": DEFAULT_STEPS, "guidance": DEFAULT_GUIDANCE}


def _toy_npnet() -> Any:
    from golden_noise.toy import load_npnet

    return load_npnet()


BUILTIN_PIPELINES: dict[str, BuiltinPipeline] = {
    TOY: BuiltinPipeline(_toy_pipeline, _toy_call_defaults, _toy_npnet, "toy-soft,toy-correct"),
}


def builtin_pipeline(spec: str) -> BuiltinPipeline | None:
    """The built-in pipeline `spec` names, or None for a folder or hub id."""
    return BUILTIN_PIPELINES.get(spec)


def pipeline_from_spec(
    spec: str = TOY,
    *,
    dtype: str | torch.dtype | None = None,
    device: str | torch.device | None = None,
) -> Any:
    """Load the pipeline named by `spec` onto `device` (default: `default_device()`).

    A local folder never touches the network; a hub id uses the hub cache as usual.
    """
    torch_dtype = resolve_dtype(dtype)
    device = check_device(device or default_device())
    if spec in BUILTIN_PIPELINES:
        return BUILTIN_PIPELINES[spec].load(device, torch_dtype)
    # Loading in the dtype (rather than casting after) keeps the modules diffusers pins to
    # float32 in float32. Without one, float32 for every component: diffusers' models default
    # to it but transformers' text encoders keep the dtype they were saved in, and a folder
    # saved in float16 then fails at the first matmul (and would cache fp16 embeddings in
    # data that records float32).
    return _from_pretrained(spec, torch_dtype or torch.float32).to(device)


def _from_pretrained(spec: str, torch_dtype: torch.dtype) -> Any:
    from diffusers import DiffusionPipeline

    path = Path(spec)
    if path.exists() and not (path / "model_index.json").is_file():
        raise GoldenNoiseError(
            f"expected a diffusers pipeline folder (with model_index.json) at {spec}; "
            f"found {sorted(p.name for p in path.iterdir()) if path.is_dir() else 'a file'}"
        )
    try:
        return DiffusionPipeline.from_pretrained(spec, dtype=torch_dtype)
    except Exception as error:  # hub/cache misses, bad ids, repos that need custom code...
        if isinstance(error, GoldenNoiseError):
            raise
        raise GoldenNoiseError(
            f"cannot load pipeline {spec!r}: expected 'toy', a local pipeline folder or a hub "
            f"id the hub (or its cache) can serve; {error}"
        ) from error


@contextmanager
def scheduler_swapped(pipe: Any, scheduler: Any) -> Iterator[None]:
    """Install `scheduler` (and silence the per-call progress bar) for one call, then restore."""
    original = pipe.scheduler
    bar_config = getattr(pipe, "_progress_bar_config", None)
    pipe.scheduler = scheduler
    pipe.set_progress_bar_config(**{**(bar_config or {}), "disable": True})
    try:
        yield
    finally:
        pipe.scheduler = original
        pipe.set_progress_bar_config(**(bar_config or {}))


def pipeline_sha256(pipe: Any) -> str:
    """SHA-256 of what decides a pipeline's images: its class, each model's weights (names,
    dtypes, shapes, bytes), its scheduler's settings and its tokenizer's vocabulary; the same
    after a save or a reload, so only another pipeline changes it."""
    digest = hashlib.sha256(type(pipe).__name__.encode())
    for name, part in sorted(pipe.components.items()):
        digest.update(f"\0{name}:{type(part).__name__}".encode())
        if isinstance(part, torch.nn.Module):
            for key, tensor in part.state_dict().items():
                digest.update(f"\0{key} {tensor.dtype} {tuple(tensor.shape)}".encode())
                digest.update(tensor.detach().cpu().reshape(-1).view(torch.uint8).numpy())
        elif hasattr(part, "get_vocab"):
            digest.update(json.dumps(sorted(part.get_vocab().items())).encode())
        elif hasattr(part, "config"):  # diffusers' "_" keys describe the file, not the steps
            settings = {k: v for k, v in part.config.items() if not k.startswith("_")}
            digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def local_pipeline_record(spec: str | None, pipe: Any) -> dict[str, str]:
    """`{"pipeline_sha256": ...}` for a pipeline loaded from a local folder, whose files can
    change under the same path between a run and its resume; nothing for a built-in one or a
    hub id (named by the spec itself)."""
    if spec is None or spec in BUILTIN_PIPELINES or not Path(spec).is_dir():
        return {}
    return {PIPELINE_DIGEST: pipeline_sha256(pipe)}
