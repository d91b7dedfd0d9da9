"""The report files: metrics.json, images.csv, a self-contained report.html (a jinja2
template), its pictures as PNGs beside it (forest plot, norm ratios, group strips), grid.png."""

import base64
import csv
import dataclasses
import json
import re

import numpy as np
import pytest
from PIL import Image
from report_fixtures import ARMS, METRICS, PROMPTS, finished_run

from golden_noise.evaluation.report import write_report
from golden_noise.evaluation.report.figures import (
    forest_figure,
    forest_intervals,
    norm_ratio_figure,
)
from golden_noise.evaluation.report.grid import group_samples
from golden_noise.evaluation.stats import compare_arms

RUN = {"pipeline": "toy", "npnet": "npnet-dir", "seeds": "0,1"}


def test_metrics_json_holds_summary_and_scales(tmp_path):
    rows, summary = finished_run(tmp_path)
    paths = write_report(tmp_path, rows, METRICS, summary, RUN)
    data = json.loads(paths["metrics.json"].read_text())
    assert data["run"] == RUN
    assert data["metrics"]["distance"] == {"scale": "lower is better", "higher_is_better": False}
    assert data["summary"] == json.loads(json.dumps(summary))
    golden = data["summary"]["overall"]["toy-soft"]["vs_standard"]["golden"]
    assert golden["wins"] == 4 and golden["mean_diff"] > 0


def test_csv_has_one_line_per_image(tmp_path):
    rows, summary = finished_run(tmp_path)
    paths = write_report(tmp_path, rows, METRICS, summary, RUN)
    with paths["images.csv"].open(newline="") as handle:
        lines = list(csv.DictReader(handle))
    assert len(lines) == len(rows) == 2 * 2 * 3
    first = lines[0]
    assert list(first)[:8] == [
        "prompt_index",
        "prompt",
        "group",
        "seed",
        "arm",
        "file",
        "toy-soft",
        "distance",
    ]
    assert first["prompt"] == PROMPTS[0] and first["arm"] == "standard"
    assert float(first["toy-soft"]) == rows[0].scores["toy-soft"]
    assert lines[3]["prompt"] == PROMPTS[0] and lines[3]["seed"] == "1"
    assert lines[-1]["prompt"] == PROMPTS[1]  # quotes and commas survive the round trip
    assert (tmp_path / lines[-1]["file"]).is_file()


def test_html_is_self_contained_escaped_and_shows_every_picture(tmp_path):
    rows, summary = finished_run(tmp_path)
    run = {**RUN, "prompts": '<script>alert(1)</script> & "x"'}
    paths = write_report(tmp_path, rows, METRICS, summary, run)
    html = paths["report.html"].read_text()
    assert html.count('<table class="metrics">') == 3  # overall + two groups
    assert "<h3>position</h3>" in html
    assert "Wilcoxon p: two-sided signed-rank, tied pairs dropped" in html  # as stats.py does
    assert not re.search(r"(src|href)=['\"](?!data:)", html)  # nothing fetched from outside
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp;" in html
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    pictures = ["forest.png", "norm_ratio.png", "strip-objects.png", "strip-position.png"]
    # every picture on the page is byte for byte the PNG saved beside it, in page order
    assert [base64.b64decode(e) for e in embedded] == [
        (tmp_path / p).read_bytes() for p in pictures
    ]
    assert all(name in paths for name in pictures)


def test_forest_plot_draws_each_arms_interval(tmp_path):
    rows, summary = finished_run(tmp_path)
    intervals = forest_intervals(summary, "toy-soft")
    # independent of the statistics code: the fixture's soft score rises 0.1 per arm
    by_key = {(i.block, i.arm): i for i in intervals}
    assert set(by_key) == {(b, a) for b in ("overall", "objects", "position") for a in ARMS[1:]}
    assert by_key[("overall", "teacher")].mean == pytest.approx(0.2)
    assert by_key[("position", "golden")].mean == pytest.approx(0.1)
    # lopsided intervals (skewed differences) so a swapped lower/upper error bar shows
    rng = np.random.default_rng(0)
    noisy = compare_arms(
        [
            {"sample": i, "arm": arm, "group": "ab"[i % 2], "toy-soft": value, "distance": 0.0}
            for i in range(40)
            for arm, value in zip(ARMS, [0.0, *rng.exponential(0.1, 2)], strict=True)
        ],
        {m.name: m.higher_is_better for m in METRICS},
        resamples=500,
    )
    intervals = forest_intervals(noisy, "toy-soft")
    assert all(
        abs((i.high - i.mean) - (i.mean - i.low)) > 0.02 * (i.high - i.low) for i in intervals
    )
    figure = forest_figure(noisy, METRICS)
    assert [ax.get_title() for ax in figure.axes[:2]] == [
        "toy-soft (higher is better)",
        "distance (lower is better)",
    ]
    drawn = []
    for container in figure.axes[0].containers:
        marker, _, (bars,) = container
        (x,), segment = marker.get_xdata(), bars.get_segments()[0]
        drawn.append((float(x), float(segment[0][0]), float(segment[1][0])))
    assert drawn == [pytest.approx((i.mean, i.low, i.high)) for i in intervals]


def test_norm_ratio_figure_counts_every_sample_and_is_optional(tmp_path):
    ratios = {"golden": [0.86, 0.87, 0.87, 0.88], "norm-matched": [0.86, 0.87, 0.87, 0.88, 0.9]}
    figure = norm_ratio_figure(ratios)
    heights = [sum(p.get_height() for p in c) for c in figure.axes[0].containers]
    assert heights == [4, 5]
    assert "median 0.870" in figure.axes[0].get_legend().get_texts()[0].get_text()
    rows, summary = finished_run(tmp_path)
    without = [dataclasses.replace(r, norm_ratio=None) for r in rows]
    paths = write_report(tmp_path, without, METRICS, summary, RUN)
    assert "norm_ratio.png" not in paths and not (tmp_path / "norm_ratio.png").exists()
    assert "No start-noise norm ratios" in paths["report.html"].read_text()


def test_strips_take_the_first_samples_of_each_group(tmp_path):
    rows, summary = finished_run(tmp_path, seeds=3)
    chosen = group_samples(rows, ARMS, per_group=2)
    assert list(chosen) == ["objects", "position"]
    assert [[c["golden"].seed for c in cells] for cells in chosen.values()] == [[0, 1], [0, 1]]
    ungrouped = [dataclasses.replace(r, group=None) for r in rows]
    assert list(group_samples(ungrouped, ARMS, per_group=2)) == ["all"]
    paths = write_report(tmp_path, rows, METRICS, summary, RUN, strip_samples=2)
    with Image.open(paths["strip-objects.png"]) as two, Image.open(paths["grid.png"]) as grid:
        assert two.width < grid.width and two.height < 0.5 * grid.height
        pixels = np.asarray(two.convert("L"))
    assert pixels.std() > 10  # images were drawn, not an empty canvas


def test_grid_png_shape(tmp_path):
    rows, summary = finished_run(tmp_path)
    path = write_report(tmp_path, rows, METRICS, summary, RUN, max_grid_samples=3)["grid.png"]
    with Image.open(path) as grid:
        width, height = grid.size
    assert width == 320 + len(ARMS) * (256 + 6) + 6
    assert height == 28 + 3 * (256 + 6) + 6
