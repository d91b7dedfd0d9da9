"""`prompts.jsonl`: each prompt stored once, rows refer to it by index."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from golden_noise.core.atomic import atomic_write_text
from golden_noise.core.errors import GoldenNoiseError

PROMPTS_NAME = "prompts.jsonl"


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
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
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
    lines = [merged[i].to_json() for i in sorted(merged)]
    atomic_write_text(Path(root) / PROMPTS_NAME, "\n".join(lines) + "\n")
    return merged
