"""The catalogue of bad inputs: every command and the Python API give one clear error.

Each case drives a CLI command (in process, as a user would type it) or a Python entry point
with an input that once crashed with a traceback, or was silently replaced or accepted. It
must exit non-zero with one `error:` line that names the value, and no traceback. Cases that
need a trained run or a dataset live beside their feature (test_train.py, test_dataset*.py,
test_evaluate.py, test_npnet_io.py) and are listed in the comments below.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_pipelines import build_sd, tiny_npnet
from typer.testing import CliRunner

from golden_noise.cli import app
from golden_noise.core.distributed import launcher_cpu_processes
from golden_noise.core.errors import GoldenNoiseError
from golden_noise.generation.generate import GoldenNoise
from golden_noise.npnet import NPNetConfig
from golden_noise.teachers import SamplerSettings
from golden_noise.teachers.redenoise_step import RedenoiseSettings
from golden_noise.train import TrainConfig


def run_cli(*args: object) -> tuple[int, str]:
    """Exit code and everything a user would see, including any traceback."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    output = result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        output += "".join(traceback.format_exception(result.exception))
    return result.exit_code, output


def assert_refused(code: int, output: str, *named: str) -> None:
    assert code != 0, output
    assert "Traceback" not in output, output
    assert output.count("error:") == 1, output
    for text in named:
        assert text in output, (text, output)


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "taken"
    path.write_text("not a folder")
    return path


# --- generate: case -> before -> after ------------------------------------------------------
GENERATE = {
    # --steps 0: ZeroDivisionError deep in the scheduler; -5: pure noise written, exit 0
    "steps 0": (["--steps", "0"], ["steps must be at least 1; got 0"]),
    "steps -5": (["--steps", "-5"], ["steps must be at least 1; got -5"]),
    # --guidance -1 / nan: CFG silently off
    "guidance -1": (["--guidance", "-1"], ["guidance must be at least 0; got -1.0"]),
    "guidance nan": (["--guidance", "nan"], ["guidance must be a finite number; got nan"]),
    # --height 0: a 32 px image at the pipeline's default size
    "height 0": (["--height", "0"], ["height must be at least 1; got 0"]),
    # a seed torch cannot take: RuntimeError traceback
    "seed 1e20": (["--seeds", "99999999999999999999"], ["99999999999999999999"]),
    # a huge range: MemoryError after 30 s
    "seed range": (["--seeds", "0-99999999999"], ["0-99999999999", "at most 1000000"]),
}


@pytest.mark.parametrize("args, named", GENERATE.values(), ids=GENERATE.keys())
def test_generate_refuses(args: list[str], named: list[str], tmp_path: Path) -> None:
    code, output = run_cli("generate", "-p", "a red circle", "--out", tmp_path / "o", *args)
    assert_refused(code, output, *named)
    assert not (tmp_path / "o").exists()  # refused before anything was written


@pytest.mark.parametrize("command", ["generate", "evaluate"])
def test_out_naming_a_file_is_one_error(command: str, a_file: Path) -> None:
    """Before: FileExistsError / NotADirectoryError tracebacks."""
    extra = ["--prompts", "toy:heldout:1", "--scorers", "toy-soft"] if command == "evaluate" else []
    prompt = ["-p", "a red circle"] if command == "generate" else []
    code, output = run_cli(command, *prompt, *extra, "--steps", "2", "--out", a_file)
    assert_refused(code, output, str(a_file))


def test_train_out_naming_a_file_is_one_error(a_file: Path, tmp_path: Path) -> None:
    code, output = run_cli("train", tmp_path, "--out", a_file)
    assert_refused(code, output, f"{a_file} is a file")


