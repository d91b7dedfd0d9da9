"""Find a scorer's checkpoint file (a local file, a file in a local folder, or a hub repo) and
import the optional libraries scorers need."""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from types import ModuleType

from golden_noise.errors import GoldenNoiseError
from golden_noise.hub import fetch


def resolve_file(source: str | Path, filename: str, cache_dir: str | Path | None = None) -> Path:
    """Path of `filename` from `source`: the file itself, a folder holding it, or a hub repo id."""
    path = Path(source).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        candidate = path / filename
        if not candidate.is_file():
            raise GoldenNoiseError(f"expected {filename} in folder {path}, it is not there")
        return candidate
    return fetch(
        str(source),
        filename,
        wanted=f"a local file, a folder or a hub repo id holding {filename}",
        cache_dir=cache_dir,
    )


def require(module: str, extra: str = "scorers") -> ModuleType:
    """Import an optional scorer library, naming the pip extra that provides it."""
    try:
        return import_module(module)
    except ImportError as error:
        raise GoldenNoiseError(
            f"this scorer needs the python package {module!r}, which is not installed: "
            f"pip install 'golden-noise[{extra}]'"
        ) from error
