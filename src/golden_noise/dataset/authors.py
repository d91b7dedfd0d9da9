"""Import a dataset collected with the authors' code into our layout.

Their collector writes one `{index}_{seed}.npz` per pair (`arr_0` source latent `[1, C, H, W]`,
`arr_1` target, `arr_2` the prompt index) and a JSONL with one object per prompt:
`index`, `seed`, `caption`, `original_score_list`, `optimized_score_list` (score lists in
the order of their scorers; their released collector stores one score, HPSv2.1:
`hpsv2.score(..., hps_version="v2.1")`, hence the default name "hpsv2.1"). Identical captions
become one prompt here, so a prompt's text embedding is computed once and a split by prompt
is one. Import is resumable: rows already present are skipped.

Latents are kept at the precision they were saved in: the authors' fp16 pipeline writes
float16 pairs (stored as float16), a float32 run float32 ones (stored as float32; a later
float32 file is never squeezed into a float16 dataset). The pairs must have the latent shape
of the pipeline named for the import, so pairs from another model or size are refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import Progress

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.core.seeds import MAX_SEED
from golden_noise.core.validate import MAX_BATCH, integer
from golden_noise.dataset.manifest import DatasetManifest
from golden_noise.dataset.prompts import PromptRecord
from golden_noise.dataset.writer import DatasetWriter

Encoder = Callable[[list[str]], torch.Tensor]
_FILE_NAME = re.compile(r"^(\d+)_(\d+)\.npz$")


@dataclass
class AuthorsRecord:
    index: int
    seed: int
    caption: str
    source_scores: list[float]
    target_scores: list[float]


@dataclass
class ImportSummary:
    rows_written: int
    rows_already_present: int
    files_without_jsonl_row: list[str]
    prompts: int


def read_authors_jsonl(path: Path, n_scores: int) -> dict[int, AuthorsRecord]:
    """The authors' per-prompt JSONL by their index, checking each line's fields."""
    records: dict[int, AuthorsRecord] = {}
    lines_of: dict[int, int] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise GoldenNoiseError(f"cannot read the authors' JSONL {path}: {exc}") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            record = AuthorsRecord(
                index=int(data["index"]),
                seed=int(data["seed"]),
                caption=str(data["caption"]),
                source_scores=[float(v) for v in data["original_score_list"]],
                target_scores=[float(v) for v in data["optimized_score_list"]],
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise GoldenNoiseError(
                f"{path} line {number}: expected a JSON object with index, seed, caption, "
                f"original_score_list and optimized_score_list; got {line[:100]!r} ({exc})"
            ) from exc
        if not 0 <= record.seed <= MAX_SEED:  # the seeds every other command takes
            raise GoldenNoiseError(
                f"{path} line {number}: seed must be between 0 and {MAX_SEED}; got {record.seed}"
            )
        for scores in (record.source_scores, record.target_scores):
            if len(scores) != n_scores:
                raise GoldenNoiseError(
                    f"{path} line {number}: expected {n_scores} scores per list (names given: "
                    f"{n_scores}); found {len(scores)}"
                )
        if record.index in records:
            raise GoldenNoiseError(
                f"{path} line {number}: index {record.index} appears a second time (first at "
                f"line {lines_of[record.index]}); each index names one prompt and seed, so the "
                "file is ambiguous: remove one of the two lines"
            )
        records[record.index] = record
        lines_of[record.index] = number
    if not records:
        raise GoldenNoiseError(f"the authors' JSONL {path} holds no rows")
    return records


def _load_pair(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    try:
        with np.load(path) as data:
            source, target, index = data["arr_0"], data["arr_1"], data["arr_2"]
    except (OSError, KeyError, ValueError) as exc:
        raise GoldenNoiseError(
            f"{path}: expected an .npz with arr_0 (source), arr_1 (target), arr_2 (index); {exc}"
        ) from exc
    source = source.reshape(source.shape[-3:]) if source.ndim > 3 else source
    target = target.reshape(target.shape[-3:]) if target.ndim > 3 else target
    if source.shape != target.shape or source.ndim != 3:
        raise GoldenNoiseError(
            f"{path}: expected source and target latents of one shape (C, H, W) or (1, C, H, W); "
            f"got {data_shape(source)} and {data_shape(target)}"
        )
    return source, target, int(np.asarray(index).reshape(-1)[0])


def _stored_index(path: Path) -> int:
    """A pair's `arr_2` alone (np.load reads one member of the archive, not the latents)."""
    try:
        with np.load(path) as data:
            return int(np.asarray(data["arr_2"]).reshape(-1)[0])
    except (OSError, KeyError, ValueError, IndexError) as exc:
        raise GoldenNoiseError(
            f"{path}: expected an .npz with arr_0 (source), arr_1 (target), arr_2 (index); {exc}"
        ) from exc


