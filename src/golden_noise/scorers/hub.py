"""Find a scorer's checkpoint file: a local file, a file in a local folder, or a hub repo.

Hub downloads go through huggingface_hub (its cache, `cache_dir`, and offline mode:
with HF_HUB_OFFLINE set only already-cached files are used).
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from types import ModuleType

from golden_noise.errors import GoldenNoiseError


def hub_offline() -> bool:
    """True when huggingface_hub is told not to touch the network."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


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
    from huggingface_hub import hf_hub_download

    try:
        return Path(
            hf_hub_download(
                repo_id=str(source),
                filename=filename,
                cache_dir=cache_dir,
                local_files_only=hub_offline(),
            )
        )
    except Exception as error:  # hub errors have many types; the user needs one message
        raise GoldenNoiseError(
            f"expected a local file, a folder or a hub repo id holding {filename}, "
            f"could not get it from {str(source)!r}: {error}"
        ) from error


def require(module: str, extra: str = "scorers") -> ModuleType:
    """Import an optional scorer library, naming the pip extra that provides it."""
    try:
        return import_module(module)
    except ImportError as error:
        raise GoldenNoiseError(
            f"this scorer needs the python package {module!r}, which is not installed: "
            f"pip install 'golden-noise[{extra}]'"
        ) from error
