"""toy-reward fits only what it records: an image count it cannot draw, an edited record of
how the images were drawn and a re-run that would replace a finished model with another
settings' are refused with one error line, leaving every file as it was."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_outcome import assert_refused, run_cli
from typer.testing import CliRunner

from golden_noise.cli.app import app
from golden_noise.core import file_digests
from golden_noise.toy import reward_fit
from golden_noise.toy.recipe import RewardRecipe

REWARD = ["--images", "24", "--epochs", "1", "--batch-size", "8", "--width", "8"]


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """8-image chunks instead of 256 keep a draw to seconds; the logic is the same."""
    monkeypatch.setattr(reward_fit, "CHUNK", 8)
    monkeypatch.setattr("golden_noise.toy.recipe.CHUNK", 8)


@pytest.fixture(scope="module")
def drawn_fit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("toy-reward") / "fit"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reward_fit, "CHUNK", 8)
        patch.setattr("golden_noise.toy.recipe.CHUNK", 8)
        code, output = run_cli("toy-reward", "--out", out, *REWARD, "--no-progress")
    assert code == 0, output
    return out


@pytest.fixture
def fit_copy(drawn_fit: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(drawn_fit, tmp_path / "fit"))


def test_toy_reward_refuses_images_that_are_not_whole_chunks(
    tmp_path: Path, small_chunks: None
) -> None:
    """Before: 28 images drew and fitted 24 and recorded 28."""
    out = tmp_path / "fit"
    args = ["--images", "28", "--epochs", "1", "--batch-size", "8", "--width", "8"]
    code, output = run_cli("toy-reward", "--out", out, *args, "--no-progress")
    assert_refused(code, output, "chunks of 8", "got 28", "24 or 32")
    assert not out.exists()


def test_toy_reward_refuses_an_edited_record_of_the_draw(
    fit_copy: Path, small_chunks: None
) -> None:
    """Before: with the seed edited to 1 in the record, seed 0's images were fitted against
    seed 1's prompts."""
    shutil.rmtree(fit_copy / "reward_model")  # deleted to fit again
    path = fit_copy / "images" / reward_fit.DRAW_SETTINGS
    path.write_text(path.read_text().replace('"seed": 0', '"seed": 1'))
    before = files(fit_copy)
    code, output = run_cli("toy-reward", "--out", fit_copy, *REWARD, "--seed", "1")
    assert_refused(code, output, reward_fit.DRAW_SETTINGS, "was changed", "Delete")
    assert files(fit_copy) == before


def test_toy_reward_refuses_to_replace_a_model_fitted_with_other_settings(
    fit_copy: Path, small_chunks: None
) -> None:
    """Before: the re-run silently replaced reward_model/ with a fit of 2 epochs."""
    before = files(fit_copy)
    code, output = run_cli("toy-reward", "--out", fit_copy, *REWARD, "--epochs", "2")
    assert_refused(code, output, "epochs: run 1, now 2", "another --out", "reward_model")
    assert files(fit_copy) == before


@pytest.mark.parametrize("damage", ["recipe deleted", "someone's own files"])
def test_toy_reward_refuses_a_model_folder_without_its_record(
    fit_copy: Path, small_chunks: None, damage: str
) -> None:
    """Before: with the record gone, the run fitted again with other settings and replaced the
    finished model (or the user's files in reward_model/), exit 0."""
    model = fit_copy / "reward_model"
    if damage == "recipe deleted":
        (model / "reward_recipe.json").unlink()
    else:
        shutil.rmtree(model)
        model.mkdir()
        (model / "config.json").write_text("mine")
    before = files(fit_copy)
    code, output = run_cli("toy-reward", "--out", fit_copy, *REWARD, "--epochs", "2")
    assert_refused(code, output, "no reward_recipe.json", "another --out")
    assert files(fit_copy) == before


def test_toy_reward_run_again_with_its_settings_fits_the_same_model(
    fit_copy: Path, small_chunks: None
) -> None:
    before = files(fit_copy)
    code, output = run_cli("toy-reward", "--out", fit_copy, *REWARD, "--no-progress")
    assert code == 0, output
    assert files(fit_copy) == before
    recipe = json.loads((fit_copy / "reward_model" / "reward_recipe.json").read_text())
    assert (recipe["images"], recipe["epochs"]) == (24, 1)


class Killed(Exception):
    pass


