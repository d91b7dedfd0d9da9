"""The dataset's manifest: what made the rows, so a trainer or a resuming collector can check.

One JSON file, `manifest.json`, written atomically. Two writers may only add rows to the same
dataset when their manifests agree on every field that changes what a row means
(`IDENTITY_FIELDS`); the creation time, package version and free-form notes may differ.

Two notes a collect writes are read back: `seeds`, its seed plan, and `finished_prompts`,
written when a collect has made every row of that plan for the prompts 0..N-1. A dataset
that records both must hold those rows (`finished_keys`): a shard deleted together with its
ledger entry leaves no other trace. Datasets without them (a collect never finished, or one
from before this record, or rows from another writer) are read without that check.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from golden_noise.core.atomic import atomic_write_json
from golden_noise.core.errors import GoldenNoiseError
from golden_noise.core.seeds import seed_plan_keys
from golden_noise.core.validate import integer, number

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1
FINISHED_PROMPTS = "finished_prompts"  # notes keys: see the module docstring
SHARDS_WITHOUT_DIGESTS = "shards_without_digests"
MERGED_ROWS = "merged_rows"
TEXT_DTYPE = "text_encoder_dtype"  # teacher_options key: see `DatasetManifest.text_dtype`

IDENTITY_FIELDS = (
    "format_version",
    "family",
    "model",
    "latent_shape",
    "text_shape",
    "latent_dtype",
    "sampler",
    "teacher",
    "teacher_options",
    "w_l",
    "w_w",
    "scorer",
)


def _package_version() -> str:
    from golden_noise.core.version import __version__

    return __version__


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def dataset_holding(path: Path, dataset: Path | None = None) -> Path | None:
    """The Noise Prompt Dataset folder `path` is or lies inside: `dataset` when given (it may
    not hold its manifest yet), else the nearest folder above whose manifest.json is a
    dataset's (other tools name files manifest.json too)."""
    path = Path(path).resolve()
    if dataset is not None and path.is_relative_to(Path(dataset).resolve()):
        return Path(dataset)
    return next((p for p in (path, *path.parents) if _is_dataset_manifest(p / MANIFEST_NAME)), None)


def _is_dataset_manifest(path: Path) -> bool:
    if not path.is_file():
        return False
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and {"format_version", "latent_shape", "teacher"} <= set(data)


def check_outside_dataset(
    out: Path, writes: str, *, name: str = "--out", dataset: Path | None = None
) -> None:
    """Refuse an output folder inside a dataset: files written there would be mixed in with
    its shards (and a merge or copy of the dataset would carry them along)."""
    holder = dataset_holding(out, dataset)
    if holder is not None:
        raise GoldenNoiseError(
            f"{name} must be a folder outside the dataset {holder}; got {out} (the {writes} "
            "would be mixed into the dataset)"
        )


