"""Shard integrity: content digests, a per-writer ledger of published shards, row sanity.

Every shard the writer publishes carries two SHA-256 digests in its safetensors metadata:
`golden_noise:columns_sha256` over its 1-D columns (keys and scores, checked whenever they
are read, so flipped bytes in a key are never taken for another row) and
`golden_noise:sha256` over every tensor (checked by `verify_rows`, which reads the latents
once, before training). Beside the shards, `ledger-r{rank}.json` at the dataset root lists
each shard that rank published, so a deleted shard is named instead of silently missing.
A shard is listed as pending before it is renamed into place and confirmed after: a kill
between the two leaves a pending entry, which names no missing shard (it may never have been
published), while a confirmed entry without its shard is a deleted shard.

Datasets written before digests existed still open: a shard without digests is read as it
is (nothing can be checked), and a rank without a ledger is not checked for missing shards.
A shard its ledger lists is not such an old shard: it must carry the digest the ledger
records, so one rewritten without its digests (say, scores edited and saved again) is named.
Digests are required of whatever the current writer publishes, and a dataset it wrote says
so in its manifest (`shards_without_digests`): there every shard not named in that note
must be listed in a ledger, so deleting the ledger does not make a rewritten shard "old".
The collector reconciles its own ledger on open: an entry whose shard was deleted (to redo
a corrupt shard's rows) is dropped, and the rows are collected again.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from golden_noise.core.atomic import atomic_write_json
from golden_noise.core.errors import GoldenNoiseError, first_few
from golden_noise.dataset.manifest import DatasetManifest

DIGEST_KEY = "golden_noise:sha256"
COLUMNS_DIGEST_KEY = "golden_noise:columns_sha256"
_LEDGER = re.compile(r"^ledger-r(\d{5})\.json$")
PENDING = "pending"  # a ledger entry's flag: listed, not yet confirmed published
# A latent row's RMS: Gaussian noise and every teacher's target sit near 1. Far outside this
# band a row is damage (finite garbage trains to a loss of 1e9), not a noise.
PLAUSIBLE_RMS = (1e-2, 10.0)


def tensors_digest(tensors: Mapping[str, torch.Tensor], only_1d: bool = False) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of `tensors` (all, or the 1-D ones)."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name]
        if only_1d and tensor.dim() != 1:
            continue
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{data.dtype}|{tuple(data.shape)}|".encode())
        digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()


def shard_metadata(tensors: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """The digests a new shard carries in its safetensors header."""
    return {
        DIGEST_KEY: tensors_digest(tensors),
        COLUMNS_DIGEST_KEY: tensors_digest(tensors, only_1d=True),
    }


def check_columns(path: Path, metadata: Mapping[str, str] | None, columns: Any) -> None:
    """Refuse 1-D columns that differ from what the writer published (when it recorded it)."""
    expected = (metadata or {}).get(COLUMNS_DIGEST_KEY)
    if expected is not None and tensors_digest(columns, only_1d=True) != expected:
        raise GoldenNoiseError(
            f"corrupt shard {path}: its key and score columns do not match the digest written "
            "with them (the file was changed after it was written); restore it from a backup, "
            "or delete it and collect its rows again"
        )


def ledger_path(root: Path, rank: int) -> Path:
    return Path(root) / f"ledger-r{rank:05d}.json"


def read_ledger(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise GoldenNoiseError(f"cannot read the shard ledger {path} ({exc})") from exc
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise GoldenNoiseError(f"cannot read the shard ledger {path}: expected a JSON object")
    return data


def ledgers(root: Path) -> list[Path]:
    root = Path(root)
    return sorted(p for p in root.iterdir() if _LEDGER.match(p.name)) if root.is_dir() else []


def published_digests(root: Path) -> dict[str, str]:
    """The digest each shard was published with, by name (`rows/r00000-000000.safetensors`),
    as the ledgers record it: a shard they list must still carry it."""
    return {
        name: entry["sha256"]
        for ledger in ledgers(root)
        for name, entry in read_ledger(ledger).items()
        if "sha256" in entry
    }


def missing_shards(root: Path) -> list[str]:
    """Shards some writer published (per its ledger, confirmed) that are not on disk."""
    root = Path(root)
    return sorted(
        name
        for ledger in ledgers(root)
        for name, entry in read_ledger(ledger).items()
        if not entry.get(PENDING) and not (root / name).is_file()
    )


def check_no_missing_shards(root: Path) -> None:
    missing = missing_shards(root)
    if missing:
        shown = first_few(missing)
        raise GoldenNoiseError(
            f"{root}: {len(missing)} published shards are missing ({shown}); their rows would "
            "be silently left out. Restore them, or run the same collect command to collect "
            "those rows again"
        )


def check_listed_shards(root: Path, manifest: DatasetManifest, shards: Iterable[Path]) -> None:
    """In a dataset whose writer records digests, every shard from after that record must be
    listed in a ledger: one that is not was put there by hand, or lost its ledger (and with
    it the digest that would show a rewrite)."""
    old = manifest.shards_without_digests()
    if old is None:
        return
    root = Path(root)
    listed = published_digests(root)
    unlisted = [
        name
        for name in (path.relative_to(root).as_posix() for path in shards)
        if name not in listed and name not in old
    ]
    if unlisted:
        shown = first_few(unlisted)
        raise GoldenNoiseError(
            f"{root}: {len(unlisted)} shards are listed in no ledger ({shown}), though every "
            "shard this dataset's writer published is listed there with its digest (the ledger "
            "was deleted, or the shards were put there by hand), so nothing shows whether they "
            "were changed. Restore the ledger-r*.json files, or delete those shards and run "
            "the same collect command to collect their rows again"
        )


def check_finished_rows(root: Path, manifest: DatasetManifest, keys: set[tuple[int, int]]) -> None:
    """A finished collect's rows, and a merge's row count, must all be there: a shard deleted
    with its ledger entry (or the whole ledger), or a merge killed part way, is otherwise
    unseen, and training would run on fewer rows."""
    merged = manifest.merged_rows()
    if merged is not None and len(keys) != merged:
        shortfall = (
            f"{merged - len(keys)} of the {merged} rows its merge wrote are missing"
            if len(keys) < merged
            else f"it holds {len(keys)} rows, {len(keys) - merged} more than its merge wrote"
        )
        raise GoldenNoiseError(
            f"{root}: {shortfall} (the merge was stopped part way, or shards were deleted or "
            "added since); training on it would silently use other rows. Merge the source "
            "datasets again into a new directory"
        )
    expected = manifest.finished_keys()
    missing = [key for key in expected or () if key not in keys]
    if missing:
        raise GoldenNoiseError(
            f"{root}: {len(missing)} of the {len(expected or ())} rows that its collect finished "
            f"are missing (e.g. (prompt_index, seed) {missing[:5]}) and no ledger names their "
            "shards; they would be silently left out. Restore those shards, or run the same "
            "collect command to collect those rows again"
        )


def verify_rows(
    paths: Iterable[Path], rows_of: Mapping[Path, np.ndarray], sources: tuple[str, str]
) -> None:
    """Read each shard whole: its digest (the ledger's and the file's, when recorded), then
    every used row's latents must be finite with a plausible RMS. `rows_of[path]`: the
    offsets of the rows in use."""
    from safetensors import SafetensorError, safe_open

    published: dict[Path, dict[str, str]] = {}
    for path in paths:
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
                tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
        except (SafetensorError, OSError) as exc:
            raise GoldenNoiseError(f"corrupt shard {path}: cannot read it whole ({exc})") from exc
        root = path.parent.parent
        if root not in published:
            published[root] = published_digests(root)
        expected = metadata.get(DIGEST_KEY)
        recorded = published[root].get(f"{path.parent.name}/{path.name}")
        if recorded is not None and recorded != expected:
            carries = "carries no digest" if expected is None else "carries another digest"
            raise GoldenNoiseError(
                f"corrupt shard {path}: its writer's ledger records the digest it was published "
                f"with, and the file {carries} (it was rewritten after it was written); restore "
                "it from a backup, or delete it and collect its rows again"
            )
        if expected is not None and tensors_digest(tensors) != expected:
            raise GoldenNoiseError(
                f"corrupt shard {path}: its contents do not match the digest written with them "
                "(the file was changed after it was written); restore it from a backup, or "
                "delete it and collect its rows again"
            )
        offsets = rows_of.get(path)
        if offsets is None or not len(offsets):
            continue
        for name in sources:
            latents = tensors[name][torch.as_tensor(offsets)].float().flatten(1)
            rms = latents.pow(2).mean(1).sqrt()
            low, high = PLAUSIBLE_RMS
            bad = ~(torch.isfinite(rms) & (rms >= low) & (rms <= high))
            if bad.any():
                first = int(torch.nonzero(bad)[0])
                raise GoldenNoiseError(
                    f"shard {path}: {int(bad.sum())} rows have {name} latents that are not "
                    f"finite noise of plausible size (row {int(offsets[first])}: RMS "
                    f"{float(rms[first]):.4g}; expected between {low} and {high}); the "
                    "shard is damaged: restore it, or delete it and collect its rows again"
                )


def record_shard(root: Path, rank: int, name: str, rows: int, digest: str) -> None:
    """List a shard about to be published in its writer's ledger, pending (see the module)."""
    path = ledger_path(root, rank)
    entries = read_ledger(path) if path.is_file() else {}
    entries[name] = {"rows": rows, "sha256": digest, PENDING: True}
    atomic_write_json(path, entries)


def confirm_shard(root: Path, rank: int, name: str) -> None:
    """Mark a listed shard published: from now on its absence is a deleted shard."""
    path = ledger_path(root, rank)
    entries = read_ledger(path)
    entries[name].pop(PENDING, None)
    atomic_write_json(path, entries)


def reconcile_ledger(root: Path, rank: int) -> list[str]:
    """Drop this rank's entries whose shard is gone (the writer will redo those rows) and
    confirm the pending ones whose shard is there (the kill came after its rename)."""
    path = ledger_path(root, rank)
    if not path.is_file():
        return []
    entries = read_ledger(path)
    gone = [name for name in entries if not (Path(root) / name).is_file()]
    kept = {
        name: {field: value for field, value in entry.items() if field != PENDING}
        for name, entry in entries.items()
        if name not in gone
    }
    if kept != entries:
        atomic_write_json(path, kept)
    return gone
