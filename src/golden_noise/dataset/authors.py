"""Import a dataset collected with the authors' code into our layout.

Their collector writes one `{index}_{seed}.npz` per pair (`arr_0` source latent `[1, C, H, W]`,
`arr_1` target, `arr_2` the prompt index) and a JSONL with one object per prompt:
`index`, `seed`, `caption`, `original_score_list`, `optimized_score_list` (score lists in
the order of their scorers; their released collector stores one score, HPSv2.1:
`hpsv2.score(..., hps_version="v2.1")`, hence the default name "hpsv2.1"). Identical captions
become one prompt here, so a prompt's text embedding is computed once and a split by prompt
is one. Import is resumable: rows already present are skipped. Every file and JSONL line is
checked before anything is written, and a row with two files (a second run's folder) is
refused as ambiguous rather than imported from whichever path sorts first.

Latents are kept at the precision they were saved in: the authors' fp16 pipeline writes
float16 pairs (stored as float16), a float32 run float32 ones (stored as float32). The first
file's source decides (or, on resume, the dataset's manifest), and every source and target
must have that precision: a float32 file, or a float32 target beside a float16 source, is
never squeezed into a float16 dataset, and one dataset never mixes precisions. The pairs
must have the latent shape of the pipeline named for the import, so pairs from another model
or size are refused.

The text embeddings are as precise as the text encoder that made them (an fp16 encoder's are up
to 0.002 away from an fp32 one's), so the dtype `encode` returns is recorded in the manifest's
`teacher_options` as `text_encoder_dtype`, and a resumed import must encode in that dtype. A
dataset imported before this record does not say which dtype its embeddings have: it still
reads, but an import into it is refused until the key is added (see `_refuse_other_text_dtype`).
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.lib.format as npy
import torch
from rich.progress import Progress

from golden_noise.core.errors import GoldenNoiseError, first_few
from golden_noise.core.seeds import MAX_SEED
from golden_noise.core.text_lines import text_lines
from golden_noise.core.validate import MAX_BATCH, integer, number
from golden_noise.dataset.manifest import MANIFEST_NAME, TEXT_DTYPE, DatasetManifest
from golden_noise.dataset.prompts import PromptRecord
from golden_noise.dataset.shards import ROWS_DIR, extra_scorers, list_shards, open_shard
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


@dataclass(frozen=True)
class _PairFile:
    """One pair file as its headers describe it: `index` (arr_2), the latents' `shape`
    `(C, H, W)`, and per latent array (arr_0, arr_1) its `dtypes` and the manifest dtype
    that holds it without loss (`stored`)."""

    path: Path
    index: int
    shape: tuple[int, ...]
    dtypes: tuple[np.dtype, np.dtype]
    stored: tuple[str, str]


_LATENT_ARRAYS = ("arr_0 (source)", "arr_1 (target)")


_SCORE_LISTS = ("original_score_list", "optimized_score_list")


def _record(data: Any) -> AuthorsRecord:
    """One JSONL entry, each field of the JSON type it must have: a fractional index or seed
    (1.5 was stored as 1), a caption that is no string (null became "None") or a score that
    is no finite number (NaN was refused only after the dataset was begun) is refused."""
    fields = ("index", "seed", "caption", *_SCORE_LISTS)
    if not isinstance(data, dict) or not set(fields) <= set(data):
        got = f"keys {sorted(data)}" if isinstance(data, dict) else f"{data!r:.100}"
        raise GoldenNoiseError(f"expected a JSON object with {', '.join(fields)}; got {got}")
    if not isinstance(data["caption"], str):
        raise GoldenNoiseError(f"caption must be a string; got {data['caption']!r}")
    scores = []
    for name in _SCORE_LISTS:
        if not isinstance(data[name], list):
            raise GoldenNoiseError(f"{name} must be a list of numbers; got {data[name]!r}")
        scores.append([number(f"{name} entry", value) for value in data[name]])
    index, seed = integer("index", data["index"]), integer("seed", data["seed"])
    if not 0 <= seed <= MAX_SEED:  # the seeds every other command takes
        raise GoldenNoiseError(f"seed must be between 0 and {MAX_SEED}; got {seed}")
    return AuthorsRecord(index, seed, data["caption"], *scores)


def read_authors_jsonl(path: Path, n_scores: int) -> dict[int, AuthorsRecord]:
    """The authors' per-prompt JSONL by their index, checking each line's fields."""
    records: dict[int, AuthorsRecord] = {}
    lines_of: dict[int, int] = {}
    try:
        lines = text_lines(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise GoldenNoiseError(f"cannot read the authors' JSONL {path}: {exc}") from exc
    for line_number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path} line {line_number}"
        try:
            record = _record(json.loads(line))
        except json.JSONDecodeError as exc:
            raise GoldenNoiseError(f"{where}: not JSON ({exc}); got {line[:100]!r}") from exc
        except GoldenNoiseError as exc:
            raise GoldenNoiseError(f"{where}: {exc}") from exc
        for scores in (record.source_scores, record.target_scores):
            if len(scores) != n_scores:
                raise GoldenNoiseError(
                    f"{where}: expected {n_scores} scores per list (names given: "
                    f"{n_scores}); found {len(scores)}"
                )
        if record.index in records:
            raise GoldenNoiseError(
                f"{where}: index {record.index} appears a second time (first at "
                f"line {lines_of[record.index]}); each index names one prompt and seed, so the "
                "file is ambiguous: remove one of the two lines"
            )
        records[record.index] = record
        lines_of[record.index] = line_number
    if not records:
        raise GoldenNoiseError(f"the authors' JSONL {path} holds no rows")
    return records


def _inspect_pair(path: Path) -> _PairFile:
    """A pair file's index and latent shape and dtype, read from the npy headers inside the
    npz (np.load would read the latents whole): every file is checked before anything is
    written, and the latents are read once, when they are imported."""
    expected = f"{path}: expected an .npz with arr_0 (source), arr_1 (target), arr_2 (index)"
    headers = []
    try:
        with zipfile.ZipFile(path) as archive:
            for name in ("arr_0", "arr_1"):
                with archive.open(f"{name}.npy") as handle:
                    version = npy.read_magic(handle)
                    header = (
                        npy.read_array_header_1_0
                        if version == (1, 0)
                        else npy.read_array_header_2_0
                    )
                    shape, _, dtype = header(handle)
                    headers.append((tuple(int(v) for v in shape), dtype))
            with archive.open("arr_2.npy") as handle:
                stored_index = npy.read_array(handle)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise GoldenNoiseError(f"{expected}; {exc}") from exc
    if stored_index.size != 1:  # which value names the pair's caption would be a guess
        raise GoldenNoiseError(
            f"{path}: expected one prompt index in arr_2 (the pair's JSONL index); got "
            f"{stored_index.size} values {stored_index.reshape(-1)[:5].tolist()}"
        )
    try:
        index = integer("arr_2", stored_index.reshape(-1)[0].item())
    except GoldenNoiseError as exc:
        raise GoldenNoiseError(f"{expected}: {exc}") from exc
    (source, source_dtype), (target, target_dtype) = headers
    leading = (*source[:-3], *target[:-3])  # (1, C, H, W) is one latent; (2, C, H, W) is not
    if len(source) < 3 or source[-3:] != target[-3:] or any(d != 1 for d in leading):
        raise GoldenNoiseError(
            f"{path}: expected source and target latents of one shape (C, H, W) or (1, C, H, W); "
            f"got {source} and {target}"
        )
    dtypes = (source_dtype, target_dtype)
    stored = (_latent_dtype(source_dtype, path), _latent_dtype(target_dtype, path))
    return _PairFile(path, index, source[-3:], dtypes, stored)


def _load_latents(pair: _PairFile) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(pair.path) as data:
            return data["arr_0"].reshape(pair.shape), data["arr_1"].reshape(pair.shape)
    except (OSError, KeyError, ValueError) as exc:
        raise GoldenNoiseError(
            f"{pair.path}: expected an .npz with arr_0 (source), arr_1 (target), arr_2 (index); "
            f"{exc}"
        ) from exc


def _latent_dtype(dtype: np.dtype, path: Path) -> str:
    """The manifest's latent dtype for latents of `dtype`: float16 and float32 are kept as they
    are; float64 is stored as float32, the precision pipelines sample in."""
    if dtype == np.float16:
        return "float16"
    if dtype in (np.float32, np.float64):
        return "float32"
    raise GoldenNoiseError(f"{path}: expected float16 or float32 latents; got {dtype}")


def _refuse_mixed_latents(
    files: Sequence[_PairFile], latent_shape: Sequence[int] | None, out: Path
) -> None:
    """The first file sets the dataset's latent shape, and its source the dtype (the manifest's
    on resume): every source and target must fit them, checked before anything is written. A
    float32 array would be rounded in a float16 dataset, and a float16 one accepted into a
    float32 dataset would make the outcome depend on which file sorts first."""
    first = files[0]
    if (out / MANIFEST_NAME).is_file():
        dtype, decided_by = DatasetManifest.load(out).latent_dtype, f"at {out}"
    else:
        dtype, decided_by = first.stored[0], f"from {first.path.name}'s arr_0"
    if latent_shape is not None and first.shape != tuple(latent_shape):
        raise GoldenNoiseError(
            f"{first.path}: latents of shape {first.shape}, but the pipeline makes "
            f"{tuple(latent_shape)}; these pairs come from another model or image size: name "
            "the pipeline (and size) that made them"
        )
    for pair in files[1:]:
        if pair.shape != first.shape:
            raise GoldenNoiseError(
                f"{pair.path}: latents of shape {pair.shape}, but the dataset (from "
                f"{first.path.name}) holds {first.shape}; import the files of each shape into "
                "their own dataset"
            )
    for pair in files:
        for array, got, stored in zip(_LATENT_ARRAYS, pair.dtypes, pair.stored, strict=True):
            if stored != dtype:
                raise GoldenNoiseError(
                    f"{pair.path}: {array} holds {got} latents, but the dataset ({decided_by}) "
                    f"stores {dtype}; expected {dtype} sources and targets in every file, so "
                    "none is rounded or kept at another precision: import the files of each "
                    "precision into their own dataset"
                )


def _refuse_contradicting_files(
    files: Sequence[_PairFile], records: dict[int, AuthorsRecord]
) -> None:
    """A file's name must agree with its arr_2 and its JSONL row, and each row must have one
    file: of two files for one index and seed (a second run's folder, a copy under another
    name) only the first would be imported, the other reported as already present."""
    sources: dict[int, list[str]] = {}
    for pair in files:
        named = _FILE_NAME.match(pair.path.name)
        if named and int(named.group(1)) != pair.index:
            raise GoldenNoiseError(
                f"{pair.path}: its name says index {int(named.group(1))}, but its arr_2 says "
                f"index {pair.index}; expected the same index (it picks the caption): fix the "
                "file name or remove the file"
            )
        record = records.get(pair.index)
        if record is None:
            continue
        if named and int(named.group(2)) != record.seed:
            raise GoldenNoiseError(
                f"{pair.path}: its name says seed {int(named.group(2))}, but the JSONL row of "
                f"index {record.index} says seed {record.seed}; expected one seed per pair: fix "
                "the file name or the row"
            )
        sources.setdefault(pair.index, []).append(str(pair.path))
    for index, paths in sorted(sources.items()):
        if len(paths) > 1:
            raise GoldenNoiseError(
                f"{len(paths)} npz files hold the pair of JSONL index {index} (seed "
                f"{records[index].seed}): {first_few(paths)}; expected one file per index and "
                "seed, so which pair to import is ambiguous: remove all but one"
            )


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


def _refuse_other_text_dtype(out: Path, text_dtype: str) -> None:
    """A resumed import must encode its new prompts in the dtype the dataset's embeddings were
    encoded in: one dataset would otherwise hold fp16- and fp32-encoded prompts side by side.
    A manifest without the record (an import from before it) is read as "not known" and
    refused too, as collect refuses a dataset without its pipeline dtype."""
    if not (out / MANIFEST_NAME).is_file():
        return
    recorded = DatasetManifest.load(out).text_dtype()
    if recorded is None:
        raise GoldenNoiseError(
            f"{out / MANIFEST_NAME} does not record the dtype its prompts' text embeddings were "
            f"encoded in, so they cannot be checked against this run's {text_dtype}; import "
            f'into a new folder, or, if you know it, add "{TEXT_DTYPE}": "{text_dtype}" to its '
            '"teacher_options" entry'
        )
    if recorded != text_dtype:
        raise GoldenNoiseError(
            f"{out} records text embeddings encoded in {recorded}; this run encodes in "
            f"{text_dtype}, and one dataset cannot hold both: pass --dtype {recorded} to "
            "continue it, or import into a new folder"
        )


SCORE_NAMES = "score_names"  # teacher_options key: the JSONL's score list entries, in order


def _score_names_record(out: Path, score_names: Sequence[str]) -> dict[str, list[str]]:
    """The `teacher_options` entry naming the JSONL's score list entries in order. Their
    columns are filled by position, so a resume that named them in another order would file
    one scorer's values under another's name: it is refused. A dataset from before this
    record is judged by what it holds: its primary score is the manifest's `scorer`, but
    extra columns cannot be told apart, so resuming one that has them is refused too."""
    names = list(score_names)
    if not (out / MANIFEST_NAME).is_file():
        return {SCORE_NAMES: names}
    existing = DatasetManifest.load(out)
    recorded = existing.teacher_options.get(SCORE_NAMES)
    if recorded is None:
        shards = list_shards(out / ROWS_DIR)
        extra = sorted(set().union(*(extra_scorers(open_shard(p).keys()) for p in shards)))
        if extra:
            raise GoldenNoiseError(
                f"{out / MANIFEST_NAME} does not record in which order its score names were "
                f"given, so its extra score columns ({', '.join(extra)}) cannot be checked "
                f"against this run's {','.join(names)}; import into a new folder, or, if you "
                f'know it, add "{SCORE_NAMES}": [the names in order] to its "teacher_options" '
                "entry"
            )
        if names == [existing.scorer]:
            return {}  # the primary score alone, which `scorer` records
        recorded = [existing.scorer]
    if recorded != names:
        raise GoldenNoiseError(
            f"{out} was imported with score names {','.join(recorded)} (the JSONL's score "
            f"lists in that order); this run names {','.join(names)}, which would file one "
            f"scorer's values under another's name: pass --score-names {','.join(recorded)} "
            "to continue it, or import into a new folder"
        )
    return {SCORE_NAMES: names}


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
    All are recorded in order, and a resumed import must name them in that order.
    `margin=0.0` records the authors' filter (keep when the target scores higher).
    `latent_shape`: the `(C, H, W)` the pipeline makes; pairs of another shape are refused.
    The dtype of `encode`'s output is recorded as the embeddings' precision (return the
    encoder's own dtype, not a float32 copy); a resumed import must encode in the same one.
    """
    npz_dir, out = Path(npz_dir), Path(out)
    integer("batch_size", batch_size, 1, MAX_BATCH)
    if not score_names:
        raise GoldenNoiseError("score_names must name at least the primary scorer")
    records = read_authors_jsonl(Path(jsonl), len(score_names))
    files = [_inspect_pair(path) for path in sorted(npz_dir.rglob("*.npz"))]
    if not files:
        raise GoldenNoiseError(f"no .npz files under {npz_dir}")
    _refuse_contradicting_files(files, records)
    _refuse_repeated_pairs(records)
    _refuse_mixed_latents(files, latent_shape, out)
    score_record = _score_names_record(out, score_names)
    prompt_of_caption: dict[str, int] = {}
    for record in sorted(records.values(), key=lambda r: r.index):
        prompt_of_caption.setdefault(record.caption, len(prompt_of_caption))
    prompts = [PromptRecord(index=i, text=t) for t, i in prompt_of_caption.items()]

    first_text = encode([prompts[0].text])  # also tells the embedding shape and dtype
    text_dtype = str(first_text.dtype).removeprefix("torch.")
    _refuse_other_text_dtype(out, text_dtype)
    manifest = DatasetManifest(
        family=family,
        model=model,
        latent_shape=files[0].shape,
        text_shape=tuple(first_text.shape[1:]),
        latent_dtype=files[0].stored[0],
        sampler=dict(sampler or {}),
        teacher="redenoise",
        teacher_options={
            "imported_from": "authors' npz+jsonl",
            TEXT_DTYPE: text_dtype,
            **score_record,
        },
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
            batch: list[tuple[np.ndarray, np.ndarray, int, AuthorsRecord]] = []
            for pair in files[start : start + batch_size]:
                record = records.get(pair.index)
                if record is None:
                    orphans.append(str(pair.path))
                    continue
                prompt = prompt_of_caption[record.caption]
                if writer.has(prompt, record.seed):  # one file per row: an earlier import's
                    present += 1
                    continue
                batch.append((*_load_latents(pair), prompt, record))
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
                seed=[b[3].seed for b in batch],
                score_source=[b[3].source_scores[0] for b in batch],
                score_target=[b[3].target_scores[0] for b in batch],
                extra_scores=extras,
            )
            written += len(batch)
    return ImportSummary(written, present, orphans, len(prompts))
