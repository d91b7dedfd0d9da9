"""Stage II training: it learns, resumes after kill -9 on the same trajectory, errors clearly."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from npd_fixtures import manifest, source_latents, write_synthetic_dataset
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from golden_noise.cli import app
from golden_noise.core.errors import GoldenNoiseError
from golden_noise.dataset import DatasetWriter, PromptRecord, load_splits
from golden_noise.npnet import NPNet
from golden_noise.train import TrainConfig, train

SMALL_NET = {
    "backbone": "vit_tiny_patch16_224",
    "backbone_kwargs": {
        "img_size": 32,
        "patch_size": 8,
        "depth": 1,
        "embed_dim": 32,
        "num_heads": 2,
    },
    "backbone_input_size": 32,
    "svd_hidden": 16,
    "svd_mlp_hidden": 64,
}


def small_config(dataset: Path, out: Path, **overrides) -> TrainConfig:
    settings = dict(
        dataset=dataset,
        out=out,
        batch_size=16,
        epochs=3,
        lr=3e-3,
        margin=None,
        val_fraction=0.25,
        npnet=dict(SMALL_NET),
        log_with="none",
        progress=False,
    )
    return TrainConfig(**{**settings, **overrides})


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_dataset(
        tmp_path_factory.mktemp("npd") / "npd", n_prompts=40, seeds_per_prompt=4
    )


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


def test_learns_the_prompt_dependent_edit_far_below_both_baselines(
    dataset: Path, tmp_path: Path
) -> None:
    result = train(small_config(dataset, tmp_path / "run", epochs=10))
    first, last = result.history[0], result.history[-1]
    baseline = min(last["val_identity"], last["val_mean_residual"])
    assert baseline > 0.5  # the synthetic shift is large; neither baseline can model it
    assert last["val_loss"] < 0.4 * baseline, result.history
    assert last["val_loss"] < first["val_loss"]
    assert result.best_val_loss == min(row["val_loss"] for row in result.history)
    net = NPNet.from_pretrained(tmp_path / "run" / "best")
    assert (net.config.channels, net.config.height, net.config.text_tokens) == (4, 8, 8)
    assert net.config.svd_variant == "attention" and net.config.family == "synthetic"
    rows = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["epoch"] for r in rows] == list(range(1, 11))
    assert (
        (tmp_path / "run" / "metrics.csv").read_text().startswith("epoch,step,train_loss,val_loss")
    )


KILLED_RUN = textwrap.dedent(
    """
    import os, signal, sys
    import torch
    sys.path.insert(0, {tests!r})
    torch.set_num_threads(1)
    from test_train import small_config
    from golden_noise.train import train
    import accelerate

    mode, calls = {mode!r}, {{"n": 0}}
    if mode == "mid_step":
        original = torch.optim.AdamW.step
        def step(self, *args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 10:  # mid epoch 2, after the step-8 checkpoint
                os.kill(os.getpid(), signal.SIGKILL)
            return original(self, *args, **kwargs)
        torch.optim.AdamW.step = step
    else:
        original = accelerate.Accelerator.save_state
        def save_state(self, *args, **kwargs):
            out = original(self, *args, **kwargs)
            calls["n"] += 1
            if calls["n"] == 3:  # the staged checkpoint is written but never published
                os.kill(os.getpid(), signal.SIGKILL)
            return out
        accelerate.Accelerator.save_state = save_state
    from pathlib import Path
    train(small_config(Path({dataset!r}), Path({out!r}), checkpoint_every=4))
    """
)


@pytest.mark.parametrize("mode", ["mid_step", "mid_checkpoint"])
def test_kill_9_then_resume_reproduces_the_uninterrupted_weights(
    dataset: Path, tmp_path: Path, mode: str
) -> None:
    reference = train(small_config(dataset, tmp_path / "reference", checkpoint_every=4))
    script = KILLED_RUN.format(
        tests=str(Path(__file__).parent), mode=mode, dataset=str(dataset), out=str(tmp_path / "run")
    )
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert (
        not (tmp_path / "run" / "metrics.jsonl").exists()
        or len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) < 3
    )
    resumed = train(small_config(dataset, tmp_path / "run", checkpoint_every=4))

    def untimed(history: list[dict]) -> list[dict]:
        return [{k: v for k, v in row.items() if k != "samples_per_s"} for row in history]

    assert untimed(resumed.history) == untimed(reference.history)
    # the columns keep their order (a resume wrote them alphabetically: read by position,
    # a script took lr for train_loss)
    assert [list(row) for row in resumed.history] == [list(row) for row in reference.history]
    header = [(p / "metrics.csv").read_text().splitlines()[0] for p in (tmp_path / "run",
              tmp_path / "reference")]  # fmt: skip
    assert header[0] == header[1]
    expected, found = weights(tmp_path / "reference" / "last"), weights(tmp_path / "run" / "last")
    assert expected.keys() == found.keys()
    for key in expected:
        assert torch.equal(expected[key], found[key]), key
    assert not list((tmp_path / "run" / "checkpoints").glob(".tmp-*"))


def _validation_by_hand(net: NPNet, dataset: Path) -> dict[str, float]:
    """The three validation numbers recomputed row by row: NPNet's MSE, the identity's
    (golden = source) and the mean residual's (source + the train split's mean of
    target - source), each a per-row mean squared error averaged over the validation rows.
    Float32 forwards on other batch sizes move these by ~1e-6 relative: rel 1e-4."""
    train_set, val_set = load_splits(dataset, val_fraction=0.25, split_seed=0)
    pairs = [train_set[i][:2] for i in range(len(train_set))]
    shift = torch.stack([target - source for source, target in pairs]).double().mean(0).float()
    errors = []
    with torch.no_grad():
        for i in range(len(val_set)):
            source, target, embeds = val_set[i]
            guesses = (net(source[None], embeds[None])[0], source, source + shift)
            errors.append([float(((guess - target) ** 2).mean()) for guess in guesses])
    means = torch.tensor(errors, dtype=torch.float64).mean(0).tolist()
    return dict(zip(("val_loss", "val_identity", "val_mean_residual"), means, strict=True))


def test_ablations_and_the_unfiltered_option_train(dataset: Path, tmp_path: Path) -> None:
    for number, switch in enumerate(
        ({"use_svd": False}, {"use_residual": False}, {"use_text": False})
    ):
        result = train(
            small_config(
                dataset, tmp_path / f"abl{number}", epochs=1, npnet={**SMALL_NET, **switch}
            )
        )
        net = NPNet.from_pretrained(tmp_path / f"abl{number}" / "last")
        assert net.config.to_dict().items() >= switch.items()
        assert result.history[0] == pytest.approx(
            {**result.history[0], **_validation_by_hand(net, dataset)}, rel=1e-4
        )
    # also: mixed precision and accumulation options, in one process after other runs
    filtered = train(
        small_config(
            dataset, tmp_path / "filtered", epochs=1, margin="manifest", mixed_precision="bf16"
        )
    )
    unfiltered = train(
        small_config(
            dataset, tmp_path / "unfiltered", epochs=1, batch_size=8, gradient_accumulation_steps=2
        )
    )
    assert unfiltered.history[0]["step"] == 8  # 15 batches of 8, one optimizer step per 2
    assert filtered.train_rows * 2 == unfiltered.train_rows  # the fixture's filter keeps even seeds


def test_bad_inputs_fail_with_clear_errors(dataset: Path, tmp_path: Path) -> None:
    # An --init-from NPNet of another shape is fine-tuned, keeping what fits
    # (test_train_init.py); a shape the user names that the data contradicts is refused.
    with pytest.raises(GoldenNoiseError, match="text_dim: dataset 16, the requested NPNet 32"):
        train(small_config(dataset, tmp_path / "b", npnet={**SMALL_NET, "text_dim": 32}))
    with pytest.raises(GoldenNoiseError, match="one batch needs 16"):
        train(small_config(dataset, tmp_path / "c", margin=5.0))

    empty = tmp_path / "empty"
    DatasetWriter(empty, manifest()).close()
    with pytest.raises(GoldenNoiseError, match="has no rows"):
        train(small_config(empty, tmp_path / "d"))

    poisoned = write_synthetic_dataset(tmp_path / "poisoned", n_prompts=8, seeds_per_prompt=4)
    shard = sorted((poisoned / "rows").iterdir())[0]
    tensors = load_file(shard)
    tensors["target"][3, 1] = float("nan")
    save_file(tensors, shard)  # as an older writer wrote it: no digests, and no ledger
    (poisoned / "ledger-r00000.json").unlink()
    recorded = json.loads((poisoned / "manifest.json").read_text())
    del recorded["notes"]["shards_without_digests"]  # nor a record that digests are kept
    (poisoned / "manifest.json").write_text(json.dumps(recorded))
    with pytest.raises(GoldenNoiseError, match="rows have target latents that are not finite"):
        train(small_config(poisoned, tmp_path / "e", epochs=1))


def test_cli_trains_and_reports_the_baselines(dataset: Path, tmp_path: Path) -> None:
    args = [
        "train",
        str(dataset),
        "--out",
        str(tmp_path / "cli"),
        "--epochs",
        "1",
        "--batch-size",
        "16",
    ]
    args += [
        "--lr",
        "3e-3",
        "--unfiltered",
        "--val-fraction",
        "0.25",
        "--no-progress",
        "--log-with",
        "none",
    ]
    args += [
        "--backbone",
        SMALL_NET["backbone"],
        "--backbone-kwargs",
        json.dumps(SMALL_NET["backbone_kwargs"]),
    ]
    args += ["--backbone-input-size", "32", "--backbone-init", "random"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "residual backbone: random initialisation" in result.output
    assert "identity" in result.output and "mean residual" in result.output
    assert (tmp_path / "cli" / "best" / "config.json").is_file()
    bad = CliRunner().invoke(
        app, ["train", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")]
    )
    assert bad.exit_code == 1 and "no Noise Prompt Dataset" in bad.output


def test_validation_takes_whole_prompts(tmp_path: Path) -> None:
    root = tmp_path / "npd"
    with DatasetWriter(
        root, manifest(), prompts=[PromptRecord(p, str(p)) for p in range(4)]
    ) as writer:
        writer.add_embeddings(list(range(4)), torch.zeros(4, 8, 16))
        for p in range(4):
            x = source_latents([p] * 8, list(range(8)))
            writer.add(x, x, [p] * 8, list(range(8)), [0.0] * 8, [1.0] * 8)
    result = train(small_config(root, tmp_path / "run", epochs=1, batch_size=8))
    assert result.train_rows == 24 and result.val_rows == 8


def test_resume_refuses_another_run_in_the_same_folder(dataset: Path, tmp_path: Path) -> None:
    """Before: a new lr or dataset was silently ignored or continued on, train_config.json
    overwritten. Now: the run's record is kept and anything that changes its trajectory is
    refused, naming the field."""
    out = tmp_path / "run"
    train(small_config(dataset, out, epochs=1))
    recorded = (out / "train_config.json").read_text()
    with pytest.raises(GoldenNoiseError, match=r"lr: run 0\.003, now 0\.01"):
        train(small_config(dataset, out, epochs=1, lr=1e-2))
    with pytest.raises(GoldenNoiseError, match="epochs: run 1, now 2"):
        train(small_config(dataset, out, epochs=2))
    other = write_synthetic_dataset(tmp_path / "other", n_prompts=40, seeds_per_prompt=5)
    with pytest.raises(GoldenNoiseError, match="data: run"):
        train(small_config(other, out, epochs=1))
    assert (out / "train_config.json").read_text() == recorded
    again = train(small_config(dataset, out, epochs=1, progress=True))  # a free setting
    assert len(again.history) == 1


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    """A finished 4-epoch run (3 batches an epoch, a checkpoint every 2 steps) cut back to
    checkpoint_3, the mid-epoch save at step 6 (epoch 1, batch 3): the run as a kill left it,
    but for metrics.jsonl, which holds all 4 epochs as after a resume from an earlier save."""
    import shutil

    root = tmp_path_factory.mktemp("killed")
    data = write_synthetic_dataset(root / "npd", n_prompts=8, seeds_per_prompt=2)
    run = root / "run"
    history = train(_resumable(data, run)).history
    for folder in (run / "checkpoints").iterdir():
        if int(folder.name.split("_")[-1]) > 3:
            shutil.rmtree(folder)
    return run, history


def _resumable(dataset: Path, out: Path) -> TrainConfig:
    return small_config(
        dataset, out, epochs=4, batch_size=4, checkpoint_every=2, keep_checkpoints=20, cpu=True
    )


def _copy_of(killed_run: tuple[Path, list[dict]], tmp_path: Path) -> Path:
    """A copy of the killed run to resume or tamper with (the fixture is shared)."""
    import shutil

    return Path(shutil.copytree(killed_run[0], tmp_path / "run"))


def _resume_config(run: Path) -> TrainConfig:
    """The settings that resume `run`: its own dataset and schedule."""
    return _resumable(Path(json.loads((run / "train_config.json").read_text())["dataset"]), run)


def _refuses_another_lr(run: Path, named: str = "lr") -> None:
    """A resume at ten times the lr is refused and leaves every file of `run` as it was."""
    before = _contents(run)
    config = _resume_config(run)
    config.lr *= 10
    with pytest.raises(GoldenNoiseError, match=named):
        train(config)
    assert _contents(run) == before


def _contents(run: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in run.rglob("*") if p.is_file()}


def _edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data, indent=2) + "\n")


def _edit_first_metrics_line(run: Path) -> None:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    row = json.loads(lines[0])
    lines[0] = json.dumps({**row, "val_loss": row["val_loss"] / 2})
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")


def _edit_scheduler(checkpoint: Path) -> None:
    """A scheduler one step ahead, in a checkpoint saved before progress.json recorded file
    digests (with them, the changed scheduler.bin is refused before its count is read)."""
    state = torch.load(checkpoint / "scheduler.bin", weights_only=True)
    torch.save({**state, "last_epoch": state["last_epoch"] + 1}, checkpoint / "scheduler.bin")
    _edit_json(checkpoint / "progress.json", lambda p: p.pop("files_sha256"))


# what is edited in the killed run (checkpoint_3: epoch 1, batch 3, step 6) -> what is named
CONTRADICTIONS = {
    "best_val_loss": (
        lambda run, ckpt: _edit_json(ckpt / "progress.json", lambda p: p.update(best_val_loss=0.1)),
        r'"best_val_loss": 0\.1, but the lowest val_loss of epoch 1 in .*metrics\.jsonl is \d',
    ),
    "epoch": (
        lambda run, ckpt: _edit_json(ckpt / "progress.json", lambda p: p.update(epoch=3)),
        r'"global_step": 6, but "epoch": 3 and "batches_in_epoch": 3 are step 12 of this run '
        r"\(3 optimizer steps an epoch\)",
    ),
    "global_step": (
        lambda run, ckpt: _edit_json(ckpt / "progress.json", lambda p: p.update(global_step=5)),
        r'"global_step": 5, but "epoch": 1 and "batches_in_epoch": 3 are step 6',
    ),
    "batches_in_epoch": (
        lambda run, ckpt: _edit_json(ckpt / "progress.json", lambda p: p.update(epoch=4)),
        r'"batches_in_epoch": 3 at "epoch": 4, but .* so at most 0',
    ),
    "history": (
        lambda run, ckpt: _edit_json(
            ckpt / "progress.json", lambda p: p["history"][0].update(val_loss=0.1)
        ),
        r'"history" row 1: .*"val_loss": 0\.1.*, but line 1 of .*metrics\.jsonl is',
    ),
    "metrics.jsonl": (
        lambda run, ckpt: _edit_first_metrics_line(run),
        r'"history" row 1: .*, but line 1 of .*metrics\.jsonl is',
    ),
    "metrics.jsonl deleted": (
        lambda run, ckpt: (run / "metrics.jsonl").unlink(),
        r'"epoch": 1, but .*metrics\.jsonl cannot be read',
    ),
    "scheduler.bin": (
        lambda run, ckpt: _edit_scheduler(ckpt),
        r'"global_step": 6, but the checkpoint\'s LR scheduler \(scheduler\.bin\) counts 7',
    ),
}


@pytest.mark.parametrize("edit", CONTRADICTIONS)
def test_a_resume_refuses_a_progress_record_the_run_contradicts(
    killed_run: tuple[Path, list[dict]], tmp_path: Path, edit: str
) -> None:
    """Before: best_val_loss edited to 0.1 resumed as "best val loss 0.10000" (no epoch reached
    it; best/ was never updated again) and epoch 1 edited to 3 exited 0 with 2 epochs skipped,
    though global_step said 6. Now the record is held against the schedule, the scheduler's
    count and metrics.jsonl, and the run is left as it was."""
    run = _copy_of(killed_run, tmp_path)
    change, named = CONTRADICTIONS[edit]
    change(run, run / "checkpoints" / "checkpoint_3")
    before = _contents(run)
    config = _resume_config(run)
    with pytest.raises(GoldenNoiseError, match=named) as refusal:
        train(config)
    assert f"cannot resume from {run / 'checkpoints' / 'checkpoint_3'}: its progress.json" in str(
        refusal.value
    )
    assert "Delete that checkpoint folder to resume from the one before it" in str(refusal.value)
    assert _contents(run) == before


def _flip_last_float_bit(path: Path) -> None:
    """Flip the lowest mantissa bit of the file's last float32 (little-endian, at its end)."""
    data = bytearray(path.read_bytes())
    data[-4] ^= 1
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "name", ["model.safetensors", "optimizer.bin", "random_states_0.pkl", "progress.safetensors"]
)
def test_a_resume_refuses_a_checkpoint_file_changed_since_it_was_saved(
    killed_run: tuple[Path, list[dict]], tmp_path: Path, name: str
) -> None:
    """Before: one bit flipped in a float of checkpoint_3's model.safetensors resumed, exited 0
    and ended with other weights. Now progress.json records every file's SHA-256 and the
    resume refuses, naming the file, before anything is loaded."""
    run = _copy_of(killed_run, tmp_path)
    checkpoint = run / "checkpoints" / "checkpoint_3"
    _flip_last_float_bit(checkpoint / name)
    before = _contents(run)
    config = _resume_config(run)
    with pytest.raises(GoldenNoiseError) as refusal:
        train(config)
    message = str(refusal.value)
    assert f"cannot resume from {checkpoint}: {checkpoint / name} differs from what the " in message
    assert "Delete that checkpoint folder to resume from the one before it" in message
    assert _contents(run) == before
    (checkpoint / name).unlink()
    with pytest.raises(GoldenNoiseError, match="the file is missing"):
        train(config)


