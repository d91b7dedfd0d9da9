"""SHA-256 records of the files a run writes and a later run reads back.

A flipped bit in a checkpoint or a cached array loads without complaint and silently changes
what is computed from it, so a reader checks a file against the digest recorded when it was
written. `train.state` keeps its checkpoints' digests in each checkpoint's progress.json;
files rewritten in place (the toy world's checkpoints and image chunks) keep theirs in a
`DigestLedger` beside them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from golden_noise.core.atomic import atomic_write_bytes, atomic_write_json
from golden_noise.core.errors import GoldenNoiseError


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    with Path(path).open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def folder_sha256s(folder: Path, skip: Path | None = None) -> dict[str, str]:
    """`file_sha256` of every file under `folder` but `skip`, by POSIX path relative to it."""
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file() and p != skip)
    return {p.relative_to(folder).as_posix(): file_sha256(p) for p in files}


class DigestLedger:
    """A JSON file that maps each file name in its folder to the versions the file may hold,
    each `{"sha256": ..., "step": ...}` (`step`: where a checkpoint stands; None for data).

    `write` records the new version beside the current one, writes the file atomically, then
    records the new version alone: a kill at any point leaves a file whose digest the ledger
    holds (the old file or the new one), so a good file is never refused and a damaged one
    never accepted. `read` returns a file's bytes only if they are a recorded version; the
    bytes checked are the bytes returned, so nothing changes between check and load.
    """

    def __init__(self, path: Path, remedy: str) -> None:
        """`remedy`: what a refused reader should do, ending each refusal's message."""
        self.path, self.remedy = Path(path), remedy

    def write(self, target: Path, data: bytes, step: int | None = None) -> str:
        """Write `data` to `target` (a file in the ledger's folder) and record its digest,
        which it returns."""
        entries = self._entries()
        new = {"sha256": hashlib.sha256(data).hexdigest(), "step": step}
        atomic_write_json(self.path, entries | {target.name: [*entries.get(target.name, []), new]})
        atomic_write_bytes(target, data)
        atomic_write_json(self.path, entries | {target.name: [new]})
        return new["sha256"]

    def read(self, target: Path) -> bytes:
        """`target`'s bytes, refused unless the ledger records their digest."""
        data = target.read_bytes()
        versions = self._entries().get(target.name)
        if not versions:
            raise GoldenNoiseError(
                f"{target} has no SHA-256 in {self.path}, so nothing vouches that it is the "
                f"file this run wrote (it may be damaged, or from before digests were "
                f"recorded). {self.remedy}"
            )
        found = hashlib.sha256(data).hexdigest()
        if found not in {v["sha256"] for v in versions}:
            last = versions[-1]
            at = f" at step {last['step']}" if last["step"] is not None else ""
            raise GoldenNoiseError(
                f"{target} is not the file recorded when it was written{at}: expected SHA-256 "
                f"{last['sha256']}, found {found}, so it was changed or damaged since. "
                + self.remedy
            )
        return data

    def _entries(self) -> dict[str, list[dict[str, Any]]]:
        """The ledger's record (empty before its first write); refused if malformed."""
        if not self.path.is_file():
            return {}
        try:
            entries = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise GoldenNoiseError(f"cannot read {self.path}: {exc}. {self.remedy}") from exc
        if not isinstance(entries, dict) or not all(
            isinstance(versions, list)
            and all(
                isinstance(v, dict)
                and isinstance(v.get("sha256"), str)
                and (v.get("step") is None or type(v.get("step")) is int)
                for v in versions
            )
            for versions in entries.values()
        ):
            raise GoldenNoiseError(
                f"cannot read {self.path}: expected a JSON object mapping file names to lists "
                f'of {{"sha256": ..., "step": ...}}. {self.remedy}'
            )
        return entries
