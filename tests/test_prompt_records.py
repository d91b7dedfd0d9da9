"""`prompts.jsonl` keeps every prompt text exactly, whatever characters it holds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_outcome import run_cli

from golden_noise.core.text_lines import text_lines
from golden_noise.dataset import PromptRecord, read_prompts, write_prompts
from golden_noise.evaluation.evaluate import read_index, write_index
from golden_noise.generation.arms import Sample
from golden_noise.prompts.sources import read_prompt_source

# Line breaks to str.splitlines(); JSON escapes \n and \r, and writes U+2028, U+2029 and \x85
# as they are
BREAKS = ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\r", "\n"]


@pytest.mark.parametrize("char", BREAKS, ids=[f"U+{ord(c):04X}" for c in BREAKS])
def test_every_prompt_text_is_read_back_exactly(tmp_path: Path, char: str) -> None:
    records = [
        PromptRecord(0, f"a red{char}circle"),
        PromptRecord(1, f"{char}", type="kind"),
        PromptRecord(2, "a blue square", group=f"g{char}"),
    ]
    write_prompts(tmp_path, records)
    assert read_prompts(tmp_path) == {r.index: r for r in records}
    write_prompts(tmp_path, [PromptRecord(3, "two cats")])  # a resume rewrites the file
    assert read_prompts(tmp_path) == {r.index: r for r in [*records, PromptRecord(3, "two cats")]}


def test_a_collect_with_a_line_separator_in_a_prompt_resumes_and_merges(tmp_path: Path) -> None:
    """Before: the second run was refused ("prompts.jsonl line 1: expected a JSON object"),
    and so was a merge: the reader split the prompt's line at U+2028."""
    prompt = "a red\u2028circle"
    out, merged = tmp_path / "c2", tmp_path / "merged"
    collect = ["collect", "-p", prompt, "--out", out, "--seeds-per-prompt", 1, "--steps", 2]
    for _ in range(2):
        code, output = run_cli(*collect)
        assert code == 0, output
    assert [r.text for r in read_prompts(out).values()] == [prompt]
    code, output = run_cli("merge", out, "--out", merged, "--no-progress")
    assert code == 0, output
    assert [r.text for r in read_prompts(merged).values()] == [prompt]


def test_text_lines_split_at_newline_only() -> None:
    """Written out by hand: U+2028 and the rest stay inside a line, CRLF ends are dropped
    (kept with keepends), and a last line without "\n" counts."""
    text = "a\u2028b\x85c\r\nd\x0be\nlast"
    assert text_lines(text) == ["a\u2028b\x85c", "d\x0be", "last"]
    assert text_lines(text, keepends=True) == ["a\u2028b\x85c\r\n", "d\x0be\n", "last"]
    assert text_lines("") == [] and text_lines("x\n") == ["x"] and text_lines("\n") == [""]


@pytest.mark.parametrize("suffix", [".txt", ".jsonl"])
def test_a_prompt_file_keeps_a_prompt_holding_a_line_separator_whole(
    tmp_path: Path, suffix: str
) -> None:
    """A user's prompt list, one prompt per line: U+2028 inside a prompt does not split it."""
    prompts = ["a red\u2028circle", "two\x85cats", "a blue square"]
    path = tmp_path / f"prompts{suffix}"
    if suffix == ".txt":
        path.write_text("\r\n".join(prompts) + "\r\n", encoding="utf-8")
    else:
        path.write_text(
            "".join(json.dumps({"prompt": p}, ensure_ascii=False) + "\n" for p in prompts),
            encoding="utf-8",
        )
    assert read_prompt_source(path) == prompts


def test_an_evaluate_index_keeps_a_prompt_holding_a_line_separator(tmp_path: Path) -> None:
    """`evaluate --rescore` reads back the index a run wrote, prompt for prompt."""
    samples = [Sample(0, "a red\u2028circle", 3), Sample(1, "a\u2029b\x85c", 4, group="g")]
    write_index(tmp_path, samples, ["standard", "golden"])
    assert read_index(tmp_path) == (samples, ["standard", "golden"])
