"""toy-train resumes only the run its folder holds: a re-run with settings
that change the numbers is refused with one error line and leaves every file as it was."""

import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
from cli_outcome import assert_refused, run_cli
from safetensors.torch import load_file
from typer.testing import CliRunner

from golden_noise.cli.app import app
from golden_noise.core import file_digests
from golden_noise.toy import train as toy_train

TINY = ["--tiny", "--batch-size", "4", "--threads", "1", "--vae-steps", "2"]


def files(folder: Path) -> dict[str, bytes | None]:
    """Every file's bytes and every folder (None) under `folder`, by relative path."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() if p.is_file() else None
        for p in folder.rglob("*")
    }


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("toy-train") / "run"
    code, output = run_cli("toy-train", "--out", out, *TINY, "--unet-steps", "2")
    assert code == 0, output
    return out


@pytest.fixture
def run_copy(finished_run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


@pytest.mark.parametrize(
    ("given", "named"),
    [
        (["--seed", "1"], ["seed: run 0, now 1"]),
        (["--unet-lr", "0.01"], ["unet_lr: run 0.0005, now 0.01"]),
        (["--cfg-drop", "0.5"], ["cfg_drop: run 0.1, now 0.5"]),
        (["--ema-decay", "0.5"], ["ema_decay: run 0.999, now 0.5"]),
        (["--batch-size", "8"], ["batch_size: run 4, now 8"]),
        (["--unet-steps", "1"], ["unet_steps: run 2, now 1", "cosine schedule"]),
        # the LR schedule spans the total, so a longer run is not this one trained on
        (["--unet-steps", "3"], ["unet_steps: run 2, now 3", "cosine schedule"]),
    ],
)
def test_toy_train_refuses_a_resume_with_other_settings(
    run_copy: Path, given: list[str], named: list[str]
) -> None:
    before = files(run_copy)
    code, output = run_cli("toy-train", "--out", run_copy, *TINY, "--unet-steps", "2", *given)
    assert_refused(code, output, *named)
    assert files(run_copy) == before  # train_config.json included


def test_toy_train_refuses_a_tiny_run_resumed_without_tiny(run_copy: Path) -> None:
    """Before: the full-size UNet failed to load the tiny one's weights with a traceback,
    after train_config.json had been rewritten."""
    before = files(run_copy)
    full = [a for a in TINY if a != "--tiny"]
    code, output = run_cli("toy-train", "--out", run_copy, *full, "--unet-steps", "2")
    assert_refused(code, output, "tiny: run True, now False")
    assert files(run_copy) == before


@pytest.mark.parametrize(
    ("record", "named"),
    [(None, "but no train_config.json"), (b"{not json", "cannot read")],
)
def test_toy_train_refuses_checkpoints_without_a_readable_record(
    run_copy: Path, record: bytes | None, named: str
) -> None:
    path = run_copy / "train_config.json"
    if record is None:
        path.unlink()
    else:
        path.write_bytes(record)
    before = files(run_copy)
    code, output = run_cli("toy-train", "--out", run_copy, *TINY, "--unet-steps", "2")
    assert_refused(code, output, named)
    assert files(run_copy) == before


def test_toy_train_given_warmup_and_checkpoint_every_win_over_tiny(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["--unet-steps", "2", "--warmup-steps", "3", "--checkpoint-every", "5"]
    code, output = run_cli("toy-train", "--out", out, *TINY, *args, "--no-progress")
    assert code == 0, output
    record = json.loads((out / "train_config.json").read_text())
    assert (record["warmup_steps"], record["checkpoint_every"]) == (3, 5)
    assert output.splitlines()[-1] == f"pipeline written to {out / 'pipeline'}"
    assert "2/2" not in output  # --no-progress: no progress lines


class Killed(Exception):
    """Stands in for a run stopped right after a checkpoint."""


def _killed_then_resumed(
    monkeypatch: pytest.MonkeyPatch, module: Any, name: str, stop: Any, out: Path
) -> None:
    """toy-train (2 UNet steps, a checkpoint at each) with `module.name` replaced by `stop`
    until that raises Killed, then the same run resumed with the original: from step 1."""
    original = getattr(module, name)
    monkeypatch.setattr(module, name, stop)
    args = ["toy-train", "--out", str(out), *TINY, "--unet-steps", "2", "--checkpoint-every", "1"]
    assert isinstance(CliRunner().invoke(app, args).exception, Killed)
    monkeypatch.setattr(module, name, original)
    code, output = run_cli("toy-train", "--out", out, *TINY, "--unet-steps", "2")
    assert code == 0, output
    assert "unet+text: resumed at step 1 of 2" in output


def test_toy_train_resumed_with_its_settings_ends_where_an_unbroken_run_does(
    finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The thread count and checkpoint interval leave the weights alone, so they may differ."""
    export = toy_train.export_pipeline

    def export_then_stop(*args: Any) -> None:
        export(*args)
        if args[-1]["step"] == 1:
            raise Killed

    out = tmp_path / "run"
    _killed_then_resumed(monkeypatch, toy_train, "export_pipeline", export_then_stop, out)
    for part in ("unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"):
        resumed, unbroken = (load_file(run / "pipeline" / part) for run in (out, finished_run))
        assert resumed.keys() == unbroken.keys()
        assert all(resumed[k].equal(unbroken[k]) for k in resumed), part