def test_a_resume_refuses_a_run_config_edited_since_its_checkpoints(
    killed_run: tuple[Path, list[dict]], tmp_path: Path
) -> None:
    """Before: train_config.json's lr edited, and the resume given that lr, exited 0 with the
    file saying the new lr while the optimizer state trained on at the old one."""
    run = _copy_of(killed_run, tmp_path)
    _edit_json(run / "train_config.json", lambda c: c.update(lr=c["lr"] * 10))
    _refuses_another_lr(run, "is not the settings file the run's checkpoints")


def test_a_refused_resume_keeps_what_a_killed_save_left(
    killed_run: tuple[Path, list[dict]], tmp_path: Path
) -> None:
    """Before: a resume with other settings was refused only after the unfinished checkpoint
    a kill left mid-save had been deleted."""
    run = _copy_of(killed_run, tmp_path)
    unfinished = run / "checkpoints" / "checkpoint_9"
    unfinished.mkdir()
    (unfinished / "model.safetensors").write_bytes(b"half")
    (run / "save_started.json").write_text('{"checkpoint": "checkpoint_9"}')
    _refuses_another_lr(run)


def test_an_unfinished_looking_checkpoint_the_run_never_started_is_not_deleted(
    killed_run: tuple[Path, list[dict]], tmp_path: Path
) -> None:
    """Before: a user's checkpoints/checkpoint_42/ without progress.json (a copy, a backup)
    was deleted as a killed save by the next same-settings train, though the run never began
    that save; the run records the one save it starts, and only that one is discarded."""
    run = _copy_of(killed_run, tmp_path)
    mine = run / "checkpoints" / "checkpoint_42"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    before = _contents(run)
    with pytest.raises(GoldenNoiseError, match="checkpoint_42, which are neither complete"):
        train(_resume_config(run))
    assert _contents(run) == before


