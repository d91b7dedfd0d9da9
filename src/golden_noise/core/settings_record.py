"""A run's settings record: the JSON file a resumed run is checked against.

`train` and the toy world's trainers keep their settings in one file in the run's folder and
refuse a resume whose settings differ, so a run never mixes two settings' weights.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from golden_noise.core.errors import GoldenNoiseError

RUN_CONFIG = "train_config.json"


def changed_settings(
    path: Path, record: Mapping[str, Any], free: Collection[str] = ()
) -> list[str]:
    """The settings of `record` outside `free` that the JSON record at `path` holds with
    another value, each as "name: run <recorded>, now <given>" (compared in the form the file
    holds, so a tuple matches its list). A record that cannot be read vouches for nothing, so
    it is refused rather than read as "no settings"."""
    record = json.loads(json.dumps(record))
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GoldenNoiseError(f"cannot read {path}: {exc}") from exc
    if not isinstance(recorded, dict):
        raise GoldenNoiseError(f"cannot read {path}: expected a JSON object of settings")
    return [
        f"{key}: run {recorded.get(key)!r}, now {value!r}"
        for key, value in record.items()
        if key not in free and recorded.get(key) != value
    ]
