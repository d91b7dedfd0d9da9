r"""The toy world's default NPNet: a prompt-offset net distilled from composed offsets.

Every train prompt's offset was fitted on the toy reward model (`collect --teacher
prompt-offset`, committed in `data/toy-prompt-offsets/`); the composed-offset teacher averaged
them into object-and-role parts and gave each of the 1,188 train prompts the sum of its parts
(`data/toy-composed-offsets/`), so that prompts sharing an object share its offset; one
prompt-offset net (noise + an offset read from the prompt, rescaled to the noise's norm, so its
gain is no temperature change; a 4-layer decoder of width 128) was regressed onto those. It
was chosen on the validation split by the rule of `docs/prompt-offsets.md` (variety >= 0.95x,
then the most correct images with soft beyond a random move). Remake it from scratch with one
resumable command (`demo.config.FULL_SCALE`, ~1.5 h on 2 cores), whose `npnet/` is the net:

    golden-noise demo --full-scale --out full-scale

Its composed rows are the committed ones bit for bit; 150 epochs of training amplify float
round-off, so another CPU or thread count trains other weights of the same recipe
(docs/prompt-offsets.md, "The shipped net", compares one such remake with this net). Or step
by step from the repository root, starting from the committed fits, then copy
`npnet-toy/last` to `weights/npnet/`:

    golden-noise collect -p toy:train:all --teacher composed-offset \
        --offset-source data/toy-prompt-offsets --offset-ridge 1 --steps 10 --guidance 2 \
        --margin -1 --out data/toy-composed-offsets
    golden-noise train data/toy-composed-offsets --out npnet-toy --unfiltered \
        --backbone-kwargs '{"width": 128, "layers": 4, "heads": 4}' \
        --batch-size 32 --lr 2e-3 --weight-decay 0 --epochs 150 --log-with none

(`golden-noise collect` with the command in `docs/prompt-offsets.md` refits the source offsets;
it resumes wherever it stopped.)
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
            "train one with `golden-noise train DATASET --out DIR` and copy DIR/last there"
        )
    return NPNet.from_pretrained(NPNET_DIR).eval()
