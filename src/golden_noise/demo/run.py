"""`golden-noise demo`: the whole method offline on the toy world, timed stage by stage.

choose teacher (validation split) -> fit offsets -> compose them -> train the NPNet (train
split; `demo.offset_recipe`) -> evaluate standard vs golden vs its controls vs the teacher's
own target (and the shipped NPNet) on held-out prompts and unseen seeds. The output folder
holds each stage's data, the trained net under `npnet/`, the evaluation report under
`report/` and `summary.json` (choices, their validation numbers, timings, results).
"""

from __future__ import annotations

import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from golden_noise.adapters.loading import pipeline_sha256
from golden_noise.core.atomic import atomic_directory, atomic_write_json
from golden_noise.core.errors import GoldenNoiseError, first_few
from golden_noise.core.file_digests import folder_sha256s
from golden_noise.core.settings_record import changed_settings
from golden_noise.demo.config import CONFIG_NAME, PIPELINE_KEY, DemoConfig
from golden_noise.demo.offset_recipe import compose_offsets, fit_offsets, train_offset_net
from golden_noise.demo.stages import choose_teacher, evaluate_stage

if TYPE_CHECKING:  # imported where used: the worker runs as `python -m ...processes`
    from golden_noise.demo.processes import EvaluationProcesses

SUMMARY = "summary.json"
# What the demo and its study write beside demo_config.json; any of them makes a folder a run.
STAGE_OUTPUTS = ("validation", "offsets", "npd", "train", "npnet", "report", "study", SUMMARY,
                 "study.json")  # fmt: skip


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
    A folder holding another run (other `config` or `pipe`) is refused before anything is
    written (`claim_demo_folder`).

    `pipe`: the toy pipeline (default: the shipped one), e.g. another toy training run's.
    `shipped`: an NPNet evaluated beside the run's own on the same held-out samples (the CLI
    passes the shipped toy NPNet when it runs the shipped pipeline). `processes`: run the
    held-out evaluation, the demo's longest stage, as that many accelerate processes
    (they load the pipeline named there, and the shipped NPNet with the shipped pipeline),
    instead of in this process.
    """
    from golden_noise.toy import load_pipeline

    out = Path(out)
    say = console.print if console is not None else None
    pipe = pipe if pipe is not None else load_pipeline()
    pipe.set_progress_bar_config(disable=True)
    claim_demo_folder(out, config, pipe)
    clock = StageClock()

    with clock.stage("choose teacher (validation)", say):
        chosen, choice = choose_teacher(pipe, config, out / "validation", progress)
    with clock.stage("fit offsets", say):
        fitted = fit_offsets(pipe, config, out / "offsets", progress)
    with clock.stage("compose offsets", say):
        collected = compose_offsets(pipe, config, out / "offsets", out / "npd", progress)
    with clock.stage("train", say):
        trained = train_offset_net(config, out / "npd", out / "train", progress)
    publish_npnet(out / "train" / "last", out / "npnet")
    with clock.stage("evaluate (held-out)", say):
        if processes is None:
            stats = evaluate_stage(out, config, pipe, chosen, shipped, progress)
        else:
            from golden_noise.demo.processes import evaluate_in_processes

            stats = evaluate_in_processes(out, processes, progress)
    summary = {
        "config": config.to_dict(),
        "teacher_choice": choice,
        "fitted": fitted,
        "collected": collected,
        "trained": trained,
        "seconds": clock.seconds,
        "evaluation": stats,
    }
    atomic_write_json(out / SUMMARY, summary)
    return summary


def demo_record(config: DemoConfig, pipe: Any) -> dict[str, Any]:
    """What `demo_config.json` holds: every setting of `config` and a digest of the pipeline
    (`pipeline_sha256`), which changes every number the run makes."""
    return {**config.to_dict(), PIPELINE_KEY: pipeline_sha256(pipe)}


def claim_demo_folder(out: Path, config: DemoConfig, pipe: Any) -> None:
    """Refuse, before anything is written, a run into `out` with settings or a pipeline other
    than the run it holds: its stages would add this run's rows and epochs to that run's data
    and leave a folder whose parts come from two runs. A folder with stage outputs but no
    readable record is refused too, as nothing shows what made them. A fresh folder is
    claimed by writing the record; a matching one is resumed with its record left as it is.
    """
    path = out / CONFIG_NAME
    if not path.exists():
        found = [name for name in STAGE_OUTPUTS if (out / name).exists()]
        if found:
            raise GoldenNoiseError(
                f"{out} holds demo outputs ({', '.join(found)}) but no {CONFIG_NAME}, the record "
                "of the settings that made them; running here could mix two runs. Restore that "
                "file, or choose a new --out"
            )
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, demo_record(config, pipe))
        return
    try:
        changed = changed_settings(path, demo_record(config, pipe))
    except GoldenNoiseError as error:
        raise GoldenNoiseError(
            f"{error}; it records the settings of the demo run in {out}: restore it, or choose "
            "a new --out"
        ) from error
    if changed:
        raise GoldenNoiseError(
            f"{out} holds a demo run with other settings ({'; '.join(changed)}); running here "
            "would mix two runs' data: re-run with that run's settings (--quick or not, the same "
            "--pipeline) to resume it, or choose a new --out"
        )


def publish_npnet(source: Path, target: Path) -> None:
    """Copy a trained net's folder to `target` as a whole (never a partial folder).

    Published once: a re-run finds the same files there and leaves them (and anything the
    user added) alone, and puts back a file of the net that went missing. Other weights
    under the trained net's folder than the published ones are refused: the report measured
    the published net, not those.
    """
    if target.exists():
        published, trained = folder_sha256s(target), folder_sha256s(source)
        changed = sorted(
            name for name, digest in trained.items()
            if published.get(name, digest) != digest
        )  # fmt: skip
        if changed:
            raise GoldenNoiseError(
                f"{source} holds {first_few(changed, 4)} other than the net published in "
                f"{target}, which the demo evaluated; restore them, or run the demo into a new "
                "--out"
            )
        if trained.keys() <= published.keys():
            return
    with atomic_directory(target) as folder:
        shutil.copytree(source, folder, dirs_exist_ok=True)
