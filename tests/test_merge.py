"""`golden-noise merge`: rows, embeddings and scores arrive unchanged and keyed by prompt text,
clashes are refused or replaced as asked, and nothing is written when the inputs disagree."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from golden_noise.cli import app
from golden_noise.core.errors import GoldenNoiseError
from golden_noise.dataset import (
    DatasetManifest,
    DatasetWriter,
    NoisePromptDataset,
    PromptRecord,
    read_prompts,
)
from golden_noise.dataset.merge import merge_datasets
from tests.cli_outcome import assert_refused, run_cli
from tests.npd_fixtures import LATENT, TEXT, manifest


def _embedding(text: str) -> torch.Tensor:
    """A prompt's text embedding: a pure function of its text, as an encoder's would be."""
    return torch.randn(TEXT, generator=torch.Generator().manual_seed(sum(map(ord, text))))


def _write(
    root: Path,
    texts: list[str],
    seeds: list[int],
    shift: float,
    extra: str | None = None,
    **manifest_kw: object,
) -> Path:
    """Rows for every (text, seed); prompt indices run in the order of `texts`, so the same
    text gets different indices in different datasets."""
    records = [PromptRecord(index=i, text=t) for i, t in enumerate(texts)]
    made = dataclasses.replace(manifest(), **manifest_kw)
    with DatasetWriter(root, made, prompts=records, rows_per_shard=5) as w:
        w.add_embeddings(list(range(len(texts))), torch.stack([_embedding(t) for t in texts]))
        for i, text in enumerate(texts):
            gen = torch.Generator().manual_seed(sum(map(ord, text)) * 7 + int(shift * 100))
            source = torch.randn(len(seeds), *LATENT, generator=gen)
            scores = torch.rand(len(seeds), 2, generator=gen)
            extras = {extra: (scores[:, 0] * 2, scores[:, 1] * 2)} if extra else None
            w.add(
                source, source + shift, [i] * len(seeds), seeds, scores[:, 0], scores[:, 1], extras
            )
    return root


def _rows_by_text(root: Path) -> dict[tuple[str, int], tuple[torch.Tensor, ...]]:
    """{(text, seed): (source, target, embeds, score_source, score_target)} via the reader."""
    data = NoisePromptDataset(root)
    texts = {i: r.text for i, r in read_prompts(root).items()}
    src_scores, tgt_scores = data.column("score_source"), data.column("score_target")
    out = {}
    for item, (prompt, seed) in enumerate(data.keys):
        source, target, embeds = data[item]
        out[(texts[prompt], seed)] = (
            source,
            target,
            embeds,
            torch.tensor(src_scores[item]),
            torch.tensor(tgt_scores[item]),
        )
    return out


def test_merge_keeps_every_row_unchanged_and_matches_prompts_by_text(tmp_path: Path) -> None:
    a = _write(tmp_path / "a", ["red", "blue", "green"], [0, 1], shift=0.5)
    b = _write(tmp_path / "b", ["green", "cyan"], [2, 3], shift=-0.25)
    summary = merge_datasets([a, b], tmp_path / "m", rows_per_shard=4, progress=False)

    expected = {**_rows_by_text(a), **_rows_by_text(b)}
    merged = _rows_by_text(tmp_path / "m")
    assert summary.rows == len(expected) == 10 and summary.prompts == 4
    assert summary.replaced == 0
    assert sorted(merged) == sorted(expected)
    for key, values in expected.items():
        for got, want in zip(merged[key], values, strict=True):
            assert torch.equal(got, want), key  # a copy: bit-identical, no arithmetic
    texts = [r.text for _, r in sorted(read_prompts(tmp_path / "m").items())]
    assert texts == ["red", "blue", "green", "cyan"]  # "green" once, first-seen order
    NoisePromptDataset(tmp_path / "m").verify()  # digests and ledger like a collected dataset


def test_a_clash_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    a = _write(tmp_path / "a", ["red", "blue"], [0, 1], shift=0.5)
    b = _write(tmp_path / "b", ["blue"], [1, 2], shift=-0.25)
    with pytest.raises(GoldenNoiseError, match=r"1 rows of .*'blue', seed 1.*--replace"):
        merge_datasets([a, b], tmp_path / "m", progress=False)
    assert not (tmp_path / "m").exists()


def test_replace_keeps_the_later_sources_row(tmp_path: Path) -> None:
    a = _write(tmp_path / "a", ["red", "blue"], [0, 1], shift=0.5)
    b = _write(tmp_path / "b", ["blue"], [1, 2], shift=-0.25)
    summary = merge_datasets([a, b], tmp_path / "m", replace_rows=True, progress=False)
    merged, old, new = (_rows_by_text(p) for p in (tmp_path / "m", a, b))
    assert summary.replaced == 1 and summary.rows == 5
    assert sorted(merged) == sorted({**old, **new})
    assert torch.equal(merged[("blue", 1)][1], new[("blue", 1)][1])  # the refit's target
    assert torch.equal(merged[("blue", 0)][1], old[("blue", 0)][1])


def test_teacher_options_may_differ_and_are_recorded(tmp_path: Path) -> None:
    a = _write(tmp_path / "a", ["red"], [0], 0.5, teacher_options={"lr": 0.1})
    b = _write(tmp_path / "b", ["blue"], [0], 0.5, teacher_options={"lr": 0.1, "init": "net"})
    merge_datasets([a, b], tmp_path / "m", progress=False)
    made = DatasetManifest.load(tmp_path / "m")
    assert made.teacher_options == {"sources": [{"lr": 0.1}, {"lr": 0.1, "init": "net"}]}
    assert [s["dataset"] for s in made.notes["merged_from"]] == [str(a), str(b)]
    assert [s["rows"] for s in made.notes["merged_from"]] == [1, 1]


@pytest.mark.parametrize(
    ("field", "value", "pattern"),
    [
        ("latent_dtype", "float32", "latent_dtype: .* has 'float16', .* has 'float32'"),
        ("sampler", {"name": "ddim", "steps": 10}, "sampler"),
        ("scorer", "other", "scorer"),
        ("margin", 0.5, "margin"),
    ],
)
def test_datasets_made_differently_are_refused(
    tmp_path: Path, field: str, value: object, pattern: str
) -> None:
    a = _write(tmp_path / "a", ["red"], [0], 0.5)
    b = _write(tmp_path / "b", ["blue"], [0], 0.5, **{field: value})
    with pytest.raises(GoldenNoiseError, match=f"made differently.*{pattern}"):
        merge_datasets([a, b], tmp_path / "m", progress=False)
    assert not (tmp_path / "m").exists()


def test_output_must_be_new_and_outside_the_sources(tmp_path: Path) -> None:
    a = _write(tmp_path / "a", ["red"], [0], 0.5)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(GoldenNoiseError, match="not an empty directory"):
        merge_datasets([a], tmp_path / "full", progress=False)
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    with pytest.raises(GoldenNoiseError, match="inside source dataset"):
        merge_datasets([a], a / "sub", progress=False)
    with pytest.raises(GoldenNoiseError, match="given once"):
        merge_datasets([a, tmp_path / "a"], tmp_path / "m", progress=False)


def test_a_damaged_source_is_refused_before_writing(tmp_path: Path) -> None:
    a = _write(tmp_path / "a", ["red", "blue"], [0, 1], 0.5)
    b = _write(tmp_path / "b", ["cyan"], [0], 0.5)
    shard = sorted((b / "rows").iterdir())[0]
    raw = bytearray(shard.read_bytes())
    raw[-5] ^= 0xFF  # a latent byte: only the whole-shard digest sees it
    shard.write_bytes(bytes(raw))
    with pytest.raises(GoldenNoiseError, match="corrupt shard"):
        merge_datasets([a, b], tmp_path / "m", progress=False)
    assert not (tmp_path / "m").exists()


def test_extra_scores_not_in_every_source_are_left_out_and_named(tmp_path: Path) -> None:
    a = _write(tmp_path / "a", ["red"], [0], 0.5, extra="clip")
    b = _write(tmp_path / "b", ["blue"], [0], 0.5)
    result = CliRunner().invoke(
        app, ["merge", str(a), str(b), "--out", str(tmp_path / "m"), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert "2 rows over 2 prompts (0 replaced" in result.output
    assert "left out: clip" in result.output
    assert "score_source:clip" not in NoisePromptDataset(tmp_path / "m").table.columns


def test_a_merge_killed_midway_leaves_no_dataset_and_the_next_one_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = _write(tmp_path / "a", ["red", "blue", "green"], [0, 1], shift=0.5)
    b = _write(tmp_path / "b", ["cyan"], [0, 1], shift=0.5)
    original, calls = DatasetWriter.add, []

    def dies_on_the_second_shard(self: DatasetWriter, *args: object, **kw: object) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # what a kill between two shards looks like from here
        original(self, *args, **kw)

    monkeypatch.setattr(DatasetWriter, "add", dies_on_the_second_shard)
    with pytest.raises(KeyboardInterrupt):
        merge_datasets([a, b], tmp_path / "m", rows_per_shard=2, progress=False)
    assert not (tmp_path / "m").exists()  # the rows written so far are not a dataset
    assert any((tmp_path / ".m.merging" / "dataset" / "rows").iterdir())
    monkeypatch.setattr(DatasetWriter, "add", original)
    summary = merge_datasets([a, b], tmp_path / "m", rows_per_shard=2, progress=False)
    assert summary.rows == 8 and not (tmp_path / ".m.merging").exists()
    assert sorted(_rows_by_text(tmp_path / "m")) == sorted({**_rows_by_text(a), **_rows_by_text(b)})
    assert DatasetManifest.load(tmp_path / "m").notes["merged_rows"] == 8


def test_a_text_whose_embeddings_differ_between_sources_is_refused(tmp_path: Path) -> None:
    a = _write(tmp_path / "a", ["red", "blue"], [0], shift=0.5)
    b = _write(tmp_path / "b", ["red", "blue"], [1], shift=0.5)
    edited = (b / "prompts.jsonl").read_text().splitlines()
    swapped = [
        edited[1].replace('"index": 1', '"index": 0'),
        edited[0].replace('"index": 0', '"index": 1'),
    ]
    (b / "prompts.jsonl").write_text("\n".join(swapped) + "\n")  # texts of 0 and 1 swapped
    with pytest.raises(GoldenNoiseError, match="different text embeddings in .*edited"):
        merge_datasets([a, b], tmp_path / "m", progress=False)
    assert not (tmp_path / "m").exists() and not (tmp_path / ".m.merging").exists()


def test_rows_deleted_from_a_merged_dataset_are_named(tmp_path: Path) -> None:
    a = _write(tmp_path / "a", ["red", "blue"], [0, 1], shift=0.5)
    b = _write(tmp_path / "b", ["cyan"], [0, 1], shift=0.5)
    merge_datasets([a, b], tmp_path / "m", rows_per_shard=2, progress=False)
    shard = sorted((tmp_path / "m" / "rows").iterdir())[1]
    shard.unlink()
    for ledger in (tmp_path / "m").glob("ledger-*.json"):  # its entry goes too: no trace left
        entries = json.loads(ledger.read_text())
        del entries[f"rows/{shard.name}"]
        ledger.write_text(json.dumps(entries))
    with pytest.raises(GoldenNoiseError, match="2 of the 6 rows its merge wrote are missing"):
        NoisePromptDataset(tmp_path / "m")


def _files(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_source_in_the_work_folder_is_refused_and_kept(tmp_path: Path) -> None:
    """Before: with a copy of a dataset at `.m.merging` merged into m, the merge deleted that
    source's rows (it clears its work folder first) and wrote its own manifest there."""
    work = _write(tmp_path / ".m.merging", ["red"], [0], 0.5)
    b = _write(tmp_path / "b", ["blue"], [0], 0.5)
    for sources in ([work, b], [work / "rows", b]):  # the work folder, or a folder inside it
        before = _files(work)
        with pytest.raises(GoldenNoiseError, match=r"source dataset .*\.m\.merging.*--out"):
            merge_datasets(sources, tmp_path / "m", progress=False)
        assert _files(work) == before and not (tmp_path / "m").exists()