@pytest.mark.parametrize(
    ("every", "left"),
    [("1", 1), ("2", None)],  # the kill leaves the step-1 pipeline, or none yet
)
def test_toy_train_killed_before_its_last_export_exports_it_when_run_again(
    finished_run: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    every: str,
    left: int | None,
) -> None:
    """Killed after the final checkpoint was saved but before its pipeline was exported.
    Before: the next run printed "done (step 2 of 2)" and exited 0 with the older pipeline
    (or none) in place; now it exports the final checkpoint, as an unbroken run does."""
    export = toy_train.export_pipeline

    def stop_before_the_last(*args: Any) -> None:
        if args[-1]["step"] == 2:
            raise Killed
        export(*args)

    out = tmp_path / "run"
    monkeypatch.setattr(toy_train, "export_pipeline", stop_before_the_last)
    args = ["toy-train", "--out", str(out), *TINY, "--unet-steps", "2", "--checkpoint-every", every]
    assert isinstance(CliRunner().invoke(app, args).exception, Killed)
    record = out / "pipeline" / toy_train.PIPELINE_RECORD
    assert (json.loads(record.read_text())["step"] if record.exists() else None) == left
    monkeypatch.setattr(toy_train, "export_pipeline", export)
    code, output = run_cli("toy-train", "--out", out, *TINY, "--unet-steps", "2", "--no-progress")
    assert code == 0, output
    assert "unet+text: done (step 2 of 2)" in output
    assert "pipeline: exporting the step-2 checkpoint" in output
    assert files(out / "pipeline") == files(finished_run / "pipeline")
    ledger = json.loads((out / toy_train.CHECKPOINT_DIGESTS).read_text())
    exported = json.loads(record.read_text())
    assert {k: exported[k] for k in ("step", "checkpoints_sha256")} == {
        "step": 2,
        "checkpoints_sha256": {name: ledger[name][0]["sha256"] for name in ("vae.pt", "unet.pt")},
    }
    code, output = run_cli("toy-train", "--out", out, *TINY, "--unet-steps", "2", "--no-progress")
    assert code == 0, output
    assert "pipeline: exporting" not in output  # done now: nothing is exported again


def flip_tensor_bytes(path: Path) -> None:
    """Damage the largest tensor of a torch checkpoint in place: the zip stays readable."""
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        tensors = [info for info in archive.infolist() if "/data/" in info.filename]
        entry = max(tensors, key=lambda info: info.file_size)
        content = archive.read(entry)
    start = raw.find(content)
    assert start >= 0 and len(content) > 1000, entry
    at = start + len(content) // 2
    raw[at : at + 4] = bytes(b ^ 0xFF for b in raw[at : at + 4])
    path.write_bytes(raw)


@pytest.mark.parametrize("name", ["vae.pt", "unet.pt"])
def test_toy_train_refuses_a_damaged_checkpoint(run_copy: Path, name: str) -> None:
    """Before: the damaged weights loaded, and the run trained on and exported from them."""
    flip_tensor_bytes(run_copy / name)
    before = files(run_copy)
    code, output = run_cli("toy-train", "--out", run_copy, *TINY, "--unet-steps", "2")
    assert_refused(code, output, name, "expected SHA-256", "changed or damaged")
    assert files(run_copy) == before


def test_toy_train_refuses_a_checkpoint_without_a_digest(run_copy: Path) -> None:
    (run_copy / toy_train.CHECKPOINT_DIGESTS).unlink()
    before = files(run_copy)
    code, output = run_cli("toy-train", "--out", run_copy, *TINY, "--unet-steps", "2")
    assert_refused(code, output, "train_config.json has no SHA-256", toy_train.CHECKPOINT_DIGESTS)
    assert files(run_copy) == before


@pytest.mark.parametrize(("key", "value", "given"), [("seed", 1, "1"), ("unet_lr", 0.01, "0.01")])
def test_toy_train_refuses_an_edited_settings_record(
    run_copy: Path, key: str, value: float, given: str
) -> None:
    """Before: a record edited to match other settings passed the check, and the resume
    trained the run's weights on under them, mixing two runs."""
    path = run_copy / "train_config.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | {key: value}, indent=2) + "\n")
    before = files(run_copy)
    option = "--" + key.replace("_", "-")
    code, output = run_cli(
        "toy-train", "--out", run_copy, *TINY, "--unet-steps", "2", option, given
    )
    assert_refused(code, output, "train_config.json", "expected SHA-256", "changed or damaged")
    assert files(run_copy) == before


