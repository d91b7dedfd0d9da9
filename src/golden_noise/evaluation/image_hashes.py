"""Each image's SHA-256, recorded in `index.jsonl`, so nothing scores an image changed since.

The PNG's `made_for` text names the sample an image was made for, but an edit keeps that
text and an image tool that re-saves the file drops it; the digest of the file's bytes
catches both. An image evaluate wrote is recorded once its run has scored it; one without a
record (from a run before this record, or one killed before its end) is taken as named.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.core.file_digests import file_sha256

HASHES_KEY = "sha256"  # index.jsonl: {arm: digest} of each sample's images
_HEX = re.compile(r"^[0-9a-f]{64}$")


def check_hashes_entry(value: Any) -> str | None:
    """What is wrong with an index line's `sha256` entry, or None."""
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and _HEX.match(v) for k, v in value.items()
    ):
        return f"{HASHES_KEY} must map arms to 64 hex digits; got {value!r}"
    return None


def check_image(path: Path, recorded: Mapping[str, str], name: str, index: Path) -> None:
    """Refuse an image whose bytes are not those recorded for it (when recorded)."""
    expected = recorded.get(name)
    if expected is not None and file_sha256(path) != expected:
        raise GoldenNoiseError(
            f"image {path} is not the file this run's evaluate scored: its SHA-256 differs "
            f"from the one {index} records (it was edited, re-saved or replaced since); "
            "restore it, or delete it and run the same evaluate command again to regenerate it"
        )
