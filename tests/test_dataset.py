"""The on-disk Noise Prompt Dataset: atomic shards, unique keys, filters, splits, errors."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from npd_fixtures import (
    LATENT,
    TEXT,
    manifest,
    source_latents,
    synthetic_world,
    write_synthetic_dataset,
)

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.dataset import (
    DatasetManifest,
    DatasetWriter,
    NoisePromptDataset,
    PromptRecord,
    load_splits,
    present_keys,
    read_prompts,
    split_prompts,
)


def test_round_trip_returns_float32_rows_with_their_prompt_embedding(tmp_path: Path) -> None:
    root = write_synthetic_dataset(tmp_path / "npd", n_prompts=5, seeds_per_prompt=3)
    data = NoisePromptDataset(root)
    embeds, shifts = synthetic_world(5)
    assert len(data) == 15
    assert sorted(data.keys) == [(p, s) for p in range(5) for s in range(3)]
    assert len(list((root / "rows").iterdir())) == 1  # 15 rows < 16 per shard: one tail shard
    for item in (0, 7, 14):
        source, target, prompt_embeds = data[item]
        p, s = data.keys[item]
        assert source.dtype == target.dtype == prompt_embeds.dtype == torch.float32
        assert source.shape == LATENT and prompt_embeds.shape == TEXT
        expected = source_latents([p], [s])[0]
        torch.testing.assert_close(source, expected.half().float())
        torch.testing.assert_close(target, (expected + shifts[p][:, None, None]).half().float())
        torch.testing.assert_close(prompt_embeds, embeds[p].half().float())
    assert read_prompts(root)[3].text == "prompt 3"
    assert DatasetManifest.load(root).latent_shape == LATENT


def test_keys_are_unique_by_construction_across_reopen(tmp_path: Path) -> None:
    root = write_synthetic_dataset(tmp_path / "npd", n_prompts=2, seeds_per_prompt=2)
    writer = DatasetWriter(root, manifest())
    assert writer.has(1, 1) and not writer.has(1, 2)
    latents = source_latents([1], [1])
    with pytest.raises(GoldenNoiseError, match=r"unique by \(prompt_index, seed\)"):
        writer.add(latents, latents, [1], [1], [0.0], [0.0])
    with pytest.raises(GoldenNoiseError, match="repeated"):
        both = source_latents([1, 1], [5, 5])
        writer.add(both, both, [1, 1], [5, 5], [0.0, 0.0], [0.0, 0.0])
    writer.add(latents, latents, [1], [2], [0.0], [0.0])
    writer.close()
    assert present_keys(root) == {(0, 0), (0, 1), (1, 0), (1, 1), (1, 2)}


def test_stray_temp_files_are_ignored_and_cleaned_truncated_shards_are_named(
    tmp_path: Path,
) -> None:
    root = write_synthetic_dataset(
        tmp_path / "npd", n_prompts=3, seeds_per_prompt=2, rows_per_shard=2
    )
    stray = root / "rows" / ".tmp-r00000-deadbeef0000-r00000-000009.safetensors"
    stray.write_bytes(b"half a shard")
    assert len(NoisePromptDataset(root)) == 6  # the reader never looks at temp files
    DatasetWriter(root, manifest(), rank=0).close()  # reopening rank 0 cleans its leftovers
    assert not stray.exists()

    shard = sorted((root / "rows").iterdir())[1]
    shard.write_bytes(shard.read_bytes()[:-40])
    with pytest.raises(GoldenNoiseError, match=f"corrupt shard .*{shard.name}"):
        NoisePromptDataset(root)


def test_margin_filter_keeps_rows_whose_target_wins_by_the_margin(tmp_path: Path) -> None:
    root = write_synthetic_dataset(tmp_path / "npd", n_prompts=4, seeds_per_prompt=4)
    assert len(NoisePromptDataset(root)) == 16
    kept = NoisePromptDataset(root, margin=0.5)
    assert sorted(kept.keys) == [(p, s) for p in range(4) for s in (0, 2)]
    assert (kept.column("score_source") + 0.5 < kept.column("score_target")).all()
    assert len(NoisePromptDataset(root, margin=1.5)) == 0
    with pytest.raises(GoldenNoiseError, match="cannot filter on scorer 'hps'"):
        NoisePromptDataset(root, margin=0.0, score="hps")


def test_extra_scorer_columns_can_drive_the_filter(tmp_path: Path) -> None:
    with DatasetWriter(tmp_path / "npd", manifest(), prompts=[PromptRecord(0, "a")]) as writer:
        writer.add_embeddings([0], torch.zeros(1, *TEXT))
        x = source_latents([0, 0], [0, 1])
        writer.add(
            x, x, [0, 0], [0, 1], [0.0, 0.0], [1.0, 1.0], extra_scores={"aes": ([5, 5], [4, 6])}
        )
    assert NoisePromptDataset(tmp_path / "npd", margin=0.0, score="aes").keys == [(0, 1)]
    assert len(NoisePromptDataset(tmp_path / "npd", margin=0.0)) == 2


def test_split_is_by_prompt_disjoint_deterministic_and_margin_independent(tmp_path: Path) -> None:
    root = write_synthetic_dataset(tmp_path / "npd", n_prompts=20, seeds_per_prompt=2)
    train, val = load_splits(root, val_fraction=0.25, split_seed=3)
    assert set(train.prompt_indices).isdisjoint(val.prompt_indices)
    assert set(train.prompt_indices) | set(val.prompt_indices) == set(range(20))
    assert len(val.prompt_indices) == 5 and len(train) + len(val) == 40
    again_train, again_val = load_splits(root, val_fraction=0.25, split_seed=3, margin=0.0)
    assert set(again_val.prompt_indices) == set(val.prompt_indices)
    assert all(s % 2 == 0 for _, s in again_train.keys)
    assert split_prompts(range(20), 0.25, seed=4)[1] != set(val.prompt_indices)
    assert split_prompts([7, 9], 0.01)[1] in ({7}, {9})  # tiny sets still validate


def test_writer_refuses_a_dataset_made_for_another_shape_or_model(tmp_path: Path) -> None:
    root = write_synthetic_dataset(tmp_path / "npd", n_prompts=1, seeds_per_prompt=1)
    with pytest.raises(
        GoldenNoiseError, match=r"latent_shape: dataset has \[4, 8, 8\], writer has \[4, 16, 16\]"
    ):
        DatasetWriter(root, manifest(latent=(4, 16, 16)))
    other = manifest()
    other.w_l = 7.0
    with pytest.raises(GoldenNoiseError, match="w_l"):
        DatasetWriter(root, other)
    writer = DatasetWriter(root, manifest())
    bad = torch.zeros(1, 4, 16, 16)
    assert (root / ".writer-r00000.lock").is_file()  # the writer's own, as a collect leaves it
    with pytest.raises(GoldenNoiseError, match=r"must have shape \(1, 4, 8, 8\)"):
        writer.add(bad, bad, [0], [9], [0.0], [0.0])


def test_a_refused_writer_leaves_a_folder_without_locks_as_it_was(tmp_path: Path) -> None:
    """A merged or imported dataset holds no writer lock; refusing to write into it left one."""
    root = write_synthetic_dataset(tmp_path / "npd", n_prompts=1, seeds_per_prompt=1)
    for lock in root.glob(".writer-*.lock"):
        lock.unlink()
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    with pytest.raises(GoldenNoiseError, match="w_l"):
        DatasetWriter(root, dataclasses.replace(manifest(), w_l=7.0))
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


def test_nan_rows_empty_datasets_and_unwritable_dirs_error_clearly(tmp_path: Path) -> None:
    root = tmp_path / "npd"
    with DatasetWriter(root, manifest(), prompts=[PromptRecord(0, "a")]) as writer:
        x = source_latents([0], [0])
        with pytest.raises(
            GoldenNoiseError, match=r"target contains NaN or Inf for rows .*\(0, 0\)"
        ):
            writer.add(x, torch.full_like(x, float("nan")), [0], [0], [0.0], [0.0])
        with pytest.raises(GoldenNoiseError, match="text embeddings .* NaN"):
            writer.add_embeddings([0], torch.full((1, *TEXT), float("nan")))
    with pytest.raises(GoldenNoiseError, match="has no rows"):
        load_splits(root)
    with pytest.raises(GoldenNoiseError, match="no Noise Prompt Dataset"):
        NoisePromptDataset(tmp_path / "nowhere")
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(GoldenNoiseError, match="cannot create dataset directory"):
        DatasetWriter(blocker / "npd", manifest())


def test_rows_without_a_cached_embedding_are_reported(tmp_path: Path) -> None:
    with DatasetWriter(tmp_path / "npd", manifest()) as writer:
        x = source_latents([4], [0])
        writer.add(x, x, [4], [0], [0.0], [0.0])
    with pytest.raises(
        GoldenNoiseError, match=r"no cached text embedding \(e.g. prompt indices \[4\]\)"
    ):
        NoisePromptDataset(tmp_path / "npd")


def test_nan_in_a_shard_written_by_other_means_is_caught_on_read(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    root = write_synthetic_dataset(tmp_path / "npd", n_prompts=2, seeds_per_prompt=2)
    shard = next((root / "rows").iterdir())
    tensors = load_file(shard)
    tensors["source"][1, 0, 0, 0] = float("nan")
    save_file(tensors, shard)
    data = NoisePromptDataset(root)
    with pytest.raises(GoldenNoiseError, match=f"source of row .* in .*{shard.name} contains NaN"):
        data[1]


KILLABLE_WRITER = textwrap.dedent(
    """
    import sys, time
    import torch
    sys.path.insert(0, {tests!r})
    from npd_fixtures import manifest, source_latents
    from golden_noise.dataset import DatasetWriter, PromptRecord
    root = {root!r}
    prompts = [PromptRecord(p, f"p{{p}}") for p in range(6)]
    with DatasetWriter(root, manifest(), prompts=prompts, rows_per_shard=3) as writer:
        for p in range(6):
            if not writer.has_embedding(p):
                writer.add_embeddings([p], torch.full((1, 8, 16), float(p)))
            for s in range(5):
                if writer.has(p, s):
                    continue
                x = source_latents([p], [s])
                writer.add(x, x + 1 + p, [p], [s], [p + s / 8], [s - p / 8])
                time.sleep({pause})
    print("done")
    """
)


@pytest.mark.parametrize(
    ("step", "call", "rows_read", "pending"),
    [
        ("publish", 3, 3, "embeddings/r00000-000001.safetensors"),  # listed, not renamed
        ("confirm_shard", 4, 6, "rows/r00000-000001.safetensors"),  # renamed, not confirmed
    ],
)
def test_a_kill_between_listing_a_shard_and_confirming_it_leaves_a_readable_dataset(
    tmp_path: Path, step: str, call: int, rows_read: int, pending: str
) -> None:
    """Before: a kill after a shard was listed in the ledger and before it was renamed into
    place left an entry that every reader took for a deleted shard, so the interrupted
    dataset could not be read. The writer's calls go embeddings, rows, embeddings, rows (3
    rows a shard, a new prompt's embedding first); the kill lands in the `call`-th `step`."""
    root = tmp_path / "npd"
    tests = str(Path(__file__).parent)
    kill_in_step = textwrap.dedent(
        f"""
        import os, signal
        import golden_noise.dataset.writer as module
        step, calls = module.{step}, []
        def killed(*args):
            calls.append(args)
            if len(calls) == {call}:
                os.kill(os.getpid(), signal.SIGKILL)
            step(*args)
        module.{step} = killed
        """
    )
    job = kill_in_step + KILLABLE_WRITER.format(tests=tests, root=str(root), pause=0)
    killed = subprocess.run([sys.executable, "-c", job], capture_output=True)
    assert killed.returncode == -9, killed.stderr[-2000:]
    ledger = json.loads((root / "ledger-r00000.json").read_text())
    assert [name for name, entry in ledger.items() if entry.get("pending")] == [pending]
    assert len(NoisePromptDataset(root)) == rows_read
    subprocess.run(
        [sys.executable, "-c", KILLABLE_WRITER.format(tests=tests, root=str(root), pause=0)],
        check=True,
        capture_output=True,
    )
    assert sorted(NoisePromptDataset(root).keys) == [(p, s) for p in range(6) for s in range(5)]
    ledger = json.loads((root / "ledger-r00000.json").read_text())
    assert not [name for name, entry in ledger.items() if entry.get("pending")]
    assert all((root / name).is_file() for name in ledger)