def test_toy_train_reexports_a_damaged_pipeline(run_copy: Path, finished_run: Path) -> None:
    """Before: only toy_step.json was compared, so a damaged weights file was kept and the
    run reported done."""
    part = run_copy / "pipeline" / "unet" / "diffusion_pytorch_model.safetensors"
    raw = bytearray(part.read_bytes())
    raw[-2:] = bytes(b ^ 0xFF for b in raw[-2:])
    part.write_bytes(raw)
    code, output = run_cli("toy-train", "--out", run_copy, *TINY, "--unet-steps", "2")
    assert code == 0, output
    assert output.count("pipeline: exporting the step-2 checkpoint") == 1, output
    assert "diffusion_pytorch_model.safetensors no longer has the SHA-256" in output
    assert files(run_copy / "pipeline") == files(finished_run / "pipeline")


def test_toy_train_refuses_a_checkpoint_made_with_other_model_settings(
    run_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A verified checkpoint whose shapes do not fit the models built now: before, a
    traceback from load_state_dict."""
    build_vae = toy_train.components.build_vae
    monkeypatch.setattr(toy_train.components, "build_vae", lambda tiny: build_vae(not tiny))
    before = files(run_copy)
    code, output = run_cli("toy-train", "--out", run_copy, *TINY, "--unet-steps", "2")
    assert_refused(code, output, "vae.pt", "made with other model settings")
    assert files(run_copy) == before


@pytest.mark.parametrize(("write", "before_writing"), [(1, False), (2, True)])
def test_toy_train_resumes_after_a_kill_between_checkpoint_and_digest(
    finished_run: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    write: int,
    before_writing: bool,
) -> None:
    """Killed while UNet checkpoint `write` is saved, before or after the file is replaced
    (its digest not yet recorded alone): the resume takes the file that is there, the old
    step-1 one or the new, and ends where an unbroken run does."""
    writes: list[Path] = []
    write_bytes = file_digests.atomic_write_bytes

    def write_and_stop(target: Path, data: bytes) -> None:
        writes.extend([target] if target.name == "unet.pt" else [])
        if len(writes) == write and before_writing:
            raise Killed
        write_bytes(target, data)
        if len(writes) == write:
            raise Killed

    out = tmp_path / "run"
    _killed_then_resumed(monkeypatch, file_digests, "atomic_write_bytes", write_and_stop, out)
    part = "unet/diffusion_pytorch_model.safetensors"
    resumed, unbroken = (load_file(run / "pipeline" / part) for run in (out, finished_run))
    assert all(resumed[k].equal(unbroken[k]) for k in unbroken)


@pytest.mark.parametrize(
    ("given", "named"),
    [(["--vae-lr", "1e8"], "--vae-lr"), (["--unet-lr", "1e8"], "fp16 pipeline")],
)
def test_toy_train_refuses_to_export_a_diverged_run(
    tmp_path: Path, given: list[str], named: str
) -> None:
    """Before: "pipeline written" and exit 0, every exported weight NaN or infinite (and the
    VAE's scaling_factor NaN). A run again with its settings is refused the same way."""
    out = tmp_path / "run"
    args = [*TINY, "--unet-steps", "1", "--warmup-steps", "0", "--no-progress", *given]
    code, output = run_cli("toy-train", "--out", out, *args)
    assert_refused(code, output, "training diverged", named)
    assert not (out / "pipeline").exists()
    before = files(out)
    code, output = run_cli("toy-train", "--out", out, *args)
    assert_refused(code, output, "training diverged", named)
    assert files(out) == before


def _rewrite_checkpoint(out: Path, name: str, change: Any) -> None:
    """Save checkpoint `name` again after `change(state)`, with its digest in the ledger."""
    state = torch.load(out / name, weights_only=True)
    change(state)
    toy_train._save_checkpoint(state, out, name)


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (lambda out: (out / "vae.pt").unlink(), ["vae.pt is missing", "Restore that vae.pt"]),
        (
            lambda out: _rewrite_checkpoint(
                out, "vae.pt", lambda state: state.update(scaling_factor=1.5)
            ),
            ["vae.pt now has SHA-256", "delete unet.pt to retrain the UNet"],
        ),
        (
            lambda out: _rewrite_checkpoint(out, "unet.pt", lambda state: state.pop("vae_sha256")),
            ["does not record the VAE checkpoint", "Delete it to retrain the UNet"],
        ),
    ],
)
def test_toy_train_refuses_a_unet_checkpoint_beside_another_vae(
    run_copy: Path, damage: Any, named: list[str]
) -> None:
    """Before: with vae.pt deleted, the resume (under another thread count) retrained the VAE
    to other bits and exported it beside the UNet trained on the old VAE's latents, exit 0."""
    damage(run_copy)
    before = files(run_copy)
    others = TINY.copy()  # a setting that leaves the weights alone, but not their bits
    others[TINY.index("--threads") + 1] = "2"
    code, output = run_cli("toy-train", "--out", run_copy, *others, "--unet-steps", "2")
    assert_refused(code, output, "unet.pt", *named)
    assert files(run_copy) == before
