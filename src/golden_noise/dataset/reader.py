"""Read a Noise Prompt Dataset as a torch Dataset, lazily, shard by shard.

Only the 1-D columns (keys and scores) of every shard are read up front; latents and text
embeddings are memory-mapped and sliced per item, so a 13 GB dataset costs megabytes of RAM.
Filtering by score margin and splitting by prompt are reader options over the full table of
rows, which is why the collector keeps every row whatever its scores.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.dataset.integrity import (
    check_finished_rows,
    check_listed_shards,
    check_no_missing_shards,
    verify_rows,
)
from golden_noise.dataset.manifest import DatasetManifest
from golden_noise.dataset.prompts import PromptRecord, read_prompts
from golden_noise.dataset.shards import (
    EMBEDDINGS_DIR,
    EMBEDS,
    PROMPT_INDEX,
    ROWS_DIR,
    SCORE_SOURCE,
    SCORE_TARGET,
    SEED,
    SOURCE,
    TARGET,
    extra_scorers,
    list_shards,
    open_shard,
    read_columns,
    score_columns,
    tensor_shape,
)

_REQUIRED = (SOURCE, TARGET, PROMPT_INDEX, SEED, SCORE_SOURCE, SCORE_TARGET)


@dataclass
class RowTable:
    """Every row on disk: its shard, its place there, and its 1-D columns (deduplicated)."""

    shards: list[Path]
    shard_id: np.ndarray
    offset: np.ndarray
    columns: dict[str, np.ndarray]
    duplicates_dropped: int

    @classmethod
    def load(cls, root: Path, manifest: DatasetManifest) -> RowTable:
        check_no_missing_shards(root)
        shards = list_shards(root / ROWS_DIR)
        check_listed_shards(root, manifest, [*shards, *list_shards(root / EMBEDDINGS_DIR)])
        ids, offsets, parts = [], [], []
        for number, path in enumerate(shards):
            cols = read_columns(path, _REQUIRED)
            expected = (len(cols[SEED]), *manifest.latent_shape)
            for key in (SOURCE, TARGET):
                if tensor_shape(path, key) != expected:
                    raise GoldenNoiseError(
                        f"shard {path} holds {key} latents of shape {tensor_shape(path, key)}; "
                        f"the manifest says {expected}"
                    )
            ids.append(np.full(len(cols[SEED]), number, dtype=np.int64))
            offsets.append(np.arange(len(cols[SEED]), dtype=np.int64))
            parts.append({k: v.numpy() for k, v in cols.items()})
        if not parts:
            check_finished_rows(root, manifest, set())
            return cls(shards, np.zeros(0, np.int64), np.zeros(0, np.int64), {}, 0)
        common = set.intersection(*(set(p) for p in parts))
        columns = {k: np.concatenate([p[k] for p in parts]) for k in sorted(common)}
        shard_id, offset = np.concatenate(ids), np.concatenate(offsets)
        _check_values(root, columns, shards, shard_id)
        keys = np.stack([columns[PROMPT_INDEX], columns[SEED]], axis=1)
        unique, first, counts = np.unique(keys, axis=0, return_index=True, return_counts=True)
        if (counts > 1).any():
            # the writer refuses a key already on disk: a repeat is a copied or damaged shard
            repeated = [tuple(k) for k in unique[counts > 1].tolist()]
            mask = np.zeros(len(keys), dtype=bool)
            for key in unique[counts > 1][:5]:
                mask |= (keys == key).all(axis=1)
            where = sorted({shards[int(i)].name for i in shard_id[mask]})
            raise GoldenNoiseError(
                f"{root}: {len(repeated)} (prompt_index, seed) keys appear more than once "
                f"(e.g. {repeated[:5]}, in {', '.join(where[:5])}); each row must be stored "
                "once: remove the copied or damaged shard"
            )
        check_finished_rows(root, manifest, set(map(tuple, keys.tolist())))
        return cls(shards, shard_id, offset, columns, 0)

    def __len__(self) -> int:
        return len(self.shard_id)

    def verify(self) -> None:
        """Read every shard whole: digests, and finite latents of plausible size in every row
        (what `load` cannot see without reading the latents). Once, before training."""
        rows_of = {
            path: np.sort(self.offset[self.shard_id == number])
            for number, path in enumerate(self.shards)
        }
        verify_rows(self.shards, rows_of, (SOURCE, TARGET))

    def keep_mask(self, margin: float | None, score: str | None) -> np.ndarray:
        """Rows the paper's filter keeps: `score_source + margin < score_target`."""
        if margin is None:
            return np.ones(len(self), dtype=bool)
        col_src, col_tgt = score_columns(score)
        if len(self) and (col_src not in self.columns or col_tgt not in self.columns):
            extras = sorted(extra_scorers(self.columns))
            raise GoldenNoiseError(
                f"cannot filter on scorer {score!r}: not stored in every shard; "
                f"scorers found in all shards: {extras} (or None for the primary scorer)"
            )
        return (
            self.columns[col_src] + margin < self.columns[col_tgt]
            if len(self)
            else np.ones(0, bool)
        )