def test_kill_9_mid_run_then_resume_leaves_every_row_exactly_once(tmp_path: Path) -> None:
    root = str(tmp_path / "npd")
    tests = str(Path(__file__).parent)
    slow = subprocess.Popen(
        [sys.executable, "-c", KILLABLE_WRITER.format(tests=tests, root=root, pause=0.05)]
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(Path(root, "rows").glob("r*"))) < 2:
        time.sleep(0.02)
    slow.kill()  # SIGKILL: no flush, no cleanup
    slow.wait()
    partial = present_keys(Path(root))
    assert 0 < len(partial) < 30
    done = subprocess.run(
        [sys.executable, "-c", KILLABLE_WRITER.format(tests=tests, root=root, pause=0)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "done" in done.stdout
    data = NoisePromptDataset(root)
    assert sorted(data.keys) == [(p, s) for p in range(6) for s in range(5)]
    assert data.table.duplicates_dropped == 0
    assert not list(Path(root).rglob(".tmp-*"))
    # Every row's content (source, target, embedding, both scores) equals an uninterrupted
    # run's, bit for bit: no model is involved, so nothing depends on how rows were batched.
    reference = str(tmp_path / "reference")
    subprocess.run(
        [sys.executable, "-c", KILLABLE_WRITER.format(tests=tests, root=reference, pause=0)],
        check=True,
        capture_output=True,
    )
    uninterrupted = NoisePromptDataset(reference)
    expected = {key: i for i, key in enumerate(uninterrupted.keys)}
    for item in range(len(data)):
        p, s = data.keys[item]
        source, target, embeds = data[item]
        ref_source, ref_target, ref_embeds = uninterrupted[expected[(p, s)]]
        assert torch.equal(source, source_latents([p], [s])[0].half().float())
        assert torch.equal(source, ref_source) and torch.equal(target, ref_target)
        assert torch.equal(embeds, ref_embeds) and float(embeds[0, 0]) == p
        for column in ("score_source", "score_target"):
            ours = data.column(column)[item]
            assert ours == uninterrupted.column(column)[expected[(p, s)]], (p, s, column)
    assert np.array_equal(np.sort(data.column("prompt_index")), np.repeat(np.arange(6), 5))


def test_a_second_writer_of_the_same_rank_is_refused_until_the_first_dies(tmp_path: Path) -> None:
    """Before: two collects on one folder without accelerate each did all the work and wrote
    every row twice. Now the second is refused; a killed writer's lock goes with it."""
    root = tmp_path / "npd"
    first = subprocess.Popen(
        [
            sys.executable,
            "-c",
            KILLABLE_WRITER.format(tests=str(Path(__file__).parent), root=str(root), pause=0.05),
        ]
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(Path(root, "rows").glob("r*")):
        time.sleep(0.02)
    try:
        with pytest.raises(GoldenNoiseError, match=rf"pid {first.pid}\) is already writing"):
            DatasetWriter(root, manifest())
        DatasetWriter(root, manifest(), rank=1).close()  # another rank of one launch may write
    finally:
        first.kill()
        first.wait()
    with DatasetWriter(root, manifest()) as writer:  # the lock died with its holder
        assert len(writer.keys) > 0
    with DatasetWriter(root, manifest()), pytest.raises(GoldenNoiseError, match="already"):
        DatasetWriter(root, manifest())  # in one process too