def test_a_resume_keeps_a_users_files_inside_best(
    killed_run: tuple[Path, list[dict]], tmp_path: Path
) -> None:
    """Before: an evaluation saved inside best/ (evaluate --npnet run/best --out
    run/best/eval) was deleted by the resume's next save of best/, exit 0."""
    run = _copy_of(killed_run, tmp_path)
    (run / "best" / "eval").mkdir()
    (run / "best" / "eval" / "notes.txt").write_text("mine")
    with pytest.raises(GoldenNoiseError, match="holds eval/notes.txt, which its new version"):
        train(_resume_config(run))
    assert (run / "best" / "eval" / "notes.txt").read_text() == "mine"


def test_starting_a_finished_run_over_refuses_a_users_file_before_training(
    dataset: Path, tmp_path: Path
) -> None:
    """Before: with its checkpoints gone, the same train command started the run over,
    trained an epoch into last/ and only then refused the user's notes in best/, leaving a
    last/ of the new run beside the old run's best/ and metrics."""
    import shutil

    config = small_config(dataset, tmp_path / "run", epochs=1)
    train(config)
    shutil.rmtree(tmp_path / "run" / "checkpoints")
    (tmp_path / "run" / "best" / "notes.txt").write_text("mine")
    before = _contents(tmp_path / "run")
    weights = tmp_path / "run" / "last" / "model.safetensors"
    inode = weights.stat().st_ino  # the run is deterministic: a rewrite shows only as a new file
    with pytest.raises(GoldenNoiseError, match="holds notes.txt, which its new version"):
        train(config)
    assert _contents(tmp_path / "run") == before
    assert weights.stat().st_ino == inode


