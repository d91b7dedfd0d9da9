"""Published weights, for NPNet and the scorers alike: find the file, read it safely, load it
strictly. The one door to the Hugging Face hub for a single file is here too.

- `resolve_file`: a local file, a file in a local folder, or a file of a hub repo (cached,
  offline-aware); every hub failure becomes one error that says what was wanted, and a name
  that can only be a local path (`check_local_source`) never goes to the hub.
- `read_tensors`: safetensors, or `torch.load(weights_only=True)` (never full unpickling:
  a checkpoint is data, not code).
- `weights_digest`: sha256 of a module's weights, for records that must notice a net
  retrained in place under the same path.
- `load_strict`: a strict `load_state_dict` whose error lists every missing, unexpected and
  mis-shaped key and refuses NaN/Inf weights.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import constants, hf_hub_download
from huggingface_hub.errors import (
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
)
from torch import nn

from golden_noise.core.errors import GoldenNoiseError

_HUB_ERRORS = (HfHubHTTPError, HFValidationError, LocalEntryNotFoundError, OfflineModeIsEnabled)
WEIGHT_SUFFIXES = (".pth", ".pt", ".safetensors", ".bin", ".ckpt")
_MAX_LISTED = 12


def hub_offline() -> bool:
    """True when huggingface_hub is told not to touch the network (HF_HUB_OFFLINE)."""
    return bool(constants.HF_HUB_OFFLINE)


@contextmanager
def hub_errors(repo_id: str, filename: str, wanted: str):
    """Turn any hub failure (no network, unknown repo, missing file, bad id) into one
    GoldenNoiseError that says what the caller `wanted`."""
    try:
        yield
    except _HUB_ERRORS as error:
        raise GoldenNoiseError(
            f"expected {wanted}; {repo_id!r} is no local path and the hub lookup failed "
            f"for {filename}: {error}"
        ) from error


def check_local_source(source: str | Path) -> None:
    """Refuse here a missing name that only a local path can have (a weights suffix, a leading
    `.`, `/` or `~`, or more parts than a hub id's owner/name): the hub would retry it for
    half a minute before failing."""
    text = str(source)
    if Path(text).expanduser().exists():
        return
    if (
        Path(text).suffix.lower() in WEIGHT_SUFFIXES
        or text.startswith((".", "/", "~"))
        or text.count("/") > 1
        or "\\" in text
    ):
        raise GoldenNoiseError(
            f"no such file or folder: {text} (expected a local weights file or folder there; "
            "a hub repo is named owner/name)"
        )


def resolve_file(
    source: str | Path,
    filename: str,
    *,
    local_files_only: bool | None = None,
    **hub: Any,
) -> Path:
    """Path of `filename` from `source`: the file itself, a folder holding it, or a hub repo.

    A hub file is downloaded into the hub cache if needed; `local_files_only=None` follows
    HF_HUB_OFFLINE; `hub` goes to `hf_hub_download` (`revision`, `cache_dir`, `token`, ...).
    """
    path = Path(source).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        if not (path / filename).is_file():
            raise GoldenNoiseError(
                f"expected a file {filename!r} in folder {path}; it is not there"
            )
        return path / filename
    check_local_source(source)
    offline = hub_offline() if local_files_only is None else local_files_only
    with hub_errors(str(source), filename, f"a local file, a folder or a hub repo with {filename}"):
        return Path(hf_hub_download(str(source), filename, local_files_only=offline, **hub))


def read_tensors(path: Path, key: str | None = None) -> dict[str, Any]:
    """The dict a weights file holds (under `key` if given), read without running any code."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            checkpoint = load_file(path)
        else:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load and safetensors raise many types for bad bytes
        # one line, and never torch's advice to retry with weights_only=False (it would run
        # whatever code a stranger's file holds)
        raise GoldenNoiseError(
            f"cannot read {path}: it is not a readable weights file (expected a weights-only "
            f"torch checkpoint or safetensors; it is corrupt, truncated or holds Python "
            f"objects, which are never unpickled; {type(error).__name__})"
        ) from error
    if key is not None:
        if not isinstance(checkpoint, dict) or key not in checkpoint:
            found = sorted(checkpoint)[:5] if isinstance(checkpoint, dict) else "no dict"
            raise GoldenNoiseError(f"expected the weights under [{key!r}] in {path}, found {found}")
        checkpoint = checkpoint[key]
    if not isinstance(checkpoint, dict):
        raise GoldenNoiseError(
            f"not a checkpoint: {path} holds a {type(checkpoint).__name__}, expected a dict"
        )
    return checkpoint


def _listed(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > _MAX_LISTED else "")


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], source: Path | str) -> None:
    """Strict `load_state_dict` that tolerates only values for non-persistent buffers.

    Older timm saved Swin's `relative_position_index` / `attn_mask` buffers, newer timm
    recomputes them and leaves them out of state dicts: the authors' NPNet checkpoints carry
    them. Any other missing or unexpected key, or a shape mismatch, is listed in the error;
    NaN or infinite weights (e.g. from a diverged training run, which would turn every output
    into NaN) are refused.
    """
    non_persistent = {
        f"{name}.{buffer}" if name else buffer
        for name, sub in module.named_modules()
        for buffer in sub._non_persistent_buffers_set
    }
    state = {key: value for key, value in state.items() if key not in non_persistent}
    broken = sorted(k for k, v in state.items() if v.is_floating_point() and not v.isfinite().all())
    if broken:
        raise GoldenNoiseError(
            f"checkpoint {source} holds NaN or infinite weights in {_listed(broken)}"
        )
    expected = {key: value.shape for key, value in module.state_dict().items()}
    wrong = {key for key, value in state.items() if expected.get(key, value.shape) != value.shape}
    mismatched = sorted(
        f"{key} (expected {list(expected[key])}, found {list(state[key].shape)})" for key in wrong
    )
    # torch diffs the keys; the mis-shaped ones are left out (torch would raise on them)
    # and reported as such, not as missing. A refused module is half loaded: callers drop it.
    keys = module.load_state_dict({k: v for k, v in state.items() if k not in wrong}, strict=False)
    problems = [
        f"{label}: {_listed(sorted(found))}"
        for label, found in (
            ("missing keys", set(keys.missing_keys) - wrong),
            ("unexpected keys", keys.unexpected_keys),
            ("shape mismatches", mismatched),
        )
        if found
    ]
    if problems:
        raise GoldenNoiseError(
            f"checkpoint {source} does not fit this {type(module).__name__}; " + "; ".join(problems)
        )


def weights_digest(module: Any) -> str:
    """sha256 of a module's weights (names and bytes): the same path may hold a retrained net."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    return digest.hexdigest()