def _check_values(
    root: Path, columns: dict[str, np.ndarray], shards: list[Path], shard_id: np.ndarray
) -> None:
    """Keys and scores must be what a writer can write: indices and seeds >= 0, scores
    finite. Anything else is damage, named with its shard."""
    problems = []
    for name in (PROMPT_INDEX, SEED):
        bad = columns[name] < 0
        if bad.any():
            problems.append((name, "must be >= 0", bad))
    for name, values in columns.items():
        if np.issubdtype(values.dtype, np.floating):
            bad = ~np.isfinite(values)
            if bad.any():
                problems.append((name, "must be finite", bad))
    if problems:
        detail = "; ".join(
            f"{name} {rule}: {int(bad.sum())} rows, e.g. {columns[name][bad][0]!r} in "
            f"{shards[int(shard_id[bad][0])].name}"
            for name, rule, bad in problems
        )
        raise GoldenNoiseError(f"{root}: rows hold out-of-range values ({detail})")


def split_prompts(
    prompt_indices: Collection[int], val_fraction: float, seed: int = 0
) -> tuple[set[int], set[int]]:
    """Seeded split of prompts into (train, validation); no prompt lands in both.

    At least one prompt goes to each side whenever `val_fraction > 0` and there are two or
    more prompts, so tiny datasets still validate.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise GoldenNoiseError(f"val_fraction must be in [0, 1); got {val_fraction}")
    ordered = np.array(sorted(set(int(p) for p in prompt_indices)), dtype=np.int64)
    count = len(ordered)
    n_val = round(val_fraction * count)
    if val_fraction > 0 and count >= 2:
        n_val = min(max(n_val, 1), count - 1)
    chosen = np.random.default_rng(seed).permutation(count)[:n_val]
    val = set(ordered[chosen].tolist())
    return set(ordered.tolist()) - val, val


class NoisePromptDataset(Dataset):
    """Rows of a Noise Prompt Dataset as `(source, target, prompt_embeds)` float32 tensors.

    `margin`: keep a row iff `score_source + margin < score_target` (None keeps every row,
    the unfiltered-pairs ablation); `score` picks an extra scorer's columns instead of the
    primary one; `prompts` restricts to those prompt indices (a split).
    """

    def __init__(
        self,
        root: Path | str,
        *,
        margin: float | None = None,
        score: str | None = None,
        prompts: Collection[int] | None = None,
        table: RowTable | None = None,
        manifest: DatasetManifest | None = None,
    ) -> None:
        self.root = Path(root)
        self.manifest = manifest if manifest is not None else DatasetManifest.load(self.root)
        self.table = table if table is not None else RowTable.load(self.root, self.manifest)
        mask = self.table.keep_mask(margin, score)
        if prompts is not None and len(self.table):
            mask &= np.isin(
                self.table.columns[PROMPT_INDEX], np.array(sorted(prompts), dtype=np.int64)
            )
        self.rows = np.flatnonzero(mask)
        self.margin, self.score = margin, score
        self._embedding_shards, self._embedding_at = self._index_embeddings()
        self._handles: dict[Path, Any] = {}

    def _index_embeddings(self) -> tuple[list[Path], dict[int, tuple[int, int]]]:
        shards = list_shards(self.root / EMBEDDINGS_DIR)
        where: dict[int, tuple[int, int]] = {}
        for number, path in enumerate(shards):
            indices = read_columns(path, (PROMPT_INDEX, EMBEDS))[PROMPT_INDEX].tolist()
            shape = tensor_shape(path, EMBEDS)
            if shape[1:] != self.manifest.text_shape:
                raise GoldenNoiseError(
                    f"embedding shard {path} holds embeddings of shape {shape[1:]}; the manifest "
                    f"says {self.manifest.text_shape}"
                )
            for offset, prompt in enumerate(indices):
                where.setdefault(prompt, (number, offset))
        needed = set(self.prompt_indices)
        missing = sorted(needed - set(where))
        if missing:
            raise GoldenNoiseError(
                f"{self.root}: {len(missing)} prompts have rows but no cached text embedding "
                f"(e.g. prompt indices {missing[:10]}): their embedding shards are missing. "
                "Restore them, or run the same collect (or import-authors) command again: it "
                "encodes every prompt that has rows but no embedding (a merged dataset: merge "
                "its sources again)"
            )
        return shards, where

    def __len__(self) -> int:
        return len(self.rows)

    def verify(self) -> None:
        """`RowTable.verify`, and the digests of the embedding shards."""
        self.table.verify()
        verify_rows(self._embedding_shards, {}, ())

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handles"] = {}  # memory maps reopen lazily in each DataLoader worker
        return state

    def _handle(self, path: Path) -> Any:
        handle = self._handles.get(path)
        if handle is None:
            handle = self._handles[path] = open_shard(path)
        return handle

    @property
    def keys(self) -> list[tuple[int, int]]:
        """(prompt_index, seed) of each item, in item order."""
        cols = self.table.columns
        if not len(self.rows):
            return []
        return list(
            zip(cols[PROMPT_INDEX][self.rows].tolist(), cols[SEED][self.rows].tolist(), strict=True)
        )

    @property
    def prompt_indices(self) -> list[int]:
        """Distinct prompts among the items, sorted."""
        if not len(self.rows):
            return []
        return np.unique(self.table.columns[PROMPT_INDEX][self.rows]).tolist()

    def column(self, name: str) -> np.ndarray:
        """A stored 1-D column (e.g. `score_target`) for the items, in item order."""
        if name not in self.table.columns:
            raise GoldenNoiseError(f"no column {name!r}; stored: {sorted(self.table.columns)}")
        return self.table.columns[name][self.rows]

    def prompts(self) -> dict[int, PromptRecord]:
        return read_prompts(self.root)

    def __getitem__(self, item: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        row = int(self.rows[item])
        path = self.table.shards[int(self.table.shard_id[row])]
        offset = int(self.table.offset[row])
        prompt = int(self.table.columns[PROMPT_INDEX][row])
        handle = self._handle(path)
        source = handle.get_slice(SOURCE)[offset].float()
        target = handle.get_slice(TARGET)[offset].float()
        emb_number, emb_offset = self._embedding_at[prompt]
        emb_path = self._embedding_shards[emb_number]
        embeds = self._handle(emb_path).get_slice(EMBEDS)[emb_offset].float()
        for name, tensor, where in (
            (SOURCE, source, path),
            (TARGET, target, path),
            (EMBEDS, embeds, emb_path),
        ):
            if not torch.isfinite(tensor).all():
                raise GoldenNoiseError(
                    f"{name} of row (prompt_index={prompt}, seed="
                    f"{int(self.table.columns[SEED][row])}) in {where} contains NaN or Inf"
                )
        return source, target, embeds


def load_splits(
    root: Path | str,
    *,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    margin: float | None = None,
    score: str | None = None,
    manifest: DatasetManifest | None = None,
) -> tuple[NoisePromptDataset, NoisePromptDataset]:
    """(train, validation) datasets split by prompt, sharing one scan of the shards and the
    one reading of `manifest` (read here when not given).

    Prompts are split before filtering, so changing the margin (e.g. the unfiltered-pairs
    ablation) keeps the same validation prompts.
    """
    root = Path(root)
    manifest = manifest if manifest is not None else DatasetManifest.load(root)
    table = RowTable.load(root, manifest)
    if not len(table):
        raise GoldenNoiseError(f"dataset {root} has no rows: expected shards in {root / ROWS_DIR}")
    train_prompts, val_prompts = split_prompts(
        table.columns[PROMPT_INDEX].tolist(), val_fraction, split_seed
    )
    common = {"margin": margin, "score": score, "table": table, "manifest": manifest}
    return (
        NoisePromptDataset(root, prompts=train_prompts, **common),
        NoisePromptDataset(root, prompts=val_prompts, **common),
    )
