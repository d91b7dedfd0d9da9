"""Reading released scorer weights safely and strictly."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from golden_noise.errors import GoldenNoiseError


def read_state_dict(path: Path, key: str | None = None) -> dict[str, torch.Tensor]:
    """Tensors of a `torch.save`d checkpoint (no code unpickled), under `key` if given."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise GoldenNoiseError(
            f"expected a torch checkpoint at {path}, could not read it: {error}"
        ) from error
    if key is not None:
        if not isinstance(state, dict) or key not in state:
            found = sorted(state)[:5] if isinstance(state, dict) else type(state).__name__
            raise GoldenNoiseError(f"expected the weights under [{key!r}] in {path}, found {found}")
        state = state[key]
    if not isinstance(state, dict):
        raise GoldenNoiseError(f"expected a state dict in {path}, found {type(state).__name__}")
    return state


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], source: Path | str) -> None:
    """`load_state_dict(strict=True)` whose failure names the file and the differing keys."""
    expected = set(module.state_dict())
    missing = sorted(expected - set(state))
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        raise GoldenNoiseError(
            f"checkpoint {source} does not fit {type(module).__name__}: "
            f"missing keys {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected keys {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise GoldenNoiseError(f"checkpoint {source} has wrong tensor shapes: {error}") from error
