"""report.html in a real headless browser (Debian's chromium): it loads offline, shows the
metric tables, the forest plot, the norm-ratio figure and the group strips, and every
embedded picture decodes at the size of the PNG saved beside the page. Skipped only outside
CI without chromium."""

import json
import os
import re
import shutil
import subprocess

import pytest
from PIL import Image
from report_fixtures import METRICS, finished_run

from golden_noise.evaluation.report import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("CI") != "true",
    reason="chromium is not installed (in CI it must be: apt-get install -y chromium)",
)

# Appended to a copy of the page: after load, write what the browser sees into the DOM.
PROBE = """<script>
window.addEventListener('load', () => {
  const images = [...document.images].map(
    i => [i.closest('figure').id || i.alt, i.complete, i.naturalWidth, i.naturalHeight]);
  const cells = [...document.querySelectorAll('table.metrics tr')].map(r => r.cells.length);
  const probe = document.createElement('pre');
  probe.id = 'probe';
  probe.textContent = JSON.stringify({images, cells});
  document.body.appendChild(probe);
});
</script></body>"""


def test_report_opens_in_chromium(tmp_path):
    assert CHROMIUM is not None, "CI=true but chromium is missing"
    rows, summary = finished_run(tmp_path)
    page = write_report(tmp_path, rows, METRICS, summary, {"pipeline": "toy"})["report.html"]
    probed = tmp_path / "probed.html"
    probed.write_text(page.read_text().replace("</body>", PROBE))
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            probed.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    match = re.search(r'<pre id="probe">(.*?)</pre>', result.stdout, re.S)
    assert match, f"no probe in the DOM; chromium said: {result.stderr[-2000:]}"
    seen = json.loads(match.group(1).replace("&quot;", '"'))
    pictures = {
        "forest": "forest.png",
        "norm-ratio": "norm_ratio.png",
        "images: group objects": "strip-objects.png",
        "images: group position": "strip-position.png",
    }
    assert [name for name, *_ in seen["images"]] == list(pictures)
    for name, done, width, height in seen["images"]:
        with Image.open(tmp_path / pictures[name]) as png:
            assert done and (width, height) == png.size, name
    # header + 2 metrics x 2 arms against the baseline, 9 columns each; per group tables too
    assert seen["cells"][:5] == [9, 9, 9, 9, 9]
    assert len(seen["cells"]) == 3 * 5
