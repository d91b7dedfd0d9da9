"""The report files: metrics.json, images.csv, a self-contained report.html, grid.png."""

import csv
import json
import re

from PIL import Image
from report_fixtures import ARMS, METRICS, PROMPTS, finished_run

from golden_noise.report import write_report

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
    assert list(first) == [
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


def test_html_is_self_contained(tmp_path):
    rows, summary = finished_run(tmp_path)
    html = write_report(tmp_path, rows, METRICS, summary, RUN)["report.html"].read_text()
    assert "<table class='metrics'>" in html and "<table class='grid'>" in html
    assert len(re.findall(r"src='data:image/png;base64,", html)) == len(rows)
    assert not re.search(r"(src|href)=['\"](?!data:)", html)  # nothing fetched from outside
    assert "&lt;&amp;&gt; &quot;quoted&quot;" in html  # prompts are escaped
    assert "<h3>position</h3>" in html  # per-group tables


def test_grid_png_shape(tmp_path):
    rows, summary = finished_run(tmp_path)
    path = write_report(tmp_path, rows, METRICS, summary, RUN, max_grid_samples=3)["grid.png"]
    with Image.open(path) as grid:
        width, height = grid.size
    assert width == 320 + len(ARMS) * (256 + 6) + 6
    assert height == 28 + 3 * (256 + 6) + 6
