"""Shard files: naming, listing, and reading their small columns without touching latents.

Row shards live in `rows/`, text-embedding shards in `embeddings/`; both are safetensors
files named `r{rank}-{seq}.safetensors`, so every process writes its own names and N
processes fill one directory with no merge step. Files starting with a dot (temp files of
interrupted writes) are never read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.dataset.integrity import check_columns

ROWS_DIR = "rows"
EMBEDDINGS_DIR = "embeddings"
SHARD_SUFFIX = ".safetensors"
_NAME = re.compile(r"^r(\d{5})-(\d{6})\.safetensors$")

SOURCE, TARGET = "source", "target"
PROMPT_INDEX, SEED = "prompt_index", "seed"
SCORE_SOURCE, SCORE_TARGET = "score_source", "score_target"
EMBEDS = "embeds"


def score_columns(name: str | None) -> tuple[str, str]:
    """Column names of a scorer's (source, target) scores; None is the primary scorer."""
    if name is None:
        return SCORE_SOURCE, SCORE_TARGET
    return f"{SCORE_SOURCE}:{name}", f"{SCORE_TARGET}:{name}"


def extra_scorers(columns: Iterable[str]) -> set[str]:
    """Names of the extra scorers whose columns are among `columns` (see `score_columns`)."""
    return {name.split(":", 1)[1] for name in columns if ":" in name}


def shard_name(rank: int, seq: int) -> str:
    return f"r{rank:05d}-{seq:06d}{SHARD_SUFFIX}"


def list_shards(directory: Path) -> list[Path]:
    """Complete shards in `directory`, in a fixed order (rank, then sequence)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if _NAME.match(p.name))


def next_seq(directory: Path, rank: int) -> int:
    """The next unused sequence number for `rank`'s shards in `directory`."""
    seqs = [
        int(m.group(2))
        for p in list_shards(directory)
        if (m := _NAME.match(p.name)) and int(m.group(1)) == rank
    ]
    return max(seqs, default=-1) + 1


def open_shard(path: Path) -> Any:
    """Memory-map a shard, naming the file when it is not a readable safetensors file."""
    try:
        return safe_open(str(path), framework="pt")
    except (SafetensorError, OSError) as exc:
        raise GoldenNoiseError(
            f"corrupt shard {path}: expected a complete safetensors file ({exc}); restore it "
            "from a backup, or (for a collected dataset) delete it and run the same collect "
            "command to collect its rows again"
        ) from exc


def read_columns(path: Path, required: Sequence[str]) -> dict[str, torch.Tensor]:
    """All 1-D columns of a shard (keys, scores), checking `required` ones are present.

    Latent tensors are not read; only their shapes are checked against the row count.
    """
    handle = open_shard(path)
    keys = set(handle.keys())
    missing = sorted(set(required) - keys)
    if missing:
        raise GoldenNoiseError(
            f"corrupt shard {path}: missing tensors {missing}; has {sorted(keys)}"
        )
    columns: dict[str, torch.Tensor] = {}
    rows: int | None = None
    for key in sorted(keys):
        shape = handle.get_slice(key).get_shape()
        if rows is None:
            rows = shape[0]
        if shape[0] != rows:
            raise GoldenNoiseError(
                f"corrupt shard {path}: tensor {key!r} has {shape[0]} rows, others have {rows}"
            )
        if len(shape) == 1:
            try:
                columns[key] = handle.get_tensor(key)
            except SafetensorError as exc:
                raise GoldenNoiseError(
                    f"corrupt shard {path}: cannot read {key!r} ({exc})"
                ) from exc
    check_columns(path, handle.metadata(), columns)
    return columns


def tensor_shape(path: Path, key: str) -> tuple[int, ...]:
    return tuple(open_shard(path).get_slice(key).get_shape())
