"""How long `golden-noise --help` and each `golden-noise COMMAND --help` take, beside the
interpreter's own start (`python -c pass`): fresh processes, the median of a few runs each.

    .venv/bin/python benchmarks/cli_help.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

CLI = str(Path(sys.executable).with_name("golden-noise"))


def median_seconds(command: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="Runs per command (the median).")
    args = parser.parse_args()

    import typer

    from golden_noise.cli import app

    commands = sorted(typer.main.get_command(app).commands)
    rows = [
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ("golden-noise --help", [CLI, "--help"]),
    ]
    rows += [(f"golden-noise {name} --help", [CLI, name, "--help"]) for name in commands]
    print(f"| command | median s ({args.runs} runs) |\n|---|---|")
    for label, command in rows:
        print(f"| `{label}` | {median_seconds(command, args.runs):.2f} |", flush=True)


if __name__ == "__main__":
    main()
