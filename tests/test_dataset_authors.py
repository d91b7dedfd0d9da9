"""Importing the authors' npz+jsonl layout, with a real (tiny) pipeline text encoder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_outcome import assert_refused, run_cli
from tiny_pipelines import build_sd

from golden_noise.adapters import adapter_for
from golden_noise.core.errors import GoldenNoiseError
from golden_noise.dataset import DatasetManifest, NoisePromptDataset, read_prompts
from golden_noise.dataset.authors import import_authors

CAPTIONS = {0: "a red cube", 1: "a blue ball", 2: "a red cube", 3: "two cats"}
SEEDS = {0: 11, 1: 22, 2: 33, 3: 44}


def _authors_layout(root: Path) -> tuple[Path, Path]:
    npz_dir = root / "latents"
    (npz_dir / "gpu1").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in (0, 1, 2, 7):  # 3 has no pair file; 7 has no JSONL row
        seed = SEEDS.get(index, 99)
        pair = [rng.standard_normal((1, 4, 8, 8)).astype(np.float16) for _ in range(2)]
        folder = npz_dir / "gpu1" if index == 2 else npz_dir
        np.savez(folder / f"{index}_{seed}.npz", pair[0], pair[1], index)
    jsonl = root / "SDXL_step_10_training.json"
    with jsonl.open("w") as handle:
        for index, caption in CAPTIONS.items():
            row = {
                "index": index,
                "seed": SEEDS[index],
                "caption": caption,
                "original_score_list": [0.25 + index / 200, 20.0],
                "optimized_score_list": [0.26, 21.0 - index],
            }
            handle.write(json.dumps(row) + "\n")
    return npz_dir, jsonl


@pytest.fixture(scope="module")
def encode():
    adapter = adapter_for(build_sd())
    calls: list[list[str]] = []

    def run(texts: list[str]) -> torch.Tensor:
        calls.append(list(texts))
        with torch.no_grad():
            return adapter.encode_prompt(texts).tokens

    run.calls = calls
    return run


def test_import_keeps_every_pair_with_scores_and_embeds_each_caption_once(
    tmp_path: Path, encode
) -> None:
    npz_dir, jsonl = _authors_layout(tmp_path)
    encode.calls.clear()
    summary = import_authors(
        npz_dir,
        jsonl,
        tmp_path / "npd",
        encode,
        family="sd",
        score_names=("hpsv2", "pickscore"),
        progress=False,
    )
    assert summary.rows_written == 3 and summary.prompts == 3
    assert [Path(p).name for p in summary.files_without_jsonl_row] == ["7_99.npz"]
    prompts = read_prompts(tmp_path / "npd")
    assert [prompts[i].text for i in sorted(prompts)] == ["a red cube", "a blue ball", "two cats"]
    assert sorted(t for call in encode.calls for t in call) == ["a blue ball", "a red cube"]

    data = NoisePromptDataset(tmp_path / "npd")
    assert data.manifest.latent_shape == (4, 8, 8) and data.manifest.text_shape == (77, 32)
    assert sorted(data.keys) == [(0, 11), (0, 33), (1, 22)]
    item = data.keys.index((0, 33))
    with np.load(npz_dir / "gpu1" / "2_33.npz") as pair:
        torch.testing.assert_close(data[item][0], torch.from_numpy(pair["arr_0"][0]).float())
        torch.testing.assert_close(data[item][1], torch.from_numpy(pair["arr_1"][0]).float())
    torch.testing.assert_close(data[item][2], data[data.keys.index((0, 11))][2])
    assert data.column("score_target:pickscore")[item] == 19.0
    # the authors' own filter (original < optimized on HPSv2) is margin 0 on the primary score
    assert sorted(NoisePromptDataset(tmp_path / "npd", margin=0.0).keys) == [(0, 11), (1, 22)]


def test_import_resumes_without_duplicates(tmp_path: Path, encode) -> None:
    npz_dir, jsonl = _authors_layout(tmp_path)
    import_authors(
        npz_dir,
        jsonl,
        tmp_path / "npd",
        encode,
        family="sd",
        score_names=("h", "p"),
        progress=False,
    )
    encode.calls.clear()
    again = import_authors(
        npz_dir,
        jsonl,
        tmp_path / "npd",
        encode,
        family="sd",
        score_names=("h", "p"),
        progress=False,
    )
    assert again.rows_written == 0 and again.rows_already_present == 3
    assert encode.calls == [["a red cube"]]  # only the shape probe
    assert len(NoisePromptDataset(tmp_path / "npd")) == 3


def test_an_import_run_again_encodes_the_embeddings_whose_shards_are_gone(
    tmp_path: Path, encode
) -> None:
    """Before: with the embedding shards and their ledger entries deleted, the import run
    again wrote the first caption's embedding only, and the rows of the others stayed
    unreadable."""
    npz_dir, jsonl = _authors_layout(tmp_path)
    out = tmp_path / "npd"

    def run():
        return import_authors(npz_dir, jsonl, out, encode, family="sd", score_names=("h", "p"),
                              progress=False)  # fmt: skip

    run()
    data = NoisePromptDataset(out)
    before = {index: data[item][2] for item, (index, _) in enumerate(data.keys)}
    for shard in (out / "embeddings").iterdir():
        shard.unlink()
    ledger = json.loads((out / "ledger-r00000.json").read_text())
    kept = {name: entry for name, entry in ledger.items() if name.startswith("rows/")}
    (out / "ledger-r00000.json").write_text(json.dumps(kept))
    assert run().rows_written == 0
    data = NoisePromptDataset(out)
    for item, (index, _) in enumerate(data.keys):
        torch.testing.assert_close(data[item][2], before[index])


def test_import_rejects_score_lists_of_the_wrong_length(tmp_path: Path, encode) -> None:
    npz_dir, jsonl = _authors_layout(tmp_path)
    with pytest.raises(GoldenNoiseError, match="expected 1 scores per list .* found 2"):
        import_authors(npz_dir, jsonl, tmp_path / "npd", encode, family="sd", progress=False)


def test_import_refuses_npz_files_of_mixed_shapes(tmp_path: Path, encode) -> None:
    """Before: np.stack raised a bare ValueError traceback halfway through the import."""
    npz_dir, jsonl = _authors_layout(tmp_path)
    odd = np.zeros((1, 4, 16, 16), dtype=np.float16)
    np.savez(npz_dir / "1_22.npz", odd, odd, 1)
    with pytest.raises(GoldenNoiseError, match=r"1_22\.npz: latents of shape \(4, 16, 16\)"):
        import_authors(
            npz_dir, jsonl, tmp_path / "npd", encode, family="sd", progress=False,
            score_names=("hpsv2", "pick"),
        )  # fmt: skip


# --- what the released collector writes: HPSv2.1 scores, fp16 or fp32 pairs, one row an index --
def _write_pairs(root: Path, dtype: type, shape=(1, 4, 8, 8), indices=(0, 1)) -> tuple[Path, Path]:
    npz_dir = root / "latents"
    npz_dir.mkdir(parents=True)
    rng = np.random.default_rng(1)
    rows = []
    for index in indices:
        # float32 values that float16 cannot hold (a 1e-4 nudge is below fp16's resolution at 1)
        pair = [(rng.standard_normal(shape) + 1e-4).astype(dtype) for _ in range(2)]
        np.savez(npz_dir / f"{index}_{index + 5}.npz", pair[0], pair[1], index)
        scores = {"original_score_list": [0.25], "optimized_score_list": [0.27]}
        rows.append({"index": index, "seed": index + 5, "caption": f"prompt {index}", **scores})
    jsonl = root / "SDXL_step_10_training.json"
    jsonl.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return npz_dir, jsonl


@pytest.mark.parametrize(("dtype", "stored"), [(np.float16, "float16"), (np.float32, "float32")])
def test_import_keeps_fp16_and_fp32_pairs_at_their_precision(tmp_path, encode, dtype, stored):
    npz_dir, jsonl = _write_pairs(tmp_path, dtype)
    import_authors(npz_dir, jsonl, tmp_path / "npd", encode, family="sd", progress=False)
    data = NoisePromptDataset(tmp_path / "npd")
    assert data.manifest.latent_dtype == stored and data.manifest.scorer == "hpsv2.1"
    with np.load(npz_dir / "1_6.npz") as pair:
        source, target = data[data.keys.index((1, 6))][:2]
        # Stored at the file's own precision: bit-exact, whichever it was.
        assert torch.equal(source, torch.from_numpy(pair["arr_0"][0]).float())
        assert torch.equal(target, torch.from_numpy(pair["arr_1"][0]).float())


def test_import_refuses_fp32_pairs_into_an_fp16_dataset(tmp_path, encode):
    npz_dir, jsonl = _write_pairs(tmp_path, np.float16)
    odd = np.zeros((1, 4, 8, 8), dtype=np.float32)
    np.savez(npz_dir / "1_6.npz", odd, odd, 1)
    refused = r"1_6\.npz: arr_0 \(source\) holds float32 latents, but the dataset"
    with pytest.raises(GoldenNoiseError, match=refused):
        import_authors(npz_dir, jsonl, tmp_path / "npd", encode, family="sd", progress=False)


def test_import_refuses_duplicate_jsonl_indices(tmp_path, encode):
    """Before: the second line silently replaced the first."""
    npz_dir, jsonl = _write_pairs(tmp_path, np.float16)
    lines = jsonl.read_text().splitlines()
    twin = json.loads(lines[0]) | {"caption": "another prompt"}
    jsonl.write_text("\n".join([*lines, json.dumps(twin)]) + "\n")
    with pytest.raises(GoldenNoiseError, match=r"line 3: index 0 appears a second time .*line 1"):
        import_authors(npz_dir, jsonl, tmp_path / "npd", encode, family="sd", progress=False)


def test_import_refuses_latents_of_another_pipeline(tmp_path, encode):
    """SDXL's 4x128x128 pairs named as the tiny SD pipeline's 4x16x16 ones."""
    npz_dir, jsonl = _write_pairs(tmp_path, np.float16, shape=(1, 4, 128, 128))
    with pytest.raises(GoldenNoiseError, match=r"shape \(4, 128, 128\), but the pipeline makes"):
        import_authors(
            npz_dir, jsonl, tmp_path / "npd", encode, family="sd", latent_shape=(4, 16, 16),
            progress=False,
        )  # fmt: skip


def test_import_authors_cli_labels_hpsv21_and_checks_the_pipelines_shape(tmp_path):
    from typer.testing import CliRunner

    from golden_noise.cli import app

    npz_dir, jsonl = _write_pairs(tmp_path / "ok", np.float16)
    args = ["import-authors", str(npz_dir), str(jsonl), "--pipeline", "toy", "--out"]
    result = CliRunner().invoke(app, [*args, str(tmp_path / "npd")])
    assert result.exit_code == 0, result.output
    assert NoisePromptDataset(tmp_path / "npd").manifest.scorer == "hpsv2.1"

    npz_dir, jsonl = _write_pairs(tmp_path / "big", np.float16, shape=(1, 4, 128, 128))
    result = CliRunner().invoke(app, ["import-authors", str(npz_dir), str(jsonl), "--pipeline",
                                      "toy", "--out", str(tmp_path / "npd2")])  # fmt: skip
    assert result.exit_code == 1
    assert "(4, 128, 128), but the pipeline makes (4, 8, 8)" in " ".join(result.output.split())


def test_import_keeps_a_caption_holding_a_line_separator_and_resumes(tmp_path, encode):
    """Before: the JSONL line was split at U+2028 ("not JSON"), and so was prompts.jsonl."""
    npz_dir, jsonl = _write_pairs(tmp_path, np.float16)
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    captions = ["a red\u2028circle", "a blue\x85square"]
    for row, caption in zip(rows, captions, strict=True):
        row["caption"] = caption
    jsonl.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    out = tmp_path / "npd"
    for written in (2, 0):  # then resumed
        summary = import_authors(npz_dir, jsonl, out, encode, family="sd", progress=False)
        assert summary.rows_written == written
    assert [r.text for r in read_prompts(out).values()] == captions


def test_import_refuses_a_pair_file_with_several_indices(tmp_path):
    """Before: arr_2 = [0, 3] was imported as index 0, the 3 ignored."""
    npz_dir, jsonl = _write_pairs(tmp_path, np.float16)
    pair = np.zeros((1, 4, 8, 8), dtype=np.float16)
    np.savez(npz_dir / "0_5.npz", pair, pair, np.array([0, 3]))
    out = tmp_path / "npd"
    args = ["import-authors", npz_dir, jsonl, "--pipeline", "toy", "--out", out]
    assert_refused(*run_cli(*args), "0_5.npz", "expected one prompt index in arr_2", "[0, 3]")
    assert not out.exists()


def _files(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_resume_naming_the_scores_in_another_order_is_refused(tmp_path):
    """Before: the resume exited 0 and its rows' pickscore column held the JSONL's clipscore."""
    npz_dir, jsonl = _write_pairs(tmp_path, np.float16, indices=(0, 1, 2))
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    for row in rows:
        row["original_score_list"], row["optimized_score_list"] = (
            [0.25, 20.0, 0.3],
            [0.26, 21.0, 0.31],
        )
    jsonl.write_text("".join(json.dumps(row) + "\n" for row in rows))
    first = tmp_path / "first"
    first.mkdir()
    (npz_dir / "0_5.npz").rename(first / "0_5.npz")
    out = tmp_path / "npd"
    args = [jsonl, "--pipeline", "toy", "--out", out, "--score-names"]
    code, output = run_cli("import-authors", first, *args, "hpsv2.1,pickscore,clipscore")
    assert code == 0, output
    assert DatasetManifest.load(out).teacher_options["score_names"] == [
        "hpsv2.1", "pickscore", "clipscore"
    ]  # fmt: skip
    before = _files(out)
    refused = run_cli("import-authors", npz_dir, *args, "hpsv2.1,clipscore,pickscore")
    assert_refused(*refused, "hpsv2.1,pickscore,clipscore", "this run names hpsv2.1,clipscore")
    assert _files(out) == before
    # a dataset from before the record: its extra columns' order is not known
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["teacher_options"]["score_names"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    before = _files(out)
    refused = run_cli("import-authors", npz_dir, *args, "hpsv2.1,pickscore,clipscore")
    assert_refused(*refused, "does not record in which order", "clipscore, pickscore")
    assert _files(out) == before
    manifest["teacher_options"]["score_names"] = ["hpsv2.1", "pickscore", "clipscore"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    code, output = run_cli("import-authors", npz_dir, *args, "hpsv2.1,pickscore,clipscore")
    assert code == 0 and "imported 2 pairs" in output, output
    data = NoisePromptDataset(out)
    assert list(data.column("score_source:pickscore")) == [20.0] * 3
    assert list(data.column("score_source:clipscore")) == pytest.approx([0.3] * 3)


def test_a_merge_of_imports_encoded_in_other_dtypes_is_refused(tmp_path):
    """Before: the merge exited 0 and held fp16- and fp32-encoded prompts side by side."""
    made = {}
    for dtype, indices in (("float32", (0, 1)), ("float16", (2, 3))):
        npz_dir, jsonl = _write_pairs(tmp_path / dtype, np.float16, indices=indices)
        made[dtype] = tmp_path / dtype / "npd"
        args = ["import-authors", npz_dir, jsonl, "--pipeline", "toy", "--dtype", dtype]
        code, output = run_cli(*args, "--out", made[dtype])
        assert code == 0, output
    merged = tmp_path / "merged"
    refused = run_cli("merge", made["float32"], made["float16"], "--out", merged)
    assert_refused(*refused, "encoded in float32", "in float16")
    assert not merged.exists() and not (tmp_path / ".merged.merging").exists()
    # with the teacher options of its sources nested (their score names differ), a merge
    # still records the one dtype they share
    npz_dir, jsonl = _write_pairs(tmp_path / "other", np.float16, indices=(4,))
    row = json.loads(jsonl.read_text()) | {"original_score_list": [0.2, 1.0]}
    jsonl.write_text(json.dumps(row | {"optimized_score_list": [0.3, 2.0]}) + "\n")
    other = tmp_path / "other" / "npd"
    args = ["import-authors", npz_dir, jsonl, "--pipeline", "toy", "--score-names", "hpsv2.1,p"]
    code, output = run_cli(*args, "--out", other)
    assert code == 0, output
    code, output = run_cli("merge", made["float32"], other, "--out", merged)
    assert code == 0, output
    manifest = DatasetManifest.load(merged)
    assert "sources" in manifest.teacher_options and manifest.text_dtype() == "float32"