def test_a_refused_train_leaves_a_user_folder_under_an_aside_name_alone(
    killed_run: tuple[Path, list[dict]], tmp_path: Path
) -> None:
    """Before: a user's `.old-best/` beside a run whose best/ was missing was renamed to
    best/ before the resume was refused (recovery ran before the run claimed its folder)."""
    import shutil

    run = _copy_of(killed_run, tmp_path)
    shutil.move(run / "best", run / ".old-best")
    _refuses_another_lr(run)


def test_a_finished_run_whose_weights_were_deleted_is_not_reported_done(
    dataset: Path, tmp_path: Path
) -> None:
    """Before: best/model.safetensors deleted, the same finished train command again exited 0
    with "done ... weights in best/" and best/ still empty."""
    config = small_config(dataset, tmp_path / "run", epochs=1)
    train(config)
    (tmp_path / "run" / "best" / "model.safetensors").unlink()
    with pytest.raises(GoldenNoiseError, match="run lacks best/model.safetensors, which its"):
        train(config)


def test_a_checkpoint_saved_without_file_digests_still_resumes(
    killed_run: tuple[Path, list[dict]], tmp_path: Path
) -> None:
    """Checkpoints saved before progress.json recorded digests resume as before."""
    run = _copy_of(killed_run, tmp_path)
    checkpoint = run / "checkpoints" / "checkpoint_3"
    recorded = json.loads((checkpoint / "progress.json").read_text())["files_sha256"]
    assert set(recorded) >= {"model.safetensors", "optimizer.bin", "scheduler.bin"}
    _edit_json(checkpoint / "progress.json", lambda p: p.pop("files_sha256"))
    config = _resume_config(run)
    assert len(train(config).history) == 4


