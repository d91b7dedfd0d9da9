"""`golden-noise demo`: the whole method offline on the toy world, timed stage by stage.

choose teacher (validation split) -> collect pairs (train split) -> train NPNet -> evaluate
standard vs golden vs the norm-matched control vs the teacher's own target on held-out
prompts and unseen seeds. The output folder holds each stage's data, the trained net under
`npnet/`, the evaluation report under `report/` and `summary.json` (choices, their
validation numbers, timings, results).
"""

from __future__ import annotations

import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from golden_noise.core.atomic import atomic_directory, atomic_write_json
from golden_noise.demo.config import CONFIG_NAME, DemoConfig
from golden_noise.demo.stages import (
    build_teacher,
    choose_teacher,
    collect_training_pairs,
    evaluate_stage,
    train_npnet,
)

if TYPE_CHECKING:  # imported where used: the worker runs as `python -m ...processes`
    from golden_noise.demo.processes import EvaluationProcesses

SUMMARY = "summary.json"


class StageClock:
    """Wall seconds per stage, in the order the stages ran."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str, announce: Any = None):
        if announce is not None:
            announce(f"[bold]stage: {name}[/bold]")
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = time.perf_counter() - start


def run_demo(
    out: Path | str,
    config: DemoConfig,
    *,
    pipe: Any = None,
    shipped: Any = None,
    progress: bool = True,
    console: Any = None,
    processes: EvaluationProcesses | None = None,
) -> dict[str, Any]:
    """Run (or resume) the demo into `out`; returns the summary also written to summary.json.

    `pipe`: the toy pipeline (default: the shipped one), e.g. another toy training run's.
    `shipped`: an NPNet evaluated beside the run's own on the same held-out samples (the CLI
    passes the shipped toy NPNet when it runs the shipped pipeline). `processes`: run the
    held-out evaluation, the demo's longest stage, as that many accelerate processes
    (they load the pipeline named there, and the shipped NPNet with the shipped pipeline),
    instead of in this process.
    """
    from golden_noise.toy import load_pipeline

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    say = console.print if console is not None else None
    pipe = pipe if pipe is not None else load_pipeline()
    pipe.set_progress_bar_config(disable=True)
    clock = StageClock()
    atomic_write_json(out / CONFIG_NAME, config.to_dict())

    with clock.stage("choose teacher (validation)", say):
        chosen, choice = choose_teacher(pipe, config, out / "validation", progress)
    options = dict(config.teachers)[chosen]
    teacher = build_teacher(chosen, options, config)
    with clock.stage("collect", say):
        collected = collect_training_pairs(pipe, config, teacher, out / "npd", progress)
    with clock.stage("train", say):
        trained = train_npnet(config, out / "npd", out / "train", progress)
    publish_npnet(out / "train" / "best", out / "npnet")
    with clock.stage("evaluate (held-out)", say):
        if processes is None:
            stats = evaluate_stage(out, config, pipe, chosen, shipped, progress)
        else:
            from golden_noise.demo.processes import evaluate_in_processes

            stats = evaluate_in_processes(out, processes, progress)
    summary = {
        "config": config.to_dict(),
        "teacher_choice": choice,
        "collected": collected,
        "trained": trained,
        "seconds": clock.seconds,
        "evaluation": stats,
    }
    atomic_write_json(out / SUMMARY, summary)
    return summary


def publish_npnet(source: Path, target: Path) -> None:
    """Copy a trained net's folder to `target` as a whole (never a partial folder)."""
    with atomic_directory(target) as folder:
        shutil.copytree(source, folder, dirs_exist_ok=True)
