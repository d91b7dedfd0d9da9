"""Two CPU processes through `accelerate launch` split the samples and write the same report
as one process (same images bit for bit, same statistics)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from tiny_pipelines import build_sd, tiny_npnet
from typer.testing import CliRunner

from golden_noise.cli import app

PROMPTS = ["a red circle", "two blue squares", "a yellow square and a magenta circle"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_processes_write_the_one_process_report(tmp_path: Path) -> None:
    build_sd().save_pretrained(tmp_path / "pipe")
    tiny_npnet(32).save_pretrained(tmp_path / "npnet")
    (tmp_path / "prompts.txt").write_text("\n".join(PROMPTS) + "\n")
    args = [
        "evaluate", "--pipeline", str(tmp_path / "pipe"), "--npnet", str(tmp_path / "npnet"),
        "--prompts", str(tmp_path / "prompts.txt"), "--seeds", "0-2", "--steps", "2",
        "--scorers", "toy-soft,toy-correct", "--no-progress",
    ]  # fmt: skip
    single = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "one"), "--cpu"])
    assert single.exit_code == 0, single.output
    launch = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
        "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
        "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
        str(Path(sys.executable).with_name("golden-noise")), *args, "--out", str(tmp_path / "two"),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(launch, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("one", "two"))
    assert one["summary"] == two["summary"] and one["summary"]["n_samples"] == 9
    assert (tmp_path / "one/images.csv").read_text() == (tmp_path / "two/images.csv").read_text()
    for image in (tmp_path / "one/images").glob("*.png"):
        assert image.read_bytes() == (tmp_path / "two/images" / image.name).read_bytes()
