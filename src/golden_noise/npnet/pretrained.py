"""Where NPNet weights come from: local files and folders or the hub, read safely and strictly."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from golden_noise.atomic import atomic_write_json, publish, temp_path_for
from golden_noise.errors import GoldenNoiseError
from golden_noise.hub import fetch

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
_MAX_LISTED = 12


def resolve_source(
    source: str | os.PathLike[str],
    *,
    filename: str | None,
    revision: str | None,
    cache_dir: str | os.PathLike[str] | None,
    local_files_only: bool | None,
) -> Path:
    """A local checkpoint file, or a `save_pretrained` folder, for any accepted `source`.

    Local paths win; anything else is a hub repo id: `filename` picks a file in it (e.g. the
    authors' `sdxl.pth`), otherwise its `config.json` + `model.safetensors` are fetched.
    The hub's cache and `HF_HUB_OFFLINE` / `local_files_only` apply as usual.
    """
    path = Path(source)
    if path.is_dir():
        if filename is None:
            return path
        path = path / filename
        if not path.is_file():
            raise GoldenNoiseError(f"expected a file {filename!r} in {source}; it does not exist")
    if path.is_file():
        if path.name == WEIGHTS_NAME and (path.parent / CONFIG_NAME).is_file():
            return path.parent
        return path
    wanted = (
        "an NPNet checkpoint file, a save_pretrained folder or a hub repo with "
        f"{filename or f'{CONFIG_NAME} + {WEIGHTS_NAME}'}"
    )
    download_args = {
        "wanted": wanted,
        "revision": revision,
        "cache_dir": cache_dir,
        "local_files_only": local_files_only,
    }
    if filename is not None:
        return fetch(str(source), filename, **download_args)
    config_file = fetch(str(source), CONFIG_NAME, **download_args)
    fetch(str(source), WEIGHTS_NAME, **download_args)
    return config_file.parent


def read_tensor_file(path: Path) -> dict[str, Any]:
    """Tensors from a `.safetensors` file or a weights-only `torch.load` (never full unpickling)."""
    try:
        if path.suffix == ".safetensors":
            return load_file(path)
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load and safetensors raise many types for bad bytes
        raise GoldenNoiseError(
            f"cannot read {path} as an NPNet checkpoint (expected a weights-only torch file or "
            f"safetensors; corrupt, truncated or holding Python objects?): {error}"
        ) from error
    if not isinstance(checkpoint, dict):
        raise GoldenNoiseError(
            f"not an NPNet checkpoint: {path} holds a {type(checkpoint).__name__}, expected a dict"
        )
    return checkpoint


def read_saved(folder: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """`(config dict, state dict)` from a `save_pretrained` folder."""
    config_file, weights_file = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    if not (config_file.is_file() and weights_file.is_file()):
        raise GoldenNoiseError(
            f"expected {CONFIG_NAME} and {WEIGHTS_NAME} in {folder} (a save_pretrained folder), "
            f"or pass filename= to pick a checkpoint file in it; found "
            f"{sorted(p.name for p in folder.iterdir())}"
        )
    try:
        config = json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise GoldenNoiseError(f"{config_file} is not valid JSON: {error}") from error
    if not isinstance(config, dict):
        raise GoldenNoiseError(
            f"{config_file} must hold a JSON object; got {type(config).__name__}"
        )
    return config, read_tensor_file(weights_file)


def write_saved(folder: Path, config: dict[str, Any], state: dict[str, torch.Tensor]) -> None:
    """Write `config.json` + `model.safetensors`; each file appears whole or not at all."""
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / WEIGHTS_NAME
    weights_tmp = temp_path_for(weights)
    try:
        save_file({key: tensor.contiguous() for key, tensor in state.items()}, weights_tmp)
        publish(weights_tmp, weights)
    finally:
        weights_tmp.unlink(missing_ok=True)
    atomic_write_json(folder / CONFIG_NAME, config)


def _listed(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > _MAX_LISTED else "")


def load_state_strict(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Strict `load_state_dict` that tolerates only values for non-persistent buffers.

    Older timm saved Swin's `relative_position_index` / `attn_mask` buffers, newer timm
    recomputes them and leaves them out of state dicts: the authors' checkpoints carry them.
    Any other missing or unexpected key, or a shape mismatch, is listed in the error.
    """
    non_persistent = {
        f"{name}.{buffer}" if name else buffer
        for name, sub in module.named_modules()
        for buffer in sub._non_persistent_buffers_set
    }
    state = {key: value for key, value in state.items() if key not in non_persistent}
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(
        f"{key} (expected {list(expected[key].shape)}, found {list(state[key].shape)})"
        for key in set(expected) & set(state)
        if expected[key].shape != state[key].shape
    )
    problems = [
        f"{label}: {_listed(keys)}"
        for label, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", mismatched),
        )
        if keys
    ]
    if problems:
        raise GoldenNoiseError(
            "checkpoint does not fit this NPNet configuration; " + "; ".join(problems)
        )
    broken = sorted(k for k, v in state.items() if v.is_floating_point() and not v.isfinite().all())
    if broken:  # e.g. a diverged training run: it would turn every noise into NaN (black images)
        raise GoldenNoiseError(f"checkpoint holds NaN or infinite weights in {_listed(broken)}")
    module.load_state_dict(state, strict=True)