def test_toy_reward_resumes_after_a_kill_between_the_draw_record_and_its_digest(
    tmp_path: Path, small_chunks: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_bytes = file_digests.atomic_write_bytes

    def write_and_stop(target: Path, data: bytes) -> None:
        write_bytes(target, data)
        if target.name == reward_fit.DRAW_SETTINGS:
            raise Killed

    out = tmp_path / "fit"
    monkeypatch.setattr(file_digests, "atomic_write_bytes", write_and_stop)
    with pytest.raises(Killed):
        reward_fit.fit_reward_model(out, RewardRecipe(24, 1, 8, width=8), progress=False)
    monkeypatch.setattr(file_digests, "atomic_write_bytes", write_bytes)
    code, output = run_cli("toy-reward", "--out", out, *REWARD, "--no-progress")
    assert code == 0, output


def test_toy_reward_refuses_images_drawn_for_another_seed(
    fit_copy: Path, small_chunks: None
) -> None:
    """Before: the fit paired seed 0's images with seed 1's prompts and recorded seed 1."""
    before = files(fit_copy)
    code, output = run_cli("toy-reward", "--out", fit_copy, *REWARD, "--seed", "1")
    assert_refused(code, output, "seed: run 0, now 1", "images")
    assert files(fit_copy) == before


def test_toy_reward_refuses_chunks_without_their_record(fit_copy: Path, small_chunks: None) -> None:
    (fit_copy / "images" / reward_fit.DRAW_SETTINGS).unlink()
    before = files(fit_copy)
    code, output = run_cli("toy-reward", "--out", fit_copy, *REWARD)
    assert_refused(code, output, "3 image chunks", reward_fit.DRAW_SETTINGS)
    assert files(fit_copy) == before


def test_toy_reward_reuses_its_chunks_for_more_images_and_another_fit(
    fit_copy: Path, small_chunks: None
) -> None:
    """The image count and the fit's own settings do not change a chunk: only new chunks are
    drawn, and the fit is redone once the finished model is removed (a finished model is never
    replaced by a fit with other settings)."""
    images = fit_copy / "images"
    kept = {p.name: p.read_bytes() for p in images.glob("chunk_*.npz")}
    shutil.rmtree(fit_copy / "reward_model")
    more = ["--images", "32", "--epochs", "2", "--batch-size", "8", "--width", "8"]
    code, output = run_cli("toy-reward", "--out", fit_copy, *more, "--no-progress")
    assert code == 0, output
    assert {name: (images / name).read_bytes() for name in kept} == kept
    with np.load(images / "chunk_0003.npz") as chunk:
        assert chunk["images"].shape == (8, 32, 32, 3)
    recipe = json.loads((fit_copy / "reward_model" / "reward_recipe.json").read_text())
    assert (recipe["images"], recipe["epochs"]) == (32, 2)


def test_toy_reward_refuses_an_edited_chunk(fit_copy: Path, small_chunks: None) -> None:
    """Before: the edited score was fitted on as if the pipeline had drawn it."""
    path = fit_copy / "images" / "chunk_0000.npz"
    with np.load(path) as chunk:
        images, soft = chunk["images"], chunk["soft"].copy()
    soft[0] += 0.5
    np.savez(path, images=images, soft=soft)
    before = files(fit_copy)
    code, output = run_cli("toy-reward", "--out", fit_copy, *REWARD, "--no-progress")
    assert_refused(code, output, "chunk_0000.npz", "expected SHA-256", "Delete that chunk")
    assert files(fit_copy) == before


def test_toy_reward_refuses_a_chunk_without_a_digest(fit_copy: Path, small_chunks: None) -> None:
    ledger = fit_copy / "images" / reward_fit.CHUNK_DIGESTS
    digests = json.loads(ledger.read_text())
    del digests["chunk_0002.npz"]
    ledger.write_text(json.dumps(digests))
    before = files(fit_copy)
    code, output = run_cli("toy-reward", "--out", fit_copy, *REWARD, "--no-progress")
    assert_refused(code, output, "chunk_0002.npz has no SHA-256", "Delete that chunk")
    assert files(fit_copy) == before


def test_toy_reward_reuses_a_chunk_killed_before_its_digest_was_recorded_alone(
    drawn_fit: Path, tmp_path: Path, small_chunks: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_bytes = file_digests.atomic_write_bytes

    def write_and_stop(target: Path, data: bytes) -> None:
        write_bytes(target, data)
        if target.name == "chunk_0001.npz":
            raise Killed

    out = tmp_path / "fit"
    monkeypatch.setattr(file_digests, "atomic_write_bytes", write_and_stop)
    args = ["toy-reward", "--out", str(out), *REWARD, "--no-progress"]
    assert isinstance(CliRunner().invoke(app, args).exception, Killed)
    monkeypatch.setattr(file_digests, "atomic_write_bytes", write_bytes)
    code, output = run_cli("toy-reward", "--out", out, *REWARD, "--no-progress")
    assert code == 0, output
    drawn = {k: v for k, v in files(drawn_fit).items() if k.startswith("images/chunk_")}
    assert {k: v for k, v in files(out).items() if k.startswith("images/chunk_")} == drawn


@pytest.mark.parametrize("lr", ["1e6", "1e30"])
def test_toy_reward_refuses_a_diverged_fit(fit_copy: Path, small_chunks: None, lr: str) -> None:
    """Before: the NaN model was written, with "val_mse": NaN in its recipe, and exit 0."""
    shutil.rmtree(fit_copy / "reward_model")  # deleted to fit again
    before = files(fit_copy)
    code, output = run_cli("toy-reward", "--out", fit_copy, *REWARD, "--lr", lr, "--no-progress")
    assert_refused(code, output, "training diverged", "--lr", "Nothing was written")
    assert files(fit_copy) == before
