"""The toy world's default NPNet: the one a full `golden-noise demo` run trains, shipped here.

Reproduce it with `golden-noise demo --out DIR` and copy `DIR/npnet` to `weights/npnet/`.
"""

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.npnet import NPNet
from golden_noise.toy.pipeline import WEIGHTS_DIR

NPNET_DIR = WEIGHTS_DIR / "npnet"


def load_npnet() -> NPNet:
    """The shipped toy NPNet (float32, eval mode), for `GoldenNoise(load_npnet(), toy_pipe)`."""
    if not (NPNET_DIR / "config.json").is_file():
        raise GoldenNoiseError(
            f"expected the toy NPNet in {NPNET_DIR} (save_pretrained format), found none; "
            "train one with `golden-noise demo --out DIR` and copy DIR/npnet there"
        )
    return NPNet.from_pretrained(NPNET_DIR).eval()