@dataclass
class DatasetManifest:
    """What a Noise Prompt Dataset holds and how it was made.

    `latent_shape` is one latent `(C, H, W)`; `text_shape` one prompt's per-token embedding
    `(L, D)` as NPNet sees it. `margin` is the collection-time filter margin, kept as the
    default for readers: rows are stored whether or not they pass it.
    """

    family: str
    latent_shape: tuple[int, int, int]
    text_shape: tuple[int, int]
    model: str | None = None
    latent_dtype: str = "float16"
    sampler: dict[str, Any] = field(default_factory=dict)
    teacher: str = "redenoise"
    teacher_options: dict[str, Any] = field(default_factory=dict)
    w_l: float | None = None
    w_w: float | None = None
    scorer: str | None = None
    margin: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    package_version: str = field(default_factory=_package_version)
    created: str = field(default_factory=_now)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        self.latent_shape = tuple(int(v) for v in self.latent_shape)  # type: ignore[assignment]
        self.text_shape = tuple(int(v) for v in self.text_shape)  # type: ignore[assignment]
        if len(self.latent_shape) != 3 or min(self.latent_shape) <= 0:
            raise GoldenNoiseError(
                f"manifest latent_shape must be (C, H, W) with positive sizes; "
                f"got {self.latent_shape}"
            )
        if len(self.text_shape) != 2 or min(self.text_shape) <= 0:
            raise GoldenNoiseError(
                f"manifest text_shape must be (tokens, dim) with positive sizes; "
                f"got {self.text_shape}"
            )
        for name in ("w_l", "w_w", "margin"):  # JSON has no NaN: the file would be unreadable
            if getattr(self, name) is not None:
                number(f"manifest {name}", getattr(self, name))
        if self.latent_dtype not in ("float16", "bfloat16", "float32"):
            raise GoldenNoiseError(
                f"manifest latent_dtype must be float16, bfloat16 or float32; "
                f"got {self.latent_dtype!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["latent_shape"] = list(self.latent_shape)
        data["text_shape"] = list(self.text_shape)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetManifest:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise GoldenNoiseError(
                f"unknown manifest keys {unknown}; expected a subset of {sorted(known)}"
            )
        return cls(**data)

    def differences(self, other: DatasetManifest) -> dict[str, tuple[Any, Any]]:
        """Identity fields on which two manifests disagree, as {field: (self, other)}."""
        mine, theirs = self.to_dict(), other.to_dict()
        return {k: (mine[k], theirs[k]) for k in IDENTITY_FIELDS if mine[k] != theirs[k]}

    def finished_keys(self) -> list[tuple[int, int]] | None:
        """The rows a finished collect made (see the module docstring); None when not recorded."""
        seeds, prompts = self.notes.get("seeds"), self.notes.get(FINISHED_PROMPTS)
        if seeds is None or prompts is None:
            return None
        try:
            distinct = seeds["distinct"]
            if not isinstance(distinct, bool):
                raise TypeError(f"distinct must be true or false; got {distinct!r}")
            return seed_plan_keys(
                integer(FINISHED_PROMPTS, prompts, 0),
                integer("per_prompt", seeds["per_prompt"], 1),
                integer("offset", seeds["offset"], 0),
                distinct,
            )
        except (GoldenNoiseError, KeyError, TypeError) as exc:
            raise GoldenNoiseError(
                f"manifest notes 'seeds' {seeds!r} and {FINISHED_PROMPTS!r} {prompts!r} do not "
                f"describe a seed plan ({exc})"
            ) from exc

    def shards_without_digests(self) -> frozenset[str] | None:
        """Shards from before the digest record (see the module docstring); None when the
        dataset has no such record (an older one: its shards are not required to be listed)."""
        names = self.notes.get(SHARDS_WITHOUT_DIGESTS)
        if names is None:
            return None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise GoldenNoiseError(
                f"manifest notes {SHARDS_WITHOUT_DIGESTS!r} must be a list of shard names; "
                f"got {names!r}"
            )
        return frozenset(names)

    def text_dtype(self) -> str | None:
        """The dtype the prompts' text embeddings were encoded in (an fp16 encoder's are up to
        0.002 away from an fp32 one's): import-authors records its encoder's in
        `teacher_options`, a collect encodes with its pipeline, whose dtype `sampler` records.
        None when neither is recorded (a dataset from before those records)."""
        recorded = self.teacher_options.get(TEXT_DTYPE, self.sampler.get("dtype"))
        return None if recorded is None else str(recorded)

    def merged_rows(self) -> int | None:
        """The rows a merge wrote (see the module docstring); None when not a merge's."""
        rows = self.notes.get(MERGED_ROWS)
        return None if rows is None else integer(f"manifest notes {MERGED_ROWS!r}", rows, 0)

    def save(self, root: Path) -> None:
        atomic_write_json(Path(root) / MANIFEST_NAME, self.to_dict())

    @classmethod
    def load(cls, root: Path) -> DatasetManifest:
        path = Path(root) / MANIFEST_NAME
        if not path.is_file():
            raise GoldenNoiseError(
                f"no Noise Prompt Dataset at {root}: expected {MANIFEST_NAME} there, found none"
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise GoldenNoiseError(f"cannot read dataset manifest {path}: {exc}") from exc
        if data.get("format_version") != FORMAT_VERSION:
            raise GoldenNoiseError(
                f"{path} has format_version {data.get('format_version')!r}; this version of "
                f"golden-noise reads format_version {FORMAT_VERSION}"
            )
        return cls.from_dict(data)
