"""Append rows and prompt embeddings to a Noise Prompt Dataset, safely, from one process.

Each process (rank) buffers rows and publishes them as its own shards, each written to a temp
file and renamed into place, so a kill at any moment loses at most the unpublished buffer and
never leaves a half shard under a real name. Rows are keyed by (prompt_index, seed); a key
already on disk is refused, so re-running a killed job can only fill in what is missing.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import save_file

from golden_noise.core.atomic import TEMP_PREFIX, publish, remove_temp_files, temp_path_for
from golden_noise.core.errors import GoldenNoiseError, first_few
from golden_noise.core.locks import FileLock, hold_lock
from golden_noise.core.validate import integer
from golden_noise.dataset.integrity import (
    DIGEST_KEY,
    check_listed_shards,
    confirm_shard,
    published_digests,
    reconcile_ledger,
    record_shard,
    shard_metadata,
)
from golden_noise.dataset.manifest import MANIFEST_NAME, SHARDS_WITHOUT_DIGESTS, DatasetManifest
from golden_noise.dataset.prompts import PROMPTS_NAME, PromptRecord, read_prompts, write_prompts
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
    list_shards,
    next_seq,
    read_columns,
    score_columns,
    shard_name,
)

Key = tuple[int, int]
ScoreArray = torch.Tensor | Sequence[float]


def present_keys(root: Path) -> set[Key]:
    """(prompt_index, seed) of every row already on disk, read from shard keys only."""
    keys: set[Key] = set()
    for path in list_shards(Path(root) / ROWS_DIR):
        cols = read_columns(path, (PROMPT_INDEX, SEED))
        keys.update(zip(cols[PROMPT_INDEX].tolist(), cols[SEED].tolist(), strict=True))
    return keys


def embedded_prompts(root: Path) -> set[int]:
    """Prompt indices whose text embedding is already cached."""
    found: set[int] = set()
    for path in list_shards(Path(root) / EMBEDDINGS_DIR):
        found.update(read_columns(path, (PROMPT_INDEX,))[PROMPT_INDEX].tolist())
    return found


def _as_tensor(values: ScoreArray, dtype: torch.dtype) -> torch.Tensor:
    return torch.as_tensor(values, dtype=dtype).detach().cpu().reshape(-1)


def _check_new_root(root: Path) -> None:
    """A new dataset goes into a new or empty directory: files there that no writer made (a
    user's own prompts.jsonl, say) would be taken for the dataset's and rewritten."""
    if not root.is_dir() or (root / MANIFEST_NAME).exists():
        return  # a file there is refused when the directory is made
    _refuse_shards_without(
        root, MANIFEST_NAME, "the record of what made them; adding rows could mix other "
        "settings into them"
    )  # fmt: skip
    # what a writer stopped before its manifest leaves: empty shard folders, locks, temp files
    foreign = sorted(
        entry.name
        for entry in root.iterdir()
        if entry.name not in (ROWS_DIR, EMBEDDINGS_DIR)
        and not entry.name.startswith((".writer-", TEMP_PREFIX))
    )
    if foreign and not (root / MANIFEST_NAME).exists():  # another rank may have just made it
        shown = first_few(foreign)
        raise GoldenNoiseError(
            f"{root} holds files that are not a dataset's ({shown}) and no {MANIFEST_NAME}; "
            "a new dataset is written into a new or empty directory, so they are not "
            "rewritten: choose another directory"
        )


def _check_prompt_record(root: Path) -> None:
    """Rows and embeddings name their prompt by index, and only prompts.jsonl says which
    text that is: without it, a resume with other prompts would file them under the same
    indices and take the old prompts' rows and cached embeddings for theirs."""
    if not (root / PROMPTS_NAME).is_file():
        _refuse_shards_without(
            root, PROMPTS_NAME, "the record of which prompt each of their prompt indices "
            "names; adding rows could file other prompts under those indices"
        )  # fmt: skip


def _refuse_shards_without(root: Path, record: str, why: str) -> None:
    """Shards on disk without the record (`root / record`, missing) that says what they are."""
    made = list_shards(root / ROWS_DIR) + list_shards(root / EMBEDDINGS_DIR)
    if made:
        raise GoldenNoiseError(
            f"{root} holds {len(made)} shard(s) but no {record}, {why}. Restore that file, "
            "or collect into a new directory"
        )


def _prepare_root(root: Path) -> None:
    try:
        for sub in (ROWS_DIR, EMBEDDINGS_DIR):
            (root / sub).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GoldenNoiseError(f"cannot create dataset directory {root}: {exc}") from exc
    for directory in (root, root / ROWS_DIR, root / EMBEDDINGS_DIR):
        if not os.access(directory, os.W_OK | os.X_OK):
            raise GoldenNoiseError(f"dataset directory {directory} is not writable")


def _claim_rank(path: Path, root: Path, rank: int) -> FileLock:
    """Hold the lock file `path` while writing `root` as `rank`: a second process that would
    write the same rank (two collects on one folder without accelerate) is refused instead of
    doing all the work again and writing every row twice."""
    return hold_lock(
        path,
        f"is already writing {root} as rank {rank}; wait for it to finish (then run again to "
        "resume), or split one job over processes with `accelerate launch`",
    )


def _with_notes(manifest: DatasetManifest, notes: Mapping[str, object]) -> DatasetManifest:
    return dataclasses.replace(manifest, notes={**manifest.notes, **notes})


class DatasetWriter:
    """Writes one process's share of a dataset; use as a context manager so the tail flushes.

    `manifest` must agree with the directory's existing manifest (if any) on every identity
    field, so rows of different models or shapes never mix. Pass `prompts` from one process
    (the main one) before the others start. `rows_per_shard` trades files against the rows a
    kill can lose: rows are published as soon as that many are buffered, a batch added at
    once included, so no shard holds more and fewer stay unpublished.
    """

    def __init__(
        self,
        root: Path | str,
        manifest: DatasetManifest,
        *,
        rank: int = 0,
        rows_per_shard: int = 256,
        prompts: Iterable[PromptRecord] | None = None,
    ) -> None:
        self.root = Path(root)
        self.rank = rank
        self.rows_per_shard = integer("rows_per_shard", rows_per_shard, 1)
        _check_new_root(self.root)
        _check_prompt_record(self.root)
        _prepare_root(self.root)
        self._lock = _claim_rank(self.root / f".writer-r{rank:05d}.lock", self.root, rank)
        try:
            self.manifest = self._agree(manifest)
        except GoldenNoiseError:  # refused: the folder is left as it was found
            self._lock.release(refused=True)
            raise
        if prompts is not None:
            write_prompts(self.root, prompts)
        self._tag = f"r{rank:05d}-"
        for directory in (self.root, self.root / ROWS_DIR, self.root / EMBEDDINGS_DIR):
            remove_temp_files(directory, self._tag)
        reconcile_ledger(self.root, rank)  # shards deleted to be redone: their rows are
        self._keys = present_keys(self.root)  # missing below, so they are collected again
        self._embedded = embedded_prompts(self.root)
        self._rows: list[dict[str, torch.Tensor]] = []
        self._pending_rows = 0
        self._embeds: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._extra_names: tuple[str, ...] | None = None
        self._dtype = getattr(torch, self.manifest.latent_dtype)

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def has(self, prompt_index: int, seed: int) -> bool:
        return (int(prompt_index), int(seed)) in self._keys

    def has_embedding(self, prompt_index: int) -> bool:
        return int(prompt_index) in self._embedded

    @property
    def keys(self) -> frozenset[Key]:
        """Every key on disk when opened plus every key added since."""
        return frozenset(self._keys)

    def add_embeddings(
        self, prompt_indices: Sequence[int] | torch.Tensor, embeds: torch.Tensor
    ) -> None:
        """Cache per-token text embeddings `[K, L, D]`; prompts already cached are skipped."""
        indices = _as_tensor(prompt_indices, torch.int64)
        expected = (len(indices), *self.manifest.text_shape)
        if tuple(embeds.shape) != expected:
            raise GoldenNoiseError(
                f"text embeddings must have shape {expected} (prompts, tokens, dim) for this "
                f"dataset; got {tuple(embeds.shape)}"
            )
        if not torch.isfinite(embeds).all():
            raise GoldenNoiseError(
                f"text embeddings of prompts {indices.tolist()} contain NaN or Inf"
            )
        keep = [i for i, p in enumerate(indices.tolist()) if p not in self._embedded]
        if len(set(indices[keep].tolist())) != len(keep):
            raise GoldenNoiseError(f"duplicate prompt indices in one call: {indices.tolist()}")
        if not keep:
            return
        chosen = indices[keep]
        self._embeds.append((chosen, embeds[keep].detach().to("cpu", torch.float16)))
        self._embedded.update(chosen.tolist())

    def embed_missing(self, encode: Callable[[list[str]], torch.Tensor], batch_size: int) -> int:
        """Encode every prompt that has rows but no cached text embedding (its embedding
        shard was deleted, say). An embedding depends only on the text and the encoder, which
        the manifest check holds the same, so it comes back as it was. Returns how many."""
        missing = sorted({p for p, _ in self._keys} - self._embedded)
        texts = {i: r.text for i, r in read_prompts(self.root).items()} if missing else {}
        unknown = [p for p in missing if p not in texts]
        if unknown:
            raise GoldenNoiseError(
                f"{self.root}: rows refer to prompt indices {unknown[:10]} that its "
                f"{PROMPTS_NAME} does not hold, so their text embeddings cannot be made again; "
                "the dataset is damaged: restore that file"
            )
        for start in range(0, len(missing), batch_size):
            chunk = missing[start : start + batch_size]
            self.add_embeddings(chunk, encode([texts[p] for p in chunk]))
        return len(missing)

    def add(
        self,
        source: torch.Tensor,
        target: torch.Tensor,
        prompt_index: Sequence[int] | torch.Tensor,
        seed: Sequence[int] | torch.Tensor,
        score_source: ScoreArray,
        score_target: ScoreArray,
        extra_scores: Mapping[str, tuple[ScoreArray, ScoreArray]] | None = None,
    ) -> None:
        """Add a batch of rows; `extra_scores` maps a scorer name to (source, target) scores."""
        prompts = _as_tensor(prompt_index, torch.int64)
        seeds = _as_tensor(seed, torch.int64)
        batch = len(prompts)
        expected = (batch, *self.manifest.latent_shape)
        for name, tensor in ((SOURCE, source), (TARGET, target)):
            if tuple(tensor.shape) != expected:
                raise GoldenNoiseError(
                    f"{name} latents must have shape {expected} for this dataset; "
                    f"got {tuple(tensor.shape)}"
                )
        row: dict[str, torch.Tensor] = {
            SOURCE: source.detach().to("cpu", self._dtype),
            TARGET: target.detach().to("cpu", self._dtype),
            PROMPT_INDEX: prompts,
            SEED: seeds,
            SCORE_SOURCE: _as_tensor(score_source, torch.float32),
            SCORE_TARGET: _as_tensor(score_target, torch.float32),
        }
        extra = dict(extra_scores or {})
        names = tuple(sorted(extra))
        if self._extra_names is None:
            self._extra_names = names
        elif names != self._extra_names:
            raise GoldenNoiseError(
                f"every row needs the same extra scores: expected {list(self._extra_names)}, "
                f"got {list(names)}"
            )
        for name, (src, tgt) in extra.items():
            col_src, col_tgt = score_columns(name)
            row[col_src], row[col_tgt] = (
                _as_tensor(src, torch.float32),
                _as_tensor(tgt, torch.float32),
            )
        keys = list(zip(prompts.tolist(), seeds.tolist(), strict=True))
        for name, tensor in row.items():
            if tensor.shape[0] != batch:
                raise GoldenNoiseError(f"{name} has {tensor.shape[0]} entries for {batch} rows")
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                bad = ~torch.isfinite(tensor.reshape(batch, -1).float()).all(dim=1)
                raise GoldenNoiseError(
                    f"{name} contains NaN or Inf for rows (prompt_index, seed) "
                    f"{[k for k, b in zip(keys, bad.tolist(), strict=True) if b]}"
                )
        clash = [k for k in keys if k in self._keys]
        if clash or len(set(keys)) != len(keys):
            raise GoldenNoiseError(
                f"rows must be unique by (prompt_index, seed); already present or repeated: "
                f"{clash or keys}"
            )
        self._keys.update(keys)
        self._rows.append(row)
        self._pending_rows += batch
        if self._pending_rows >= self.rows_per_shard:
            self._publish_buffer(tail=False)

    def flush(self) -> None:
        """Publish everything buffered: embeddings, then rows (so a row on disk always has its
        prompt's), in shards of at most `rows_per_shard` rows."""
        self._publish_buffer(tail=True)

    def _publish_buffer(self, tail: bool) -> None:
        """`flush`; `tail=False` keeps the rows short of a full shard buffered, so a batch
        larger than a shard is split and no shard holds more rows than promised."""
        if self._embeds:
            tensors = {
                PROMPT_INDEX: torch.cat([i for i, _ in self._embeds]),
                EMBEDS: torch.cat([e for _, e in self._embeds]),
            }
            self._publish(self.root / EMBEDDINGS_DIR, tensors)
            self._embeds = []
        if not self._rows:
            return
        tensors = {k: torch.cat([r[k] for r in self._rows]) for k in self._rows[0]}
        size, total = self.rows_per_shard, self._pending_rows
        end = total if tail else total - total % size
        for first in range(0, end, size):  # `end` > 0: called with rows, a shard's worth
            last = min(first + size, end)
            self._publish(self.root / ROWS_DIR, {k: v[first:last] for k, v in tensors.items()})
            # published rows leave the buffer at once: a later shard that fails to write (full
            # disk) is retried on close without writing these twice
            self._pending_rows = total - last
            self._rows = [{k: v[last:] for k, v in tensors.items()}] if self._pending_rows else []

    def close(self) -> None:
        """Flush the tail and let another process write this rank again."""
        try:
            self.flush()
        finally:
            self._lock.release()

    def _agree(self, manifest: DatasetManifest) -> DatasetManifest:
        """The directory's manifest if it agrees with `manifest` (written if there is none),
        with the record that this writer keeps digests (`SHARDS_WITHOUT_DIGESTS`). The margin
        must agree too: the manifest's is every reader's default, and a run that reported
        another would say its rows were kept at a margin no reader applies."""
        if not (self.root / MANIFEST_NAME).exists():
            created = _with_notes(manifest, {SHARDS_WITHOUT_DIGESTS: []})
            created.save(self.root)
            return created
        existing = DatasetManifest.load(self.root)
        diff = manifest.differences(existing)
        if diff:
            detail = "; ".join(
                f"{k}: dataset has {b!r}, writer has {a!r}" for k, (a, b) in diff.items()
            )
            raise GoldenNoiseError(
                f"{self.root} holds a dataset made differently ({detail}); "
                f"write to a new directory or use the same settings"
            )
        if manifest.margin != existing.margin:
            raise GoldenNoiseError(
                f"{self.root} records margin {existing.margin!r}, the filter its readers apply "
                f"by default; this run asks for margin {manifest.margin!r}. The margin changes "
                "no row (each is stored with both scores, kept or not): resume with --margin "
                f"{existing.margin!r}, and filter otherwise when reading (train --margin "
                f"{manifest.margin!r})"
            )
        shards = list_shards(self.root / ROWS_DIR) + list_shards(self.root / EMBEDDINGS_DIR)
        if existing.shards_without_digests() is not None:
            check_listed_shards(self.root, existing, shards)
            return existing
        # an older dataset: its unlisted shards stay as they are, every later one is listed
        listed = published_digests(self.root)
        old = [n for n in (p.relative_to(self.root).as_posix() for p in shards) if n not in listed]
        updated = _with_notes(existing, {SHARDS_WITHOUT_DIGESTS: old})
        updated.save(self.root)
        return updated

    def _publish(self, directory: Path, tensors: dict[str, torch.Tensor]) -> None:
        target = directory / shard_name(self.rank, next_seq(directory, self.rank))
        temp = temp_path_for(target, self._tag)
        tensors = {k: v.contiguous() for k, v in tensors.items()}
        metadata = shard_metadata(tensors)
        try:
            save_file(tensors, str(temp), metadata=metadata)
            # listed, pending, before it is published and confirmed after: a kill in between
            # leaves a pending entry (read as never published, settled on resume), never a
            # published shard that no ledger lists
            rows = len(next(iter(tensors.values())))
            name = target.relative_to(self.root).as_posix()
            record_shard(self.root, self.rank, name, rows, metadata[DIGEST_KEY])
            publish(temp, target)
            confirm_shard(self.root, self.rank, name)
        except (OSError, SafetensorError) as exc:  # a full disk is a SafetensorError
            raise GoldenNoiseError(f"cannot write shard {target}: {exc}") from exc
        finally:
            temp.unlink(missing_ok=True)
