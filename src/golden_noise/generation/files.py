"""Where `golden-noise generate` writes: a folder it never overwrites silently.

Its files (`prompts.txt`, `NNN-sSEED[-ARM].png`, `NNN-compare.png`, `grid.png`) are named by
prompt number and seed, so a second run into the same folder would replace the first run's
images and its `prompts.txt` would no longer describe them. A folder that already holds any
of them is refused before anything is loaded or written, and so is a folder inside a Noise
Prompt Dataset, where the images would be mixed into its shards.
"""

from __future__ import annotations

import re
from pathlib import Path

from golden_noise.core.errors import GoldenNoiseError, first_few
from golden_noise.core.validate import MAX_BATCH, integer
from golden_noise.dataset.manifest import check_outside_dataset

PROMPTS_INDEX = "prompts.txt"
_OURS = re.compile(r"^(\d{3,}-(s\d+(-[a-z-]+)?|compare)|grid)\.png$")


def check_new_output(out: Path, batch_size: int) -> None:
    """Refuse settings and an output folder that would lose or overwrite images."""
    integer("batch_size", batch_size, 1, MAX_BATCH)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise GoldenNoiseError(f"--out must be a folder for the images; {out} is a file")
    check_outside_dataset(out, "images and prompts.txt")
    if not out.is_dir():
        return
    taken = sorted(p.name for p in out.iterdir() if p.name == PROMPTS_INDEX or _OURS.match(p.name))
    if taken:
        shown = first_few(taken, 3)
        raise GoldenNoiseError(
            f"{out} already holds generated images ({shown}); a new run would overwrite them. "
            "Choose a new --out, or delete those files"
        )