def data_shape(array: np.ndarray) -> tuple[int, ...]:
    return tuple(int(v) for v in array.shape)


def _latent_dtype(array: np.ndarray, path: Path) -> str:
    """The manifest's latent dtype that holds `array` without loss."""
    if array.dtype == np.float16:
        return "float16"
    if array.dtype in (np.float32, np.float64):
        return "float32"
    raise GoldenNoiseError(f"{path}: expected float16 or float32 latents; got {array.dtype}")


def _refuse_repeated_pairs(records: dict[int, AuthorsRecord]) -> None:
    """Rows are keyed by (prompt text, seed): two entries with one caption and one seed would
    be one row, and the second pair would be dropped as "already present"."""
    first: dict[tuple[str, int], int] = {}
    for record in sorted(records.values(), key=lambda r: r.index):
        earlier = first.setdefault((record.caption, record.seed), record.index)
        if earlier != record.index:
            raise GoldenNoiseError(
                f"JSONL entries index {earlier} and index {record.index} both have caption "
                f"{record.caption!r} and seed {record.seed}; a dataset holds one pair per "
                "caption and seed, so one would be dropped: remove one entry (and its npz "
                "file), or import them into separate datasets"
            )


def import_authors(
    npz_dir: Path | str,
    jsonl: Path | str,
    out: Path | str,
    encode: Encoder,
    *,
    family: str,
    model: str | None = None,
    score_names: Sequence[str] = ("hpsv2.1",),
    latent_shape: Sequence[int] | None = None,
    sampler: dict[str, Any] | None = None,
    w_l: float | None = 5.5,
    w_w: float | None = 1.0,
    margin: float | None = 0.0,
    batch_size: int = 64,
    progress: bool = True,
) -> ImportSummary:
    """Convert the authors' npz+jsonl layout into a dataset at `out`.

    `encode` maps a list of prompt texts to per-token embeddings `[B, L, D]` (the pipeline's
    own encoder, as NPNet sees it); it runs once per distinct caption not cached yet.
    `score_names[0]` becomes the primary score; the rest are stored as extra scorer columns.
    `margin=0.0` records the authors' filter (keep when the target scores higher).
    `latent_shape`: the `(C, H, W)` the pipeline makes; pairs of another shape are refused.
    """
    npz_dir, out = Path(npz_dir), Path(out)
    integer("batch_size", batch_size, 1, MAX_BATCH)
    if not score_names:
        raise GoldenNoiseError("score_names must name at least the primary scorer")
    records = read_authors_jsonl(Path(jsonl), len(score_names))
    files = sorted(p for p in npz_dir.rglob("*.npz"))
    if not files:
        raise GoldenNoiseError(f"no .npz files under {npz_dir}")
    for path in files:  # a name that its arr_2 or its JSONL row contradicts, before any write
        named = _FILE_NAME.match(path.name)
        if not named:
            continue
        if int(named.group(1)) != (index := _stored_index(path)):
            raise GoldenNoiseError(
                f"{path}: its name says index {int(named.group(1))}, but its arr_2 says index "
                f"{index}; expected the same index (it picks the caption): fix the file name "
                "or remove the file"
            )
        record = records.get(index)
        if record is not None and int(named.group(2)) != record.seed:
            raise GoldenNoiseError(
                f"{path}: its name says seed {int(named.group(2))}, but the JSONL row of index "
                f"{record.index} says seed {record.seed}; expected one seed per pair: fix the "
                "file name or the row"
            )
    _refuse_repeated_pairs(records)
    prompt_of_caption: dict[str, int] = {}
    for record in sorted(records.values(), key=lambda r: r.index):
        prompt_of_caption.setdefault(record.caption, len(prompt_of_caption))
    prompts = [PromptRecord(index=i, text=t) for t, i in prompt_of_caption.items()]

    first_source, _, _ = _load_pair(files[0])
    if latent_shape is not None and data_shape(first_source) != tuple(latent_shape):
        raise GoldenNoiseError(
            f"{files[0]}: latents of shape {data_shape(first_source)}, but the pipeline makes "
            f"{tuple(latent_shape)}; these pairs come from another model or image size: name "
            "the pipeline (and size) that made them"
        )
    first_text = encode([prompts[0].text])  # also tells the embedding shape
    manifest = DatasetManifest(
        family=family,
        model=model,
        latent_shape=data_shape(first_source),
        text_shape=tuple(first_text.shape[1:]),
        latent_dtype=_latent_dtype(first_source, files[0]),
        sampler=dict(sampler or {}),
        teacher="redenoise",
        teacher_options={"imported_from": "authors' npz+jsonl"},
        w_l=w_l,
        w_w=w_w,
        scorer=score_names[0],
        margin=margin,
    )
    written = present = 0
    orphans: list[str] = []
    with (
        DatasetWriter(out, manifest, prompts=prompts, rows_per_shard=batch_size) as writer,
        Progress(disable=not progress) as bar,
    ):
        task = bar.add_task("importing pairs", total=len(files))
        if not writer.has_embedding(0):
            writer.add_embeddings([0], first_text.float())
        writer.embed_missing(lambda texts: encode(texts).float(), batch_size)  # shard deleted
        for start in range(0, len(files), batch_size):
            batch: list[tuple[np.ndarray, np.ndarray, int, AuthorsRecord, int]] = []
            batch_keys: set[tuple[int, int]] = set()
            for path in files[start : start + batch_size]:
                source, target, index = _load_pair(path)
                if data_shape(source) != writer.manifest.latent_shape:
                    raise GoldenNoiseError(
                        f"{path}: latents of shape {data_shape(source)}, but the dataset (from "
                        f"{files[0].name}) holds {writer.manifest.latent_shape}; import the files "
                        "of each shape into their own dataset"
                    )
                if writer.manifest.latent_dtype == "float16" != _latent_dtype(source, path):
                    raise GoldenNoiseError(
                        f"{path}: {source.dtype} latents, but the dataset (from "
                        f"{files[0].name}) stores float16, which would lose their precision; "
                        "import the float32 files into their own dataset"
                    )
                record = records.get(index)
                if record is None:
                    orphans.append(str(path))
                    continue
                named = _FILE_NAME.match(path.name)
                key = (
                    prompt_of_caption[record.caption],
                    int(named.group(2)) if named else record.seed,
                )
                if writer.has(*key) or key in batch_keys:
                    present += 1
                    continue
                batch_keys.add(key)
                batch.append((source, target, key[0], record, key[1]))
            bar.advance(task, min(batch_size, len(files) - start))
            if not batch:
                continue
            needed = sorted({b[2] for b in batch if not writer.has_embedding(b[2])})
            if needed:
                writer.add_embeddings(needed, encode([prompts[p].text for p in needed]).float())
            extras = {
                name: (
                    [b[3].source_scores[k] for b in batch],
                    [b[3].target_scores[k] for b in batch],
                )
                for k, name in enumerate(score_names)
                if k > 0
            }
            writer.add(
                source=torch.from_numpy(np.stack([b[0] for b in batch]).astype(np.float32)),
                target=torch.from_numpy(np.stack([b[1] for b in batch]).astype(np.float32)),
                prompt_index=[b[2] for b in batch],
                seed=[b[4] for b in batch],
                score_source=[b[3].source_scores[0] for b in batch],
                score_target=[b[3].target_scores[0] for b in batch],
                extra_scores=extras,
            )
            written += len(batch)
    return ImportSummary(written, present, orphans, len(prompts))
