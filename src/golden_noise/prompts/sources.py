"""Read a list of prompts from wherever users keep them: txt, csv, jsonl, the toy world, the hub.

Accepted sources:
- `prompts.txt`: one prompt per non-empty line;
- `prompts.csv` (header row) or `prompts.jsonl` (one object per line): the `column` given, or
  the first of "prompt", "caption", "text" present;
- `toy:SPLIT:N[:SEED]`: N prompts drawn from the toy world's SPLIT (train, validation, heldout);
  `toy:SPLIT:all[:SEED]` every prompt of the split once, the types in turn while each lasts;
- a named benchmark set: drawbench, pickapic, hpdv2, geneval, parti (see `prompt_sets`);
- a hub dataset id `owner/name[:split]` with `column` (needs the `prompts` extra: datasets).
Identical prompts are kept once (first occurrence), so a prompt's index names one text:
`toy:train:48` draws 48 prompts and keeps the distinct ones (42), as it always has, so a
dataset collected from that spec keeps its prompts (the commands say so: `draw_notes`);
`toy:SPLIT:all` gives every prompt once.
A file's UTF-8 byte-order mark is not part of its first prompt. A count is at most
`MAX_PROMPTS`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.core.text_lines import text_lines
from golden_noise.prompts.sets import PROMPT_SETS, load_prompt_set

DEFAULT_COLUMNS = ("prompt", "caption", "text")
# One command's prompts: the paper's dataset has 100K; ten million is a typo that would only
# fill memory (toy:train:99999999999 ran for minutes before anything was refused).
MAX_PROMPTS = 10_000_000


def _pick_column(available: list[str], column: str | None, where: str) -> str:
    if column is not None:
        if column not in available:
            raise GoldenNoiseError(f"{where} has no column {column!r}; its columns are {available}")
        return column
    for name in DEFAULT_COLUMNS:
        if name in available:
            return name
    raise GoldenNoiseError(
        f"{where}: expected a column named one of {list(DEFAULT_COLUMNS)} or --column; "
        f"its columns are {available}"
    )


def _read_csv(path: Path, column: str | None) -> list[str]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames:
            raise GoldenNoiseError(f"{path} is empty: expected a header row and prompts")
        name = _pick_column(list(reader.fieldnames), column, str(path))
        return [row[name] or "" for row in reader]


def _read_jsonl(path: Path, column: str | None) -> list[str]:
    texts: list[str] = []
    for number, line in enumerate(text_lines(path.read_text(encoding="utf-8-sig")), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise GoldenNoiseError(f"{path} line {number}: not JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise GoldenNoiseError(
                f"{path} line {number}: expected a JSON object, got {line[:80]!r}"
            )
        name = _pick_column(sorted(data), column, f"{path} line {number}")
        texts.append(str(data[name]))
    return texts


def _read_toy(spec: str) -> list[str]:
    from golden_noise.toy.grammar import every_prompt, sample_prompts

    parts = spec.split(":")
    count_ok = len(parts) in (3, 4) and (parts[2].isdigit() or parts[2] == "all")
    if not count_ok or not all(p.isdigit() for p in parts[3:]):
        raise GoldenNoiseError(
            f"expected toy:SPLIT:N[:SEED] or toy:SPLIT:all[:SEED] (e.g. toy:train:1000); "
            f"got {spec!r}"
        )
    seed = int(parts[3]) if len(parts) == 4 else 0
    if parts[2] == "all":
        return every_prompt(parts[1], seed)
    count = int(parts[2])
    if not 1 <= count <= MAX_PROMPTS:
        raise GoldenNoiseError(
            f"{spec!r}: the prompt count must be between 1 and {MAX_PROMPTS}; got {count} "
            f"(toy:{parts[1]}:all gives every prompt of the split once)"
        )
    return sample_prompts(count, seed, parts[1])


def _read_hub(spec: str, column: str | None) -> list[str]:
    try:
        import datasets
    except ImportError as exc:
        raise GoldenNoiseError(
            f"{spec!r} is neither a file nor a toy: source; reading a hub dataset needs the "
            "`datasets` package: pip install 'golden-noise[prompts]'"
        ) from exc
    repo, _, split = spec.partition(":")
    try:
        table = datasets.load_dataset(repo, split=split or "train")
    except Exception as exc:  # the hub raises many types; the user needs one message
        raise GoldenNoiseError(f"cannot load hub dataset {spec!r}: {exc}") from exc
    name = _pick_column(list(table.column_names), column, f"hub dataset {spec!r}")
    return [str(v) for v in table[name]]


def prompt_group(prompt: str) -> str | None:
    """The group a prompt belongs to by its text when its source names none: the toy world's
    prompt type for a toy prompt, else None."""
    from golden_noise.toy.grammar import prompt_type

    return prompt_type(prompt)


def read_prompt_source(source: str | Path, column: str | None = None) -> list[str]:
    """The distinct, non-empty prompts of `source`, in first-seen order."""
    return read_prompts_and_groups(source, column)[0]


def read_prompts_and_groups(
    source: str | Path, column: str | None = None
) -> tuple[list[str], list[str | None]]:
    """`read_prompt_source`'s prompts and each one's group: a named set's own category
    (DrawBench `Category`, GenEval `tag`, HPDv2 style, ...), None for other sources."""
    spec = str(source)
    path = Path(spec).expanduser()
    groups: dict[str, str | None] = {}  # first occurrence wins, as for the prompts
    if spec in PROMPT_SETS and not _exists(path):
        if column is not None:
            raise GoldenNoiseError(
                f"prompt set {spec!r} reads its own column ({PROMPT_SETS[spec].column}); "
                "drop --column"
            )
        grouped = load_prompt_set(spec)
        texts = [text for text, _ in grouped]
        groups = {text.strip(): group or None for text, group in reversed(grouped)}
    elif spec.startswith("toy:"):
        texts = _read_toy(spec)
    elif _exists(path) and path.is_file():
        suffix = path.suffix.lower()
        try:
            if suffix == ".csv":
                texts = _read_csv(path, column)
            elif suffix in (".jsonl", ".json"):
                texts = _read_jsonl(path, column)
            else:
                texts = text_lines(path.read_text(encoding="utf-8-sig"))
        except (OSError, UnicodeDecodeError) as exc:
            raise GoldenNoiseError(f"cannot read prompts from {path}: {exc}") from exc
    elif _exists(path) or "/" not in spec or spec.startswith((".", "/", "~")):
        raise GoldenNoiseError(
            f"prompt source {spec!r}: expected a .txt/.csv/.jsonl file, toy:SPLIT:N, a named "
            f"set ({', '.join(PROMPT_SETS)}) or a hub dataset id owner/name; no such file"
        )
    else:
        texts = _read_hub(spec, column)
    if len(texts) > MAX_PROMPTS:
        raise GoldenNoiseError(
            f"prompt source {spec!r} holds {len(texts)} prompts; at most {MAX_PROMPTS} per command"
        )
    prompts = list(dict.fromkeys(t.strip() for t in texts if t and t.strip()))
    if not prompts:
        raise GoldenNoiseError(f"prompt source {spec!r} holds no prompts (empty or blank)")
    return prompts, [groups.get(prompt) for prompt in prompts]


def _exists(path: Path) -> bool:
    """`path.exists()`, False where the name cannot be a file (e.g. longer than the system
    allows: a long prompt given as `-p TEXT`)."""
    try:
        return path.exists()
    except OSError:
        return False


def _is_text(spec: str) -> bool:
    """A `--prompts` value that is the prompt itself: no source, no existing path or prompt file
    name, and words or a single word without the marks of a path or hub id (`.`, `/`, `~`, `:`)."""
    path = Path(spec).expanduser()
    if spec in PROMPT_SETS or spec.startswith("toy:") or _exists(path):
        return False
    if path.suffix.lower() in (".txt", ".csv", ".jsonl", ".json"):
        return False
    return any(c.isspace() for c in spec.strip()) or not any(m in spec for m in "./~:\\")


def draw_notes(sources: Sequence[str]) -> list[str]:
    """A line for each `toy:SPLIT:N` that drew fewer distinct prompts than N (its repeats are
    kept once, as datasets collected from it depend on): the summary says it, not the
    silence."""
    notes = []
    for spec in sources:
        parts = spec.split(":")
        if not spec.startswith("toy:") or len(parts) < 3 or not parts[2].isdigit():
            continue
        distinct = len(dict.fromkeys(_read_toy(spec)))
        if distinct < int(parts[2]):
            notes.append(
                f"note: {spec} drew {distinct} distinct prompts (repeats are kept once; "
                f"toy:{parts[1]}:all gives every prompt of the split)"
            )
    return notes


def read_prompt_sources(
    sources: Sequence[str], column: str | None = None
) -> tuple[list[str], list[str | None]]:
    """The prompts (and groups) of every `--prompts` value in turn: each a source above or else
    the prompt itself (`_is_text`); identical prompts kept once."""
    found: dict[str, str | None] = {}
    for spec in sources:
        pairs = (
            [(spec.strip(), None)]
            if _is_text(spec)
            else zip(*read_prompts_and_groups(spec, column), strict=True)
        )
        for text, group in pairs:
            if text:
                found.setdefault(text, group)
    if not found:
        raise GoldenNoiseError(
            "expected at least one prompt: --prompts TEXT, or a source (a file, toy:SPLIT:N, a "
            "named set, a hub id)"
        )
    return list(found), list(found.values())
