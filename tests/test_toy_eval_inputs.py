"""toy-eval refuses what it cannot measure or write before any work: a pipeline with NaN or
infinite weights (a diverged run's, whose images would score a silent 0), images that turn
NaN, a grid file format it cannot write, and one path for both the grid and the numbers."""

import hashlib
import shutil
from pathlib import Path

import pytest
import torch
from cli_outcome import assert_refused, run_cli
from safetensors.torch import load_file, save_file

from golden_noise.toy.pipeline import PIPELINE_FILES, WEIGHTS_DIR

FAST = ["--seeds", "1", "--steps", "1"]


def digests(folder: Path) -> dict[str, str]:
    """The SHA-256 of every file under `folder`, by relative path."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }


@pytest.fixture
def nan_pipeline(tmp_path: Path) -> Path:
    """The shipped pipeline with every UNet weight NaN, as a diverged toy-train run exports."""
    folder = tmp_path / "pipeline"
    for name in PIPELINE_FILES:
        source = WEIGHTS_DIR / name
        if source.is_dir():
            shutil.copytree(source, folder / name)
        else:
            folder.mkdir(exist_ok=True)
            shutil.copy(source, folder / name)
    path = folder / "unet" / "diffusion_pytorch_model.safetensors"
    weights = load_file(path)
    save_file({k: torch.full_like(v, torch.nan) for k, v in weights.items()}, path)
    return folder


def test_toy_eval_refuses_a_pipeline_with_nan_weights(nan_pipeline: Path, tmp_path: Path) -> None:
    """Before: every image NaN, every rate 0.000, exit 0."""
    before = digests(tmp_path)
    numbers = tmp_path / "te.json"
    code, output = run_cli("toy-eval", "--pipeline-dir", nan_pipeline, *FAST, "--json", numbers)
    assert_refused(code, output, "NaN or infinite weights", "unet.", str(nan_pipeline))
    assert digests(tmp_path) == before


def test_toy_eval_refuses_nan_images(tmp_path: Path) -> None:
    """Finite weights, a guidance scale that overflows the sampler: before, scored as 0."""
    numbers = tmp_path / "te.json"
    code, output = run_cli("toy-eval", *FAST, "--guidance", "1e38", "--json", numbers)
    assert_refused(code, output, "NaN or infinite images", "guidance 1e+38")
    assert not numbers.exists()


@pytest.mark.parametrize("name", ["g.out", "grid"])
def test_toy_eval_refuses_a_grid_format_it_cannot_write(tmp_path: Path, name: str) -> None:
    """Before: the whole measurement ran, then a traceback (KeyError '.out')."""
    code, output = run_cli("toy-eval", *FAST, "--grid", tmp_path / name)
    assert_refused(code, output, "--grid", ".png, .jpg, .jpeg, .webp")
    assert "images;" not in output  # refused before measuring
    assert list(tmp_path.iterdir()) == []


def test_toy_eval_refuses_one_path_for_grid_and_json(tmp_path: Path) -> None:
    """Before: exit 0, the numbers written over the grid."""
    same = tmp_path / "same.png"
    code, output = run_cli("toy-eval", *FAST, "--grid", same, "--json", tmp_path / "." / same.name)
    assert_refused(code, output, "--grid and --json both name", "own path")
    assert "images;" not in output
    assert list(tmp_path.iterdir()) == []
