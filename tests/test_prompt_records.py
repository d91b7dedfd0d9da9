"""`prompts.jsonl` keeps every prompt text exactly, whatever characters it holds."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_outcome import run_cli

from golden_noise.dataset import PromptRecord, read_prompts, write_prompts

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
