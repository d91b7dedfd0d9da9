"""The one door to the Hugging Face hub: a file of a hub repo, cached, offline-aware."""

from __future__ import annotations

import os
from pathlib import Path

from huggingface_hub import constants, hf_hub_download
from huggingface_hub.errors import (
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
)

from golden_noise.errors import GoldenNoiseError

_HUB_ERRORS = (HfHubHTTPError, HFValidationError, LocalEntryNotFoundError, OfflineModeIsEnabled)


def hub_offline() -> bool:
    """True when huggingface_hub is told not to touch the network (HF_HUB_OFFLINE)."""
    return bool(constants.HF_HUB_OFFLINE)


def fetch(
    repo_id: str,
    filename: str,
    *,
    wanted: str,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool | None = None,
) -> Path:
    """Local path of `filename` in hub repo `repo_id`, downloading it into the cache if needed.

    `local_files_only=None` follows HF_HUB_OFFLINE. Any hub failure (no network, unknown repo,
    missing file, bad id) becomes one GoldenNoiseError that says what the caller `wanted`.
    """
    try:
        return Path(
            hf_hub_download(
                repo_id,
                filename,
                revision=revision,
                cache_dir=cache_dir,
                local_files_only=hub_offline() if local_files_only is None else local_files_only,
            )
        )
    except _HUB_ERRORS as error:
        raise GoldenNoiseError(
            f"expected {wanted}; {repo_id!r} is no local path and the hub lookup failed "
            f"for {filename}: {error}"
        ) from error
