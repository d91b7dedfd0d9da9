"""Two CPU processes through `accelerate launch` train the same net as one process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from npd_fixtures import write_synthetic_dataset
from safetensors.torch import load_file
from test_train import SMALL_NET, small_config

from golden_noise.train import train

ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}


def test_two_processes_match_one_with_the_same_global_batch(tmp_path: Path) -> None:
    """Equality means: the same global batches in the same order (split_batches), DDP
    averaging the two half-batch gradients into the full-batch mean; only float summation
    order differs, so weights agree to round-off, not bit for bit."""
    dataset = write_synthetic_dataset(tmp_path / "npd", n_prompts=24, seeds_per_prompt=4)
    cli_net = {k: SMALL_NET[k] for k in ("backbone", "backbone_kwargs", "backbone_input_size")}
    single = train(small_config(dataset, tmp_path / "one", epochs=2, npnet=cli_net))
    golden_noise = Path(sys.executable).with_name("golden-noise")
    command = [
        *ACCELERATE,
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(_free_port()),
        str(golden_noise),
        "train",
        str(dataset),
        "--out",
        str(tmp_path / "two"),
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--lr",
        "3e-3",
        "--unfiltered",
        "--val-fraction",
        "0.25",
        "--log-with",
        "none",
        "--no-progress",
        "--backbone",
        SMALL_NET["backbone"],
        "--backbone-kwargs",
        json.dumps(SMALL_NET["backbone_kwargs"]),
        "--backbone-input-size",
        "32",
    ]
    run = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "2 process(es), global batch 16" in run.stdout
    assert run.stdout.count("done: best val loss") == 1  # one summary, not one per rank
    configs = [
        json.loads((tmp_path / r / "last" / "config.json").read_text()) for r in ("one", "two")
    ]
    assert configs[0] == configs[1]  # the same net, or the comparison means nothing
    two = [
        json.loads(line) for line in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    ]
    for a, b in zip(single.history, two, strict=True):
        assert a["step"] == b["step"]
        for key in ("train_loss", "val_loss", "val_identity", "val_mean_residual"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-5), key
    expected, found = (
        load_file(tmp_path / "one" / "last" / "model.safetensors"),
        load_file(tmp_path / "two" / "last" / "model.safetensors"),
    )
    for key in expected:
        torch.testing.assert_close(found[key], expected[key], rtol=1e-3, atol=1e-4, msg=key)


GUARDED = textwrap.dedent(
    """
    from golden_noise.core.distributed import make_accelerator
    make_accelerator()
    print("started alone")
    """
)


def test_accelerate_cpu_flag_that_starts_one_process_is_refused(tmp_path: Path) -> None:
    script = tmp_path / "guarded.py"
    script.write_text(GUARDED)
    command = [*ACCELERATE, "--cpu", "--num_processes", "2", "--num_machines", "1"]
    command += ["--mixed_precision", "no", "--dynamo_backend", "no", str(script)]
    run = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=120)
    assert run.returncode != 0
    assert "starts only ONE process" in run.stderr and "--multi_gpu" in run.stderr
    assert "started alone" not in run.stdout


def test_the_tools_own_cpu_flag_is_not_read_as_the_launchers(tmp_path: Path) -> None:
    """Before: `accelerate launch --multi_gpu --num_processes 2 SCRIPT --cpu` was refused as
    if it were `accelerate launch --cpu`: the guard read SCRIPT's `--cpu` in the launcher's
    command line. Only the arguments before the script are the launcher's."""
    script = tmp_path / "guarded.py"
    script.write_text(GUARDED)
    command = [*ACCELERATE, "--multi_gpu", "--num_processes", "2", "--num_machines", "1"]
    command += ["--mixed_precision", "no", "--dynamo_backend", "no"]
    command += ["--main_process_port", str(_free_port()), str(script), "--cpu"]
    run = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("started alone") == 2  # both ranks started, in one group