def test_a_resume_from_an_earlier_checkpoint_is_accepted_and_ends_as_the_whole_run(
    killed_run: tuple[Path, list[dict]], tmp_path: Path
) -> None:
    """metrics.jsonl holding more epochs than the checkpoint (a resume from an earlier save)
    is no contradiction; nor is any checkpoint a run writes, with accumulation or without."""

    from golden_noise.train.state import Schedule, TrainProgress, check_progress

    run = _copy_of(killed_run, tmp_path)
    config = _resume_config(run)
    resumed = train(config).history

    def untimed(history: list[dict]) -> list[dict]:
        return [{k: v for k, v in row.items() if k != "samples_per_s"} for row in history]

    assert untimed(resumed) == untimed(killed_run[1])
    accumulated = tmp_path / "accumulated"
    train(
        small_config(
            config.dataset, accumulated, epochs=2, batch_size=4, gradient_accumulation_steps=2,
            checkpoint_every=1, keep_checkpoints=20, cpu=True,
        )
    )  # fmt: skip
    checkpoints = sorted((accumulated / "checkpoints").iterdir())
    assert len(checkpoints) == 6  # steps 1 (batch 2), 2 (batch 3), the epoch's end; twice
    for folder in checkpoints:
        counted = torch.load(folder / "scheduler.bin", weights_only=True)["last_epoch"]
        check_progress(folder, TrainProgress.load(folder), Schedule(2, 3, 2), counted)


