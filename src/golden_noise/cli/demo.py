"""`golden-noise demo`: collect -> train -> generate -> evaluate on the embedded toy world."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from golden_noise.cli.app import app


@app.command()
def demo(
    out: Annotated[
        Path,
        typer.Option(
            help="Output folder (created; a re-run with the same --quick and --pipeline "
            "resumes, other ones are refused)."
        ),
    ] = Path("golden-noise-demo"),
    quick: Annotated[
        bool, typer.Option(help="A minutes-long smoke run (CI) instead of the full demo.")
    ] = False,
    full_scale: Annotated[
        bool,
        typer.Option(
            help="The offset recipe on every train prompt: the shipped toy NPNet from scratch "
            "(~1.5 h on 2 cores; re-running resumes)."
        ),
    ] = False,
    pipeline: Annotated[
        Path | None,
        typer.Option(help="Another toy pipeline folder (e.g. toy-train's) instead of the shipped."),
    ] = None,
    study: Annotated[
        bool,
        typer.Option(
            help="Also run the study: both teachers, the ablations, seven samplers (study.json)."
        ),
    ] = False,
    threads: Annotated[
        int | None,
        typer.Option(
            help="Torch CPU threads (default: torch's, one per core; the demo's batched "
            "generation runs 1.7x faster on 2 idle cores than on 1; use 1 beside other jobs)."
        ),
    ] = None,
    processes: Annotated[
        int | None,
        typer.Option(
            help="Accelerate processes for the held-out evaluation, the longest stage "
            "(default: 2 on a CPU with >= 2 cores, where two 1-thread processes generate 1.2x "
            "faster than one 2-thread process; 1 = in this process, the default of --quick, "
            "whose evaluation is shorter than the processes' ~15 s start-up)."
        ),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """The whole method offline on the toy world, ending in a report of whether it helped."""
    import torch
    from rich.console import Console

    from golden_noise.cli.output import stdout_console
    from golden_noise.core.errors import GoldenNoiseError
    from golden_noise.core.validate import integer
    from golden_noise.demo import FULL, FULL_SCALE, QUICK, run_demo, run_study
    from golden_noise.demo.processes import EvaluationProcesses
    from golden_noise.toy import load_npnet, load_pipeline

    if quick and full_scale:
        raise GoldenNoiseError("expected one of --quick and --full-scale; got both")
    if threads is not None:
        torch.set_num_threads(integer("threads", threads, 1, 1024))  # 0: a RuntimeError traceback
    console = Console(stderr=True)
    cores = os.cpu_count() or 1
    count = 1 if quick else min(2, cores)
    if processes is not None:
        count = integer("processes", processes, 1, 64)
    workers = None
    if count > 1:
        each = threads if threads is not None else max(1, cores // count)
        workers = EvaluationProcesses(count, each, pipeline)
    pipe = load_pipeline(path=pipeline) if pipeline is not None else load_pipeline()
    config = QUICK if quick else FULL_SCALE if full_scale else FULL
    # the shipped NPNet is compared only on the pipeline it was made for
    shipped = load_npnet() if pipeline is None else None
    summary = run_demo(
        out,
        config,
        pipe=pipe,
        shipped=shipped,
        progress=progress,
        console=console,
        processes=workers,
    )
    findings = run_study(out, config, pipe, progress, console) if study else None
    stdout = stdout_console()
    stdout.print(*summary_tables(summary))
    if findings is not None:
        stdout.print(*study_tables(findings))
    console.print(f"report: {out / 'report' / 'report.html'}; trained NPNet: {out / 'npnet'}")


def summary_tables(summary: dict[str, Any]) -> list[Any]:
    """The run's choices, data, training and held-out result as rich tables."""
    from golden_noise.cli.output import overall_table, table

    choice = summary["teacher_choice"]
    teachers = table(
        f"teacher choice on validation (chosen: {choice['chosen']})",
        ["teacher", "rows", "soft x_T", "soft x_T'", "kept", "calls/row"],
    )
    for name, row in choice.items():
        if isinstance(row, dict):
            teachers.add_row(
                name,
                str(row["rows"]),
                f"{row['mean_soft_source']:.4f}",
                f"{row['mean_soft_target']:.4f}",
                f"{row['kept_share']:.0%}",
                str(row["model_calls_per_row"]),
            )
    fitted, composed, trained = summary["fitted"], summary["collected"], summary["trained"]
    data = table(
        "the offset recipe on train prompts (soft gain of its targets, val = unseen train prompts)",
        ["fitted", "fit gain", "composed", "composed gain", "train rows", "val MSE",
         "identity MSE", "kept epoch"],
        left=0,
    )  # fmt: skip
    data.add_row(
        str(fitted["rows"]),
        f"{fitted['mean_gain']:+.4f}",
        str(composed["rows"]),
        f"{composed['mean_gain']:+.4f}",
        str(trained["train_rows"]),
        f"{trained['val_loss']:.4f}",
        f"{trained['val_identity']:.4f}",
        str(trained["kept_epoch"]),
    )
    timings = table("stage timings", ["stage", "seconds"])
    for stage, seconds in summary["seconds"].items():
        timings.add_row(stage, f"{seconds:.1f}")
    return [teachers, data, overall_table(summary["evaluation"]), timings]


def study_tables(findings: dict[str, Any]) -> list[Any]:
    """Soft and correct of every study arm against standard, and soft per sampler."""
    from golden_noise.cli.output import table

    tables = []
    for part in ("teachers", "ablations"):
        out = table(
            f"study: {part} (soft / correct; diff vs standard, 95% CI, p)",
            ["arm", "soft", "diff", "95% CI", "p", "correct", "diff correct"],
        )
        stats = findings[part]["evaluation"]["overall"]
        soft, correct = stats["toy-soft"], stats["toy-correct"]
        out.add_row("standard", f"{soft['means']['standard']:.4f}", "", "", "",
                    f"{correct['means']['standard']:.3f}", "")  # fmt: skip
        for arm, s in soft["vs_standard"].items():
            c = correct["vs_standard"][arm]
            out.add_row(
                arm,
                f"{s['mean_arm']:.4f}",
                f"{s['mean_diff']:+.4f}",
                f"[{s['ci95_low']:+.4f}, {s['ci95_high']:+.4f}]",
                f"{s['wilcoxon_p']:.2g}",
                f"{c['mean_arm']:.3f}",
                f"{c['mean_diff']:+.3f}",
            )
        tables.append(out)
    samplers = table(
        "study: samplers (NPNet trained on DDIM data)",
        ["sampler", "soft std", "soft golden", "diff", "95% CI", "p", "correct diff"],
    )
    for name, stats in findings["samplers"].items():
        s = stats["overall"]["toy-soft"]["vs_standard"]["golden"]
        c = stats["overall"]["toy-correct"]["vs_standard"]["golden"]
        samplers.add_row(
            name,
            f"{s['mean_baseline']:.4f}",
            f"{s['mean_arm']:.4f}",
            f"{s['mean_diff']:+.4f}",
            f"[{s['ci95_low']:+.4f}, {s['ci95_high']:+.4f}]",
            f"{s['wilcoxon_p']:.2g}",
            f"{c['mean_diff']:+.3f}",
        )
    tables.append(samplers)
    return tables