def test_a_work_folder_no_merge_left_is_refused_and_kept(tmp_path: Path) -> None:
    """Before: a folder of the user's at `.m.merging` was deleted, exit 0."""
    a = _write(tmp_path / "a", ["red"], [0], 0.5)
    work = tmp_path / ".m.merging"
    work.mkdir()
    (work / "notes.txt").write_text("mine")
    result = CliRunner().invoke(app, ["merge", str(a), "--out", str(tmp_path / "m")])
    assert result.exit_code == 1
    assert f"{work} exists but was not left by a merge" in result.output
    assert (work / "notes.txt").read_text() == "mine" and not (tmp_path / "m").exists()
    (work / "golden-noise-merge").write_text("")  # a marker beside a file merge never writes
    with pytest.raises(GoldenNoiseError, match="not left by a merge"):
        merge_datasets([a], tmp_path / "m", progress=False)
    assert (work / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("target", ["empty", "missing"])
def test_an_output_that_is_a_link_is_refused_before_any_work(tmp_path: Path, target: str) -> None:
    """Before: the merge did all its work, then failed ("Not a directory") and left the whole
    dataset in `.m.merging`."""
    a = _write(tmp_path / "a", ["red"], [0], 0.5)
    if target == "empty":
        (tmp_path / target).mkdir()
    out = tmp_path / "m"
    out.symlink_to(tmp_path / target)
    before = sorted(tmp_path.rglob("*"))
    assert_refused(*run_cli("merge", a, "--out", out), f"--out {out} is a symbolic link")
    assert sorted(tmp_path.rglob("*")) == before and out.is_symlink()