def test_a_read_only_out_is_one_error(tmp_path: Path) -> None:
    """Before: PermissionError traceback. As root, permission bits do not stop writes: drop
    the capability that overrides them (setpriv), or skip where that is not possible."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("needs setpriv to drop CAP_DAC_OVERRIDE")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    drop = [setpriv, "--inh-caps=-dac_override", "--bounding-set=-dac_override"]
    probe = subprocess.run([*drop, "touch", str(locked / "x")], capture_output=True)
    if probe.returncode == 0:
        pytest.skip("writes to a read-only folder still succeed here")
    script = "from golden_noise.cli import app; app()"
    args = ["generate", "-p", "a red circle", "--steps", "2", "--out", str(locked / "o")]
    run = subprocess.run(
        [*drop, sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=300
    )
    assert_refused(run.returncode, run.stdout + run.stderr, "Permission denied", str(locked))


# --- the error printer ------------------------------------------------------------------------
def test_user_text_is_printed_verbatim_not_as_markup(tmp_path: Path) -> None:
    """Before: a path with `[/x]` crashed the printer (MarkupError) and hid the real error;
    `toy:train:` became an emoji."""
    weird = tmp_path / "[/x]toy:train:[bold]"
    code, output = run_cli("train", weird, "--out", tmp_path / "run")
    assert_refused(code, output, "no Noise Prompt Dataset at", "[/x]toy:train:[bold]")


# --- collect ---------------------------------------------------------------------------------
COLLECT = {
    # --steps 0 / --guidance 0: silently replaced by the defaults
    "steps 0": (["--steps", "0"], ["sampler steps must be at least 1; got 0"]),
    "guidance 0": (["--guidance", "0"], ["sampler guidance must be >= 1.0", "got 0.0"]),
    # --margin nan: kept nothing and wrote NaN into manifest.json (invalid JSON)
    "margin nan": (["--margin", "nan"], ["manifest margin must be a finite number; got nan"]),
    # --w-l nan: a dataset that could never be resumed
    "w-l nan": (["--w-l", "nan"], ["w_l must be a finite number; got nan"]),
    # --reward with a teacher that has none: silently ignored
    "reward for re-denoise": (
        ["--reward", "toy-reward-model"],
        ["--reward applies to the reward-gradient and prompt-offset teachers", "redenoise"],
    ),
    # --offset-init with a teacher that fits no offsets: silently ignored
    "offset-init for re-denoise": (
        ["--offset-init", "runs/po/last"],
        ["--offset-init applies to the prompt-offset teacher", "redenoise"],
    ),
    "prompt-offset iters 0": (
        ["--teacher", "prompt-offset", "--offset-iters", "0"],
        ["prompt-offset iters must be an integer >= 1; got 0"],
    ),
}


@pytest.mark.parametrize("args, named", COLLECT.values(), ids=COLLECT.keys())
def test_collect_refuses(args: list[str], named: list[str], tmp_path: Path) -> None:
    out = tmp_path / "npd"
    code, output = run_cli("collect", "-p", "toy:train:2", "--out", out, "--no-progress", *args)
    assert_refused(code, output, *named)
    manifest = out / "manifest.json"
    assert not manifest.exists() or json.loads(manifest.read_text())


def test_collect_with_another_seed_plan_is_refused(tmp_path: Path) -> None:
    """Before: `--seeds-per-prompt 2` on a dataset made with 1 mixed both plans (11/8 rows)."""
    out = tmp_path / "npd"
    common = ["collect", "-p", "toy:train:2", "--out", out, "--no-progress", "--steps", "2"]
    code, output = run_cli(*common, "--redenoise-steps", "2")
    assert code == 0, output
    code, output = run_cli(*common, "--redenoise-steps", "2", "--seeds-per-prompt", "2")
    assert_refused(code, output, "'per_prompt': 1", "'per_prompt': 2")


# --- evaluate --------------------------------------------------------------------------------
def test_evaluate_with_no_scorer_is_refused(tmp_path: Path) -> None:
    """Before: `--scorers ","` wrote an empty report and exited 0."""
    code, output = run_cli(
        "evaluate", "--prompts", "toy:heldout:1", "--scorers", ",", "--steps", "2",
        "--out", tmp_path / "e", "--no-progress",
    )  # fmt: skip
    assert_refused(code, output, "at least one scorer")


# --- train -----------------------------------------------------------------------------------
def test_train_lr_nan_is_refused(tmp_path: Path) -> None:
    """Before: a NaN learning rate trained to NaN weights and exited 0."""
    code, output = run_cli("train", tmp_path, "--out", tmp_path / "run", "--lr", "nan")
    assert_refused(code, output, "lr must be a finite number; got nan")


TRAIN_CONFIG = {
    "lr inf": ({"lr": math.inf}, "lr must be a finite number; got inf"),
    "lr 0": ({"lr": 0.0}, "lr must be greater than 0"),
    "epochs True": ({"epochs": True}, "epochs must be an integer; got True"),
    "batch 0": ({"batch_size": 0}, "batch_size must be at least 1; got 0"),
    "val_fraction 1": ({"val_fraction": 1.0}, "val_fraction must be at most 0.99"),
    "margin nan": ({"margin": math.nan}, "margin must be a finite number; got nan"),
    "seed -1": ({"seed": -1}, "seed must be at least 0; got -1"),
    "log_with": ({"log_with": "wandb"}, "log_with must be one of"),
}


@pytest.mark.parametrize("changes, message", TRAIN_CONFIG.values(), ids=TRAIN_CONFIG.keys())
def test_train_config_refuses(changes: dict, message: str, tmp_path: Path) -> None:
    with pytest.raises(GoldenNoiseError, match=message):
        TrainConfig(dataset=tmp_path, out=tmp_path / "run", **changes)


# --- config dataclasses (every door: CLI --npnet overrides, config.json, Python) -------------
NPNET_CONFIG = {
    # svd_heads 0: ZeroDivisionError; channels -4: math.isqrt ValueError
    "svd_heads 0": ({"svd_heads": 0}, "NPNetConfig.svd_heads must be at least 1; got 0"),
    "channels -4": ({"channels": -4}, "NPNetConfig.channels must be at least 1; got -4"),
    # height "8" from a JSON file: TypeError deep in the model
    "height '8'": ({"height": "8"}, "NPNetConfig.height must be an integer; got '8'"),
    # svd_mlp_hidden 1e9: tried to allocate 64 GB
    "mlp 1e9": ({"svd_mlp_hidden": 10**9}, "NPNetConfig.svd_mlp_hidden must be at most 16384"),
    "mlp float": ({"svd_mlp_hidden": 1e9}, "NPNetConfig.svd_mlp_hidden must be an integer"),
    "text too big": (
        {"text_tokens": 4096, "text_dim": 16384},
        "text_tokens x text_dim must be at most",
    ),
    "use_svd 'no'": ({"use_svd": "no"}, "NPNetConfig.use_svd must be true or false; got 'no'"),
}


@pytest.mark.parametrize("changes, message", NPNET_CONFIG.values(), ids=NPNET_CONFIG.keys())
def test_npnet_config_refuses(changes: dict, message: str) -> None:
    with pytest.raises(GoldenNoiseError, match=message):
        NPNetConfig(**changes)


SETTINGS = {
    "sampler guidance nan": (SamplerSettings, {"guidance": math.nan}, "finite number; got nan"),
    "sampler steps 2.5": (SamplerSettings, {"steps": 2.5}, "must be an integer; got 2.5"),
    "redenoise w_w inf": (RedenoiseSettings, {"w_w": math.inf}, "w_w must be a finite number"),
    "redenoise steps 0": (RedenoiseSettings, {"steps": 0}, "steps must be at least 2; got 0"),
}


@pytest.mark.parametrize("cls, changes, message", SETTINGS.values(), ids=SETTINGS.keys())
def test_settings_refuse(cls: type, changes: dict, message: str) -> None:
    with pytest.raises(GoldenNoiseError, match=message):
        cls(**changes)


# --- GoldenNoise.latents ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def golden() -> GoldenNoise:
    return GoldenNoise(tiny_npnet(32), build_sd())


LATENTS = {
    # prompt=[]: IndexError deep in the tokenizer; None: AttributeError
    "prompt []": ({"prompt": []}, "prompt must be a string or a non-empty list"),
    "prompt None": ({"prompt": None}, "prompt must be a string or a non-empty list"),
    "prompt [1]": ({"prompt": [1]}, "every prompt must be a string"),
    # num_images_per_prompt=0: an empty batch and a reshape error
    "images 0": (
        {"prompt": "a", "num_images_per_prompt": 0},
        "num_images_per_prompt must be at least 1; got 0",
    ),
    "height 0": ({"prompt": "a", "height": 0}, "height must be at least 1; got 0"),
    # finite but huge noise (1e30): NaN latents returned
    "noise 1e30": (
        {"prompt": "a", "latents": torch.full((1, 4, 16, 16), 1e30)},
        "latents must be finite unit-variance noise",
    ),
    "noise nan": (
        {"prompt": "a", "latents": torch.full((1, 4, 16, 16), math.nan)},
        "latents must be finite unit-variance noise",
    ),
}


@pytest.mark.parametrize("kwargs, message", LATENTS.values(), ids=LATENTS.keys())
def test_golden_latents_refuse(golden: GoldenNoise, kwargs: dict, message: str) -> None:
    with pytest.raises(GoldenNoiseError, match=message):
        golden.latents(**kwargs)


# --- the multi-process guard -----------------------------------------------------------------
LAUNCHES = {
    # the tool's own --cpu after the script was read as the launcher's: refused wrongly
    "multi_gpu + tool --cpu": (["--multi_gpu", "--num_processes", "2"], ["collect", "--cpu"], 1),
    "launcher --cpu": (["--cpu", "--num_processes", "2"], ["collect"], 2),
    "launcher --cpu, one process": (["--cpu"], ["collect", "--num_processes", "3"], 1),
}


@pytest.mark.parametrize("launcher, tool, asked", LAUNCHES.values(), ids=LAUNCHES.keys())
def test_only_the_launchers_own_arguments_count(launcher: list, tool: list, asked: int) -> None:
    script = "/venv/bin/golden-noise"
    argv = ["/venv/bin/python", "/venv/bin/accelerate", "launch", *launcher, script, *tool]
    assert launcher_cpu_processes(argv, script) == asked
    assert launcher_cpu_processes(argv, "golden-noise") == asked  # argv[0] as typed


# Cases tested beside their feature:
#   test_train.py: resume with another lr/epochs/dataset refused (was silently continued);
#     lr 1e12 stops with "training diverged" and saves nothing non-finite (was exit 0, NaN
#     weights in last/); a planted pickle in any checkpoint file never runs (ran os.system).
#   test_npnet_io.py: NPNet.from_pretrained of NaN weights refused (loaded, black images).
#   test_dataset_authors.py: import-authors with npz files of mixed shapes (ValueError).
#   test_dataset.py: a second writer of the same folder and rank refused (did all the work
#     again, every row twice on disk).
#   test_evaluate.py: an evaluation folder made with another NPNet, steps or prompts refused
#     (old images reported as new).


# --- demo and import-authors -----------------------------------------------------------------
def test_demo_refuses(a_file: Path) -> None:
    """Before: --threads 0 was a RuntimeError traceback; --out naming a file, FileExistsError."""
    assert_refused(*run_cli("demo", "--quick", "--threads", "0"), "threads must be at least 1")
    assert_refused(*run_cli("demo", "--quick", "--out", a_file, "--no-progress"), str(a_file))


def test_import_authors_cli_refuses_mixed_shapes(tmp_path: Path) -> None:
    """Before: a ValueError traceback from np.stack halfway through the import."""
    npz = tmp_path / "latents"
    npz.mkdir()
    rows = []
    for index, size in enumerate((8, 8, 16)):
        pair = np.zeros((1, 4, size, size), dtype=np.float16)
        np.savez(npz / f"{index}_{index}.npz", pair, pair, index)
        scores = {"original_score_list": [0.2], "optimized_score_list": [0.3]}
        rows.append({"index": index, "seed": index, "caption": f"p{index}", **scores})
    jsonl = tmp_path / "pairs.json"
    jsonl.write_text("".join(json.dumps(row) + "\n" for row in rows))
    code, output = run_cli(
        "import-authors", npz, jsonl, "--out", tmp_path / "npd", "--pipeline", "toy"
    )
    assert_refused(code, output, "2_2.npz: latents of shape (4, 16, 16)")


# --- train --objective reward ----------------------------------------------------------------
REWARD_OPTIONS = {
    "unknown reward": (
        ["--reward", "hpsv9"],
        "reward must be one of 'toy-reward-model', 'toy-surrogate'",
    ),
    "stay_close -1": (["--stay-close", "-1"], "stay_close must be at least 0; got -1.0"),
    "reward_steps 0": (["--reward-steps", "0"], "reward_steps must be at least 1; got 0"),
}


@pytest.mark.parametrize("args, message", REWARD_OPTIONS.values(), ids=REWARD_OPTIONS.keys())
def test_train_reward_options_refused(args: list, message: str, tmp_path: Path) -> None:
    """Checked before any data or pipeline is read (a dataset collected without its pipeline
    is refused in test_train_reward.py)."""
    code, output = run_cli(
        "train", tmp_path, "--out", tmp_path / "run", "--objective", "reward", *args
    )
    assert_refused(code, output, message, args[-1])
