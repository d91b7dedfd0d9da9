"""Console output that survives a log: full numbers when stdout is not a terminal, strict
JSON for scripts, and progress as periodic plain lines instead of bar redraws."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from report_fixtures import METRICS, finished_run

from golden_noise.cli.output import overall_table, print_json, stdout_console
from golden_noise.core.progress import LogProgress, make_progress, track
from golden_noise.evaluation.stats import compare_arms


def wide_summary():
    """Statistics whose numbers print long: many digits, negative intervals, 3 arms."""
    rng = np.random.default_rng(0)
    rows = [
        {"sample": i, "arm": arm, "group": None, "a-long-metric-name": value, "m": -value}
        for i in range(30)
        for arm, value in zip(
            ["standard", "golden", "norm-matched"], rng.normal(0.0, 0.123456, 3), strict=True
        )
    ]
    return compare_arms(rows, {"a-long-metric-name": True, "m": False}, resamples=200)


def test_tables_print_full_numbers_when_stdout_is_a_pipe(capsys):
    summary = wide_summary()
    stdout_console().print(overall_table(summary))  # capsys: stdout is not a terminal
    text = capsys.readouterr().out
    assert "\u2026" not in text  # rich's ellipsis
    rows = [[c.strip() for c in line.split("\u2502")[1:-1]] for line in text.splitlines()]
    for metric, block in summary["overall"].items():
        for arm, s in block["vs_standard"].items():
            cells = next(c for c in rows if c[:2] == [metric, arm])
            assert cells[2:] == [
                f"{s['mean_baseline']:.4g}",
                f"{s['mean_arm']:.4g}",
                f"{s['mean_diff']:+.3g}",
                f"[{s['ci95_low']:+.3g}, {s['ci95_high']:+.3g}]",
                f"{s['wins']}/{s['ties']}/{s['losses']}",
                f"{s['win_rate']:.0%}",
                f"{s['wilcoxon_p']:.3g}",
            ]
    assert max(len(line) for line in text.splitlines()) <= 160


def test_one_pair_prints_no_interval_instead_of_nan(capsys):
    """Before: one sample printed "[+nan, +nan]" (one pair says nothing about spread)."""
    rows = [{"sample": 0, "arm": arm, "group": None, "m": value}
            for arm, value in (("standard", 0.25), ("golden", 0.5))]  # fmt: skip
    summary = compare_arms(rows, {"m": True}, resamples=50)
    stdout_console().print(overall_table(summary))
    text = capsys.readouterr().out
    cells = next(
        [c.strip() for c in line.split("\u2502")[1:-1]]
        for line in text.splitlines()
        if "golden" in line
    )
    assert cells[2:6] == ["0.25", "0.5", "+0.25", "[n/a, n/a]"]
    assert "nan" not in text


def test_json_is_strict_and_keeps_every_number(capsys, tmp_path):
    _, summary = finished_run(tmp_path)
    summary["overall"]["toy-soft"]["vs_standard"]["golden"]["ci95_low"] = float("nan")
    print_json(summary)
    data = json.loads(capsys.readouterr().out, parse_constant=lambda c: 1 / 0)  # no NaN token
    golden = data["overall"]["toy-soft"]["vs_standard"]["golden"]
    assert golden["ci95_low"] is None
    assert (
        golden["mean_diff"] == summary["overall"]["toy-soft"]["vs_standard"]["golden"]["mean_diff"]
    )
    assert [m.name for m in METRICS] == list(data["overall"])


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_log_progress_prints_a_line_per_interval_and_at_the_end(capsys):
    clock = FakeClock()
    with LogProgress(interval=30.0, clock=clock, extra=lambda f: f"kept {f['kept']:.0%}") as bar:
        task = bar.add_task("collecting", total=64, kept=0.0)
        for step in range(64):
            clock.now += 1.0  # one item a second: a line at 30 s, 60 s and the end (64 s)
            bar.update(task, advance=1, kept=0.5)
            assert step >= 0
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "collecting: 30/64 (47%), 0:00:30 elapsed, ~0:00:34 left, 1 it/s, kept 50%",
        "collecting: 60/64 (94%), 0:01:00 elapsed, ~0:00:04 left, 1 it/s, kept 50%",
        "collecting: 64/64 (100%), 0:01:04 elapsed, 1 it/s, kept 50%",
    ]
    assert not any("\r" in line for line in lines)


def test_track_and_make_progress_fall_back_to_lines_off_a_terminal(capsys):
    assert list(track(range(5), "scoring")) == [0, 1, 2, 3, 4]
    err = capsys.readouterr().err
    assert err.startswith("scoring: 5/5 (100%)") and err.count("\n") == 1
    assert isinstance(make_progress(), LogProgress)
    assert list(track(iter([1, 2]), "quiet", disable=True)) == [1, 2]
    assert capsys.readouterr().err == ""


def test_demo_tables_fit_a_log_line(capsys):
    from golden_noise.cli.demo import summary_tables

    teacher = {"rows": 96, "mean_soft_source": 0.512345, "mean_soft_target": 0.634567,
               "kept_share": 0.4567, "model_calls_per_row": 123}  # fmt: skip
    summary = {
        "teacher_choice": {"chosen": "local-search", "redenoise": teacher, "local-search": teacher},
        "fitted": {"rows": 1188, "mean_gain": 0.061234},
        "collected": {"rows": 1188, "mean_gain": 0.043456},
        "trained": {
            "train_rows": 1069,
            "val_loss": 0.123456,
            "val_identity": 0.234567,
            "kept_epoch": 17,
        },  # fmt: skip
        "seconds": {"choose teacher (validation)": 61.25, "evaluate (held-out)": 301.75},
        "evaluation": wide_summary(),
    }
    stdout_console().print(*summary_tables(summary))
    text = capsys.readouterr().out
    assert "\u2026" not in text and "choose teacher (validation)" in text and "301.8" in text
    assert "0.6346" in text and "0.2346" in text and "+0.0612" in text and "+0.0435" in text


def test_evaluate_json_prints_only_the_statistics(tmp_path):
    from typer.testing import CliRunner

    from golden_noise.cli import app

    result = CliRunner().invoke(
        app,
        ["evaluate", "--prompts", "toy:heldout:2", "--seeds", "0", "--steps", "2",
         "--out", str(tmp_path / "eval"), "--no-progress", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    written = json.loads((tmp_path / "eval" / "metrics.json").read_text())["summary"]
    assert data["overall"] == json.loads(json.dumps(written["overall"]))
    assert data["arms"] == ["standard", "golden", "norm-matched", "random move"]


def test_collect_and_train_json_print_their_summaries(tmp_path):
    from typer.testing import CliRunner

    from golden_noise.cli import app
    from golden_noise.demo.config import TOY_NPNET

    runner = CliRunner()
    dataset = tmp_path / "npd"
    collected = runner.invoke(
        app,
        ["collect", "-p", "toy:train:8", "--out", str(dataset), "--steps", "2", "--margin", "0",
         "--no-progress", "--json"],
    )  # fmt: skip
    assert collected.exit_code == 0, collected.output
    summary = json.loads(collected.stdout)
    assert (summary["rows_in_dataset"], summary["rows_planned"]) == (8, 8)
    assert summary["out"] == str(dataset) and 0.0 <= summary["kept_ratio"] <= 1.0
    trained = runner.invoke(
        app,
        ["train", str(dataset), "--out", str(tmp_path / "run"), "--epochs", "2",
         "--batch-size", "2", "--unfiltered", "--val-fraction", "0.25", "--log-with", "none",
         "--backbone", TOY_NPNET["backbone"],
         "--backbone-kwargs", json.dumps(TOY_NPNET["backbone_kwargs"]),
         "--backbone-input-size", str(TOY_NPNET["backbone_input_size"]),
         "--no-progress", "--json"],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    result = json.loads(trained.stdout)
    assert [row["epoch"] for row in result["history"]] == [1, 2]
    assert result["best_val_loss"] == min(row["val_loss"] for row in result["history"])
    assert result["train_rows"] + result["val_rows"] == 8
    assert "epoch 2/2" in trained.stderr  # the per-epoch lines still reach people


@pytest.mark.parametrize("verbose", [False, True])
def test_third_party_lines_stay_out_of_the_console_unless_verbose(verbose):
    """accelerate's per-epoch checkpoint-rotation warning and diffusers' loading bar: hidden by
    any command, shown with `golden-noise --verbose COMMAND`."""
    script = (
        "import sys\n"
        "from golden_noise.cli import app\n"
        f"app([*{['--verbose'] if verbose else []}, 'scorers'], standalone_mode=False)\n"
        "from accelerate.logging import get_logger\n"
        "from diffusers.utils import logging as d\n"
        "from accelerate import PartialState\n"
        "PartialState(cpu=True)\n"
        "get_logger('accelerate.accelerator').warning('Deleting 1 checkpoints')\n"
        "print('bars', d.is_progress_bar_enabled())\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith(("VERBOSITY", "PROGRESS_BARS"))}
    env.pop("ACCELERATE_LOG_LEVEL", None)
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert ("Deleting 1 checkpoints" in run.stderr) is verbose
    assert f"bars {verbose}" in run.stdout