class PlantedPayload:
    """Unpickling this runs a shell command that creates `marker`: what a hostile file does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_planted_pickle_in_a_checkpoint_never_runs(dataset: Path, tmp_path: Path) -> None:
    """Before: custom_checkpoint_0.pkl was read with weights_only=False and ran its payload."""
    import shutil

    out, marker = tmp_path / "run", tmp_path / "payload-ran"
    train(small_config(dataset, out, epochs=1))
    (checkpoint,) = (out / "checkpoints").iterdir()
    probe = tmp_path / "probe.pkl"
    torch.save(PlantedPayload(marker), probe)
    torch.load(probe, weights_only=False)
    assert marker.exists()  # the payload is live: full unpickling runs it
    marker.unlink()
    pristine = tmp_path / "pristine"
    shutil.copytree(checkpoint, pristine)
    targets = [p.name for p in pristine.iterdir()] + ["custom_checkpoint_0.pkl"]
    for name in targets:
        shutil.rmtree(checkpoint)
        shutil.copytree(pristine, checkpoint)
        torch.save(PlantedPayload(marker), checkpoint / name)
        try:
            train(small_config(dataset, out, epochs=1))
        except GoldenNoiseError as error:
            assert str(checkpoint) in str(error)
        assert not marker.exists(), f"a pickle planted as {name} ran on resume"


def test_a_diverged_run_stops_and_saves_nothing_non_finite(dataset: Path, tmp_path: Path) -> None:
    """Before: lr 1e12 exited 0 with `train nan | val nan` and NaN weights in last/."""
    out = tmp_path / "run"
    with pytest.raises(GoldenNoiseError, match="training diverged: the train loss at epoch 1"):
        train(small_config(dataset, out, epochs=2, lr=1e12))
    for folder in (out / "last", out / "best"):
        if folder.exists():
            assert all(torch.isfinite(t).all() for t in weights(folder).values())
    assert not (out / "checkpoints").exists() or not any((out / "checkpoints").iterdir())


def test_weights_that_are_not_finite_are_never_saved(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A NaN the losses cannot see (in `svd.bn`, stored for the released layout but never used
    in forward) still stops the save: last/, best/ and the checkpoint are not written."""
    from golden_noise.train import loop

    unused: list[torch.Tensor] = []

    def build(*args, **kwargs):
        net = build_npnet(*args, **kwargs)
        unused.append(net.svd.bn.weight)
        return net

    def poisoning_step(self, *args, **kwargs):
        out = adamw_step(self, *args, **kwargs)
        with torch.no_grad():
            unused[0].fill_(float("nan"))
        return out

    build_npnet, adamw_step = loop.build_npnet, torch.optim.AdamW.step
    monkeypatch.setattr(loop, "build_npnet", build)
    monkeypatch.setattr(torch.optim.AdamW, "step", poisoning_step)
    out = tmp_path / "run"
    with pytest.raises(GoldenNoiseError, match=r"weight tensors are NaN or infinite .*svd\.bn"):
        train(small_config(dataset, out, epochs=1))
    assert not (out / "last").exists() and not (out / "best").exists()
    assert not (out / "checkpoints").exists() or not any((out / "checkpoints").iterdir())


def test_a_training_run_reads_the_manifest_once(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The opened dataset is handed down: the margin, both splits and the model's shapes come
    from one reading of manifest.json."""
    from golden_noise.dataset import DatasetManifest

    reads: list[Path] = []
    load = DatasetManifest.load.__func__  # type: ignore[attr-defined]

    def counted(cls: type, root: Path) -> DatasetManifest:
        reads.append(Path(root))
        return load(cls, root)

    monkeypatch.setattr(DatasetManifest, "load", classmethod(counted))
    train(small_config(dataset, tmp_path / "run", epochs=1, margin="manifest"))
    assert reads == [dataset]
