"""Fault tests that stay: a killed evaluate, a full disk under collect, planted pickles.

Their companions live beside their features: kill -9 at random points of collect
(test_collect.py), of the dataset writer (test_dataset.py) and of train, mid step and mid
checkpoint (test_train.py), each resumed to the uninterrupted run's rows or weights, and a
planted pickle in every file of a training checkpoint (test_train.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from npd_fixtures import write_synthetic_dataset
from safetensors.torch import load_file
from tiny_pipelines import tiny_npnet

from golden_noise.collection.collect import SeedPlan
from golden_noise.core.errors import GoldenNoiseError
from golden_noise.dataset import DatasetManifest, NoisePromptDataset, RowTable
from golden_noise.dataset.shards import list_shards
from golden_noise.npnet import NPNet

TESTS = Path(__file__).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
CLI = [sys.executable, "-c", "from golden_noise.cli import app; app()"]


def _evaluate(out: Path) -> list[str]:
    return [
        *CLI, "evaluate", "--prompts", "toy:heldout:4", "--seeds", "0-1", "--steps", "3",
        "--scorers", "toy-soft", "--batch-size", "2", "--out", str(out), "--no-progress",
    ]  # fmt: skip


def test_evaluate_killed_mid_generation_resumes_to_the_uninterrupted_result(
    tmp_path: Path,
) -> None:
    out, images = tmp_path / "killed", tmp_path / "killed" / "images"
    reference = subprocess.run(
        _evaluate(tmp_path / "reference"), env=ENV, capture_output=True, text=True
    )
    assert reference.returncode == 0, reference.stderr[-2000:]
    process = subprocess.Popen(
        _evaluate(out), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while process.poll() is None and len(list(images.glob("*.png"))) < 4:
        assert time.monotonic() < deadline, "evaluate never wrote an image"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    written = len(list(images.glob("*.png")))
    assert 0 < written < 24, written  # 8 samples x 3 arms: killed part-way
    # a kill can land mid-write: plant such a leftover for an image the resume must write
    lost = sorted(
        {p.name for p in (tmp_path / "reference" / "images").iterdir()}
        - {p.name for p in images.iterdir()}
    )[0]
    (images / f".tmp-0123456789ab-{lost}").write_bytes(b"half a png")
    resumed = subprocess.run(_evaluate(out), env=ENV, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    # Images are written whole (temp + rename), the kill leaves no temp file, and the resumed
    # folder scores what the uninterrupted one does: images lost 0, duplicated 0, corrupt 0.
    assert not [p for p in images.iterdir() if p.name.startswith(".")]
    assert sorted(p.name for p in images.iterdir()) == sorted(
        p.name for p in (tmp_path / "reference" / "images").iterdir()
    )
    ours = json.loads((out / "metrics.json").read_text())["summary"]
    theirs = json.loads((tmp_path / "reference" / "metrics.json").read_text())["summary"]
    assert json.dumps(ours) == json.dumps(theirs)


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 2 MB tmpfs, or a skip where mounting is not allowed."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_full_disk_under_collect_then_resume_leaves_every_row_once_and_no_corrupt_shard(
    small_disk: Path,
) -> None:
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (2048 * 1024 - 40 * 1024))  # leave ~40 kB: a few shards
    out = small_disk / "npd"
    job = [sys.executable, str(TESTS / "collect_job.py"), str(out), "16", "4"]
    full = subprocess.run(job, env=ENV, capture_output=True, text=True)
    assert full.returncode != 0
    assert "No space left on device" in full.stderr or "StorageFull" in full.stderr
    assert "GoldenNoiseError" in full.stderr  # one clear error, not a bare OSError
    before = len(RowTable.load(out, DatasetManifest.load(out)))
    filler.unlink()  # space is freed; the same command resumes
    resumed = subprocess.run(job, env=ENV, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    table = RowTable.load(out, DatasetManifest.load(out))
    keys = sorted(
        zip(table.columns["prompt_index"].tolist(), table.columns["seed"].tolist(), strict=True)
    )
    expected = sorted(SeedPlan(per_prompt=4).keys(16))
    lost = len(set(expected) - set(keys))
    duplicated = table.duplicates_dropped
    corrupt = 0
    for shard in list_shards(out / "rows") + list_shards(out / "embeddings"):
        try:
            load_file(str(shard))
        except Exception:  # any unreadable shard counts
            corrupt += 1
    assert (lost, duplicated, corrupt) == (0, 0, 0), (before, lost, duplicated, corrupt)
    assert keys == expected
    assert not [p for p in (out / "rows").iterdir() if p.name.startswith(".tmp")]


class PlantedPayload:
    """Unpickling this runs a shell command that creates `marker`: what a hostile file does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _plant_npnet_pth(tmp_path: Path, payload: object) -> None:
    torch.save({"unet_svd": payload}, tmp_path / "npnet.pth")
    NPNet.from_pretrained(tmp_path / "npnet.pth")


def _plant_npnet_folder(tmp_path: Path, payload: object) -> None:
    tiny_npnet(32).save_pretrained(tmp_path / "net")
    torch.save(payload, tmp_path / "net" / "model.safetensors")
    NPNet.from_pretrained(tmp_path / "net")


def _plant_scorer_checkpoint(tmp_path: Path, payload: object) -> None:
    from golden_noise.core.weights import read_tensors

    torch.save({"state_dict": payload}, tmp_path / "scorer.pt")
    read_tensors(tmp_path / "scorer.pt", "state_dict")


def _plant_dataset_shard(tmp_path: Path, payload: object) -> None:
    root = write_synthetic_dataset(tmp_path / "npd", n_prompts=4, seeds_per_prompt=2)
    torch.save(payload, list_shards(root / "rows")[0])
    data = NoisePromptDataset(root)
    data[0]


def _plant_embedding_shard(tmp_path: Path, payload: object) -> None:
    root = write_synthetic_dataset(tmp_path / "npd", n_prompts=4, seeds_per_prompt=2)
    torch.save(payload, list_shards(root / "embeddings")[0])
    data = NoisePromptDataset(root)
    data[0]


PLANTS = {
    "npnet .pth": _plant_npnet_pth,
    "npnet folder": _plant_npnet_folder,
    "scorer checkpoint": _plant_scorer_checkpoint,
    "dataset rows shard": _plant_dataset_shard,
    "dataset embeddings shard": _plant_embedding_shard,
}


@pytest.mark.parametrize("plant", PLANTS.values(), ids=PLANTS.keys())
def test_a_planted_pickle_in_a_file_the_project_reads_never_runs(plant, tmp_path: Path) -> None:
    marker = tmp_path / "payload-ran"
    probe = tmp_path / "probe.pkl"
    torch.save(PlantedPayload(marker), probe)
    torch.load(probe, weights_only=False)
    assert marker.exists()  # the payload is live: full unpickling runs it
    marker.unlink()
    with pytest.raises(GoldenNoiseError):
        plant(tmp_path, PlantedPayload(marker))
    assert not marker.exists()
