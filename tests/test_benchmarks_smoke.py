"""Every `benchmarks/*.py` script imports and answers `--help` (a renamed or removed product
name breaks a script at import): all started at once, each in its own process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_every_benchmark_script_answers_help() -> None:
    scripts = sorted(BENCHMARKS.glob("*.py"))
    assert len(scripts) >= 10
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    running = {
        script.name: subprocess.Popen(
            [sys.executable, str(script), "--help"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for script in scripts
    }
    failed = {}
    for name, process in running.items():
        _, stderr = process.communicate(timeout=300)
        if process.returncode != 0:
            failed[name] = stderr[-2000:]
    assert not failed, "\n\n".join(f"{name}:\n{err}" for name, err in failed.items())
