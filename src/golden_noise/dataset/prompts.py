"""`prompts.jsonl`: each prompt stored once, rows refer to it by index.

Its last line records the SHA-256 of the lines above it: rows and cached text embeddings
were made for the text each index held, so a text edited afterwards (one line of this file)
would file them under another prompt. Files from before that line are read as they are.

Lines end at "\n" only (`core.text_lines`), so every prompt text reads back exactly.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from golden_noise.core.atomic import atomic_write_text
from golden_noise.core.errors import GoldenNoiseError
from golden_noise.core.text_lines import text_lines

PROMPTS_NAME = "prompts.jsonl"
DIGEST_KEY = "prompts_sha256"  # the last line's key: the digest of the lines above it


@dataclass(frozen=True)
class PromptRecord:
    """One prompt; `type` and `group` are optional labels (e.g. the toy world's prompt kind)."""

    index: int
    text: str
    type: str | None = None
    group: str | None = None

    def to_json(self) -> str:
        data = {k: v for k, v in asdict(self).items() if v is not None}
        return json.dumps(data, ensure_ascii=False)


def read_prompts(root: Path) -> dict[int, PromptRecord]:
    """All prompts of a dataset by index (empty when none were written yet)."""
    path = Path(root) / PROMPTS_NAME
    if not path.is_file():
        return {}
    records: dict[int, PromptRecord] = {}
    for number, line in enumerate(_checked_lines(path), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            record = PromptRecord(
                index=int(data["index"]),
                text=str(data["text"]),
                type=data.get("type"),
                group=data.get("group"),
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise GoldenNoiseError(
                f"{path} line {number}: expected a JSON object with 'index' and 'text'; "
                f"got {line[:80]!r} ({exc})"
            ) from exc
        records[record.index] = record
    return records


def write_prompts(root: Path, prompts: Iterable[PromptRecord]) -> dict[int, PromptRecord]:
    """Merge `prompts` into the dataset's prompt file; an index may never change its text."""
    merged = read_prompts(root)
    for record in prompts:
        known = merged.get(record.index)
        if known is not None and known.text != record.text:
            raise GoldenNoiseError(
                f"prompt index {record.index} already holds {known.text!r} in "
                f"{Path(root) / PROMPTS_NAME}; refusing to change it to {record.text!r}"
            )
        merged[record.index] = record
    body = "".join(merged[i].to_json() + "\n" for i in sorted(merged))
    digest = json.dumps({DIGEST_KEY: _sha256(body)})
    atomic_write_text(Path(root) / PROMPTS_NAME, body + digest + "\n")
    return merged


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _checked_lines(path: Path) -> list[str]:
    """The file's prompt lines, once its digest line (when it has one) matches them."""
    lines = text_lines(path.read_text(encoding="utf-8"), keepends=True)
    try:
        last = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        last = None
    if not (isinstance(last, dict) and DIGEST_KEY in last):
        return [line.rstrip("\r\n") for line in lines]
    body = "".join(lines[:-1])
    if last[DIGEST_KEY] != _sha256(body):
        raise GoldenNoiseError(
            f"{path} was changed after it was written (its lines no longer match the "
            f"{DIGEST_KEY} on its last line); the rows and cached text embeddings of each "
            "prompt index were made for the text it held then, so they would be filed under "
            "another prompt. Restore it, or collect into a new directory"
        )
    return [line.rstrip("\r\n") for line in lines[:-1]]
