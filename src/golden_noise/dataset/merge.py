"""Merge Noise Prompt Datasets into a new one, so one training run regresses onto all of them.

Why: a round of fit-from-prediction collects new prompts (or refits old ones) into a new
dataset, and the next net must learn every offset found so far, not only the last round's
(trained on the new rows alone it forgets the first prompts). The same serves collections
made on several machines. Prompts are matched by text, so one prompt is one prompt in the
result whichever datasets held it; rows keep their (prompt, seed) identity, and two rows
with one identity are refused unless `replace` says the later dataset's row wins (a refit).

Every source is verified whole (digests, finite latents of plausible size) before anything
is written, and the result is written through `DatasetWriter` (digests, ledger, atomic
shards) into the work folder `.NAME.merging/dataset` beside `out`, renamed to `out` when
complete: a killed merge leaves no dataset a reader could take for whole. The next merge
removes those leftovers only when they are provably a merge's (the marker file written into
the work folder before anything else, and nothing beside it but `dataset`); any other folder
there, or a source dataset, is refused, never deleted. The manifest records the rows written
(`notes.merged_rows`), so rows deleted later are named.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.core.progress import track
from golden_noise.core.validate import integer
from golden_noise.dataset.manifest import TEXT_DTYPE, DatasetManifest
from golden_noise.dataset.prompts import PromptRecord, read_prompts
from golden_noise.dataset.reader import NoisePromptDataset, RowTable
from golden_noise.dataset.shards import (
    EMBEDDINGS_DIR,
    EMBEDS,
    PROMPT_INDEX,
    SCORE_SOURCE,
    SCORE_TARGET,
    SEED,
    SOURCE,
    TARGET,
    extra_scorers,
    list_shards,
    open_shard,
    score_columns,
)
from golden_noise.dataset.writer import DatasetWriter

# Sources may differ only in how each round's teacher started (e.g. an offset fit's init).
_MAY_DIFFER = ("teacher_options",)
MAX_ROWS_PER_SHARD = 2**20
MERGED_ROWS = "merged_rows"  # notes key: the rows a merge wrote, checked when read
MERGE_MARKER = "golden-noise-merge"  # written first into the work folder: a merge made it
WORK_DATASET = "dataset"  # the dataset being written, inside the work folder


@dataclass(frozen=True)
class MergeSummary:
    """What a merge wrote: rows and prompts, rows replaced by a later source, and extra
    scorers left out because not every source stored them."""

    out: Path
    rows: int
    prompts: int
    replaced: int
    dropped_scores: tuple[str, ...]


@dataclass(frozen=True)
class _Source:
    root: Path
    manifest: DatasetManifest
    table: RowTable
    prompts: dict[int, PromptRecord]


def merge_datasets(
    sources: Sequence[Path | str],
    out: Path | str,
    *,
    replace_rows: bool = False,
    rows_per_shard: int = 256,
    progress: bool = True,
) -> MergeSummary:
    """Write the rows of every source dataset into the new dataset `out`.

    `replace_rows`: a row whose (prompt text, seed) an earlier source also holds replaces
    that row (the later source is the newer fit); without it such rows are refused.
    """
    roots = [Path(s) for s in sources]
    out = Path(out)
    integer("rows_per_shard", rows_per_shard, 1, MAX_ROWS_PER_SHARD)
    _check_paths(roots, out)
    opened = [_open(root) for root in roots]
    manifest = _merged_manifest(opened, replace_rows)
    text_dtype = _shared_text_dtype(opened)
    if manifest.text_dtype() != text_dtype:  # differing teacher options were nested
        manifest.teacher_options = {**manifest.teacher_options, TEXT_DTYPE: text_dtype}
    texts, records = _prompt_order(opened)
    new_index = {text: number for number, text in enumerate(texts)}
    keys = [_new_keys(source, new_index) for source in opened]  # once per source
    winners, replaced = _plan_rows(opened, keys, texts, replace_rows)
    extras = _common_extra_scores(opened)
    dropped = tuple(sorted(set().union(*(_extra_scores(s) for s in opened)) - set(extras)))
    for source in opened:  # everything read and checked before the first write
        NoisePromptDataset(source.root, table=source.table, manifest=source.manifest).verify()
    embeddings = _gather_embeddings(opened, new_index, texts)
    manifest.notes[MERGED_ROWS] = len(winners)
    work = _start_work_folder(out)
    partial = work / WORK_DATASET
    with DatasetWriter(partial, manifest, rows_per_shard=rows_per_shard, prompts=records) as w:
        w.add_embeddings(list(embeddings), torch.stack(list(embeddings.values())))
        _copy_rows(opened, keys, winners, extras, w, progress)
    for lock in partial.glob(".writer-*.lock"):
        lock.unlink()
    if out.exists():
        out.rmdir()  # checked empty above
    partial.rename(out)  # the whole dataset appears at once, or not at all
    shutil.rmtree(work)  # only the marker is left
    return MergeSummary(out, len(winners), len(texts), replaced, dropped)


def _work_folder(out: Path) -> Path:
    return out.parent / f".{out.name}.merging"


def _made_by_merge(work: Path) -> bool:
    """Whether `work` is what a merge leaves: a real folder holding its marker and at most
    the dataset it was writing (a user's folder, or anything put beside, is not)."""
    if work.is_symlink() or not work.is_dir() or not (work / MERGE_MARKER).is_file():
        return False
    return {entry.name for entry in work.iterdir()} <= {MERGE_MARKER, WORK_DATASET}


def _check_work_folder(roots: list[Path], out: Path) -> None:
    """A merge deletes the leftovers in its work folder: refuse a work folder that is (or
    holds, or lies inside) a source, or that some merge did not make, before reading."""
    work = _work_folder(out)
    target = work.resolve()
    for root in roots:
        path = root.resolve()
        if path == target or target in path.parents or path in target.parents:
            raise GoldenNoiseError(
                f"source dataset {root} is, holds or lies inside {work}, the folder a merge "
                f"into {out} writes in (and clears) before renaming it to {out}; move the "
                "source, or choose another --out"
            )
    _check_leftover(work, out)


def _check_leftover(work: Path, out: Path) -> None:
    if (work.exists() or work.is_symlink()) and not _made_by_merge(work):
        raise GoldenNoiseError(
            f"{work} exists but was not left by a merge (expected a folder holding "
            f"{MERGE_MARKER} and at most {WORK_DATASET}/); a merge into {out} writes there "
            "first and would delete it: move or remove it yourself, or choose another --out"
        )


def _start_work_folder(out: Path) -> Path:
    """A fresh work folder whose marker is its first content, so a killed merge's leftovers
    are told from anything else (they are removed here, checked again: the sources took a
    while to read)."""
    work = _work_folder(out)
    _check_leftover(work, out)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    (work / MERGE_MARKER).write_text(f"a golden-noise merge into {out} writes here\n")
    return work


def _check_paths(roots: list[Path], out: Path) -> None:
    if not roots:
        raise GoldenNoiseError("merge needs at least one source dataset; got none")
    resolved = [r.resolve() for r in roots]
    repeated = sorted({str(r) for r in roots if resolved.count(r.resolve()) > 1})
    if repeated:
        raise GoldenNoiseError(f"each source dataset may be given once; repeated: {repeated}")
    target = out.resolve()
    for root, path in zip(roots, resolved, strict=True):
        if target == path or path in target.parents:
            raise GoldenNoiseError(
                f"--out {out} lies inside source dataset {root}; merge into a new directory"
            )
    if out.is_symlink():  # the finished dataset is renamed to `out`, which a link cannot take
        raise GoldenNoiseError(
            f"--out {out} is a symbolic link (to {out.readlink()}); a merge renames its finished "
            "dataset into place there, which a link cannot take: name a new or empty folder "
            "itself (the link's target, say)"
        )
    if out.exists() and not out.is_dir():
        raise GoldenNoiseError(
            f"--out {out} is a file; expected a new or empty folder for the merged dataset: "
            "choose another path"
        )
    if out.is_dir() and any(out.iterdir()):
        raise GoldenNoiseError(
            f"--out {out} already exists and is not an empty directory; a merge writes a new "
            "dataset: choose a new directory"
        )
    _check_work_folder(roots, out)


def _open(root: Path) -> _Source:
    manifest = DatasetManifest.load(root)
    table = RowTable.load(root, manifest)
    if not len(table):
        raise GoldenNoiseError(f"source dataset {root} has no rows; expected a collected dataset")
    return _Source(root, manifest, table, read_prompts(root))


def _merged_manifest(opened: list[_Source], replace_rows: bool) -> DatasetManifest:
    first = opened[0]
    for other in opened[1:]:
        diff = {
            k: v
            for k, v in first.manifest.differences(other.manifest).items()
            if k not in _MAY_DIFFER
        }
        if other.manifest.margin != first.manifest.margin:
            diff["margin"] = (first.manifest.margin, other.manifest.margin)
        if diff:
            detail = "; ".join(
                f"{k}: {first.root} has {a!r}, {other.root} has {b!r}" for k, (a, b) in diff.items()
            )
            raise GoldenNoiseError(
                f"the datasets were made differently and cannot train one net together ({detail}); "
                f"only {', '.join(_MAY_DIFFER)} may differ"
            )
    options = [s.manifest.teacher_options for s in opened]
    merged_options = options[0] if all(o == options[0] for o in options) else {"sources": options}
    origin = [
        {
            "dataset": str(s.root),
            "rows": len(s.table),
            "teacher_options": s.manifest.teacher_options,
            "notes": s.manifest.notes,
        }
        for s in opened
    ]
    data = first.manifest.to_dict()
    for stamp in ("created", "package_version"):  # this merge's, not the first source's
        del data[stamp]
    data["teacher_options"] = merged_options
    data["notes"] = {"merged_from": origin, "replace_rows": replace_rows}
    return DatasetManifest.from_dict(data)


def _shared_text_dtype(opened: list[_Source]) -> str | None:
    """The dtype every source's text embeddings were encoded in. A merge may join sources
    whose teacher options differ, and an import records its encoder's dtype there: fp16- and
    fp32-encoded embeddings (up to 0.002 apart, inside the tolerance `_check_same_embedding`
    allows) must not train one net side by side, and a source that records none cannot be
    told apart from either."""

    def encoded_in(source: _Source) -> str:
        return source.manifest.text_dtype() or "a dtype it does not record"

    first = opened[0]
    for other in opened[1:]:
        if first.manifest.text_dtype() != other.manifest.text_dtype():
            raise GoldenNoiseError(
                f"{first.root} holds text embeddings encoded in {encoded_in(first)}, "
                f"{other.root} in {encoded_in(other)}; one dataset holds one encoder dtype's: "
                "merge datasets encoded in one dtype (import or collect again with --dtype)"
            )
    return first.manifest.text_dtype()


def _prompt_order(opened: list[_Source]) -> tuple[list[str], list[PromptRecord]]:
    """Every prompt that has rows, once, in first-seen order; labels from its first source."""
    texts: list[str] = []
    records: list[PromptRecord] = []
    seen: set[str] = set()
    for source in opened:
        used = np.unique(source.table.columns[PROMPT_INDEX]).tolist()
        missing = [i for i in used if i not in source.prompts]
        if missing:
            raise GoldenNoiseError(
                f"{source.root}: rows refer to prompt indices {missing[:10]} that its "
                "prompts.jsonl does not hold; the dataset is damaged"
            )
        for index in used:
            record = source.prompts[index]
            if record.text not in seen:
                seen.add(record.text)
                records.append(replace(record, index=len(texts)))
                texts.append(record.text)
    return texts, records


def _plan_rows(
    opened: list[_Source], keys: list[list[tuple[int, int]]], texts: list[str], replace_rows: bool
) -> tuple[dict[tuple[int, int], tuple[int, int]], int]:
    """{(new prompt index, seed): (source number, table row)} for the rows that are kept."""
    winners: dict[tuple[int, int], tuple[int, int]] = {}
    replaced = 0
    for number, (source, mine) in enumerate(zip(opened, keys, strict=True)):
        clashes = [k for k in mine if k in winners]
        if clashes and not replace_rows:
            first_clash = clashes[0]
            earlier = opened[winners[first_clash][0]].root
            text = texts[first_clash[0]]
            raise GoldenNoiseError(
                f"{len(clashes)} rows of {source.root} have the prompt and seed of rows in an "
                f"earlier source (e.g. {text!r}, seed {first_clash[1]}, also in {earlier}); "
                "pass --replace to keep the later dataset's rows (a refit), or merge datasets "
                "with distinct prompts or seeds"
            )
        replaced += len(clashes)
        for row, key in enumerate(mine):
            winners[key] = (number, row)
    return winners, replaced


def _remap(source: _Source, new_index: dict[str, int]) -> dict[int, int]:
    """The source's prompt indices -> the merged dataset's, for the prompts that have rows."""
    return {i: new_index[r.text] for i, r in source.prompts.items() if r.text in new_index}


def _new_keys(source: _Source, new_index: dict[str, int]) -> list[tuple[int, int]]:
    """(merged prompt index, seed) of each of the source's table rows, in table order."""
    cols, remap = source.table.columns, _remap(source, new_index)
    return [(remap[int(p)], int(s)) for p, s in zip(cols[PROMPT_INDEX], cols[SEED], strict=True)]


def _extra_scores(source: _Source) -> set[str]:
    return extra_scorers(source.table.columns)


def _common_extra_scores(opened: list[_Source]) -> tuple[str, ...]:
    return tuple(sorted(set.intersection(*(_extra_scores(s) for s in opened))))


def _gather_embeddings(
    opened: list[_Source], new_index: dict[str, int], texts: list[str]
) -> dict[int, torch.Tensor]:
    """Each prompt's text embedding, from the first source that holds it; a prompt whose
    embeddings differ between sources is refused (an edited prompts.jsonl, or another
    encoder), since its rows would train on the wrong text."""
    found: dict[int, tuple[torch.Tensor, Path]] = {}
    for source in opened:
        remap = _remap(source, new_index)
        for path in list_shards(source.root / EMBEDDINGS_DIR):
            handle = open_shard(path)
            embeds = handle.get_tensor(EMBEDS)
            for offset, index in enumerate(handle.get_tensor(PROMPT_INDEX).tolist()):
                if index not in remap:
                    continue
                known = found.setdefault(remap[index], (embeds[offset], source.root))
                _check_same_embedding(known, (embeds[offset], source.root), texts[remap[index]])
    return {index: embedding for index, (embedding, _) in found.items()}


def _check_same_embedding(
    known: tuple[torch.Tensor, Path],
    other: tuple[torch.Tensor, Path],
    text: str,
) -> None:
    # Stored in float16 (relative step 2**-11) and encoded on any device: one encoder's
    # embeddings of one text agree far inside 1% of their scale; another text's differ by
    # the scale itself in the tokens that differ.
    first, second = known[0].float(), other[0].float()
    scale = float(first.abs().max()) or 1.0
    gap = float((first - second).abs().max())
    if gap > 1e-2 * scale:
        raise GoldenNoiseError(
            f"prompt {text!r} has different text embeddings in {known[1]} and {other[1]} "
            f"(largest difference {gap:.3g} at scale {scale:.3g}): one of their prompts.jsonl "
            "was edited, or they encode prompts differently; the rows would train on the "
            "wrong text"
        )


def _copy_rows(
    opened: list[_Source],
    keys: list[list[tuple[int, int]]],
    winners: dict[tuple[int, int], tuple[int, int]],
    extras: tuple[str, ...],
    writer: DatasetWriter,
    progress: bool,
) -> None:
    kept = {(number, row) for number, row in winners.values()}
    work: list[tuple[int, Path, np.ndarray, np.ndarray]] = []
    for number, source in enumerate(opened):
        table = source.table
        for shard_no, path in enumerate(table.shards):
            rows = np.flatnonzero(table.shard_id == shard_no)
            rows = np.array([r for r in rows if (number, int(r)) in kept], dtype=np.int64)
            if len(rows):
                work.append((number, path, rows, table.offset[rows]))
    for number, path, rows, offsets in track(work, "merging shards", disable=not progress):
        source, mine = opened[number], keys[number]
        handle = open_shard(path)
        at = torch.as_tensor(offsets)
        cols = source.table.columns
        scores: dict[str, Any] = {
            name: (
                cols[score_columns(name)[0]][rows],
                cols[score_columns(name)[1]][rows],
            )
            for name in extras
        }
        writer.add(
            handle.get_tensor(SOURCE)[at],
            handle.get_tensor(TARGET)[at],
            [mine[r][0] for r in rows],
            [mine[r][1] for r in rows],
            cols[SCORE_SOURCE][rows],
            cols[SCORE_TARGET][rows],
            extra_scores=scores,
        )
