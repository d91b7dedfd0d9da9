"""A reward model fitted to the toy scorer: the toy world's differentiable preference model.

The exact scorer (``toy.scorer``) finds connected components and fits shapes, so it is
piecewise constant in the pixels and has no gradient. The hand-made surrogate
(``toy.surrogate``) models colour areas and positions only (Pearson 0.52 with the soft
score). This model plays the part HPSv2 or PickScore play for a real pipeline: a network
that reads the image and the prompt and was fitted to the judge's scores, here the exact
soft score of images the toy pipeline drew (``toy.reward_fit``). It sees the scorer's own
colour rule as input channels (foreground, palette memberships, the prompted objects'
memberships, pixel coordinates) and the parsed prompt through FiLM, so shapes, counts and
sides are within its reach.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn
from torch.nn import functional as F

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.toy.grammar import COLOURS, PROMPT_TYPES, SHAPES, parse
from golden_noise.toy.pipeline import WEIGHTS_DIR
from golden_noise.toy.scorer import FG_THRESHOLD

REWARD_MODEL_DIR = WEIGHTS_DIR / "reward_model"
_NAMES = list(COLOURS)
_PALETTE = torch.tensor([COLOURS[c] for c in _NAMES], dtype=torch.float32) / 255.0
_UNIT = _PALETTE / _PALETTE.norm(dim=1, keepdim=True)
_SIDES = ("left", "right", "top", "bottom")
# prompt type, first colour, first shape, second colour, second shape, object count, side
_SLICES = {
    "type": slice(0, 4),
    "colour0": slice(4, 10),
    "shape0": slice(10, 13),
    "colour1": slice(13, 19),
    "shape1": slice(19, 22),
    "count": slice(22, 25),
    "side": slice(25, 29),
}
SPEC_DIM = 29
FEATURE_CHANNELS = 15


def spec_vector(prompt: str) -> torch.Tensor:
    """The prompt's parsed request as a fixed one-hot layout `[SPEC_DIM]`."""
    spec = parse(prompt)
    v = torch.zeros(SPEC_DIM)
    v[_SLICES["type"].start + PROMPT_TYPES.index(spec.prompt_type)] = 1
    for k, (colour, shape) in enumerate(
        spec.objects[:2] if spec.prompt_type in ("pair", "position") else spec.objects[:1]
    ):
        v[_SLICES[f"colour{k}"].start + _NAMES.index(colour)] = 1
        v[_SLICES[f"shape{k}"].start + SHAPES.index(shape)] = 1
    v[_SLICES["count"].start + len(spec.objects) - 1] = 1
    if spec.relation is not None:
        v[_SLICES["side"].start + _SIDES.index(spec.relation[0])] = 1
    return v


def features(images: torch.Tensor, spec: torch.Tensor) -> torch.Tensor:
    """Input channels `[B, 15, H, W]`: rgb, foreground, 6 palette memberships, the first and
    second prompted object's membership, everything else, x and y."""
    bright = images.amax(dim=1, keepdim=True)
    foreground = torch.sigmoid((bright - FG_THRESHOLD) * 20)
    unit = _UNIT.to(images)
    cosine = torch.einsum("bchw,kc->bkhw", images, unit) / (images.norm(dim=1, keepdim=True) + 1e-6)
    members = foreground * torch.softmax(cosine * 30, dim=1)
    first = torch.einsum("bk,bkhw->bhw", spec[:, _SLICES["colour0"]], members)[:, None]
    second = torch.einsum("bk,bkhw->bhw", spec[:, _SLICES["colour1"]], members)[:, None]
    same = (spec[:, _SLICES["colour0"]] * spec[:, _SLICES["colour1"]]).sum(1)
    rest = foreground - first - second * (1 - same)[:, None, None, None]
    b, _, h, w = images.shape
    ys, xs = torch.meshgrid(
        torch.linspace(-1, 1, h, device=images.device, dtype=images.dtype),
        torch.linspace(-1, 1, w, device=images.device, dtype=images.dtype),
        indexing="ij",
    )
    coords = torch.stack([xs, ys])[None].expand(b, -1, -1, -1)
    return torch.cat([images, foreground, members, first, second, rest, coords], 1)


class _Block(nn.Module):
    """Two 3x3 convolutions; the prompt scales and shifts the second (FiLM)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.norm = nn.GroupNorm(8, cout)
        self.film = nn.Linear(SPEC_DIM, 2 * cout)

    def forward(self, h: torch.Tensor, spec: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.conv1(h))
        scale, shift = self.film(spec)[:, :, None, None].chunk(2, 1)
        return F.gelu(self.norm(self.conv2(h)) * (1 + scale) + shift)


class ToyRewardModel(nn.Module, PyTorchModelHubMixin):
    """Predicted exact soft score in [0, 1] of images `[B, 3, 32, 32]` in [0, 1]."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            [
                _Block(FEATURE_CHANNELS, width, 1),
                _Block(width, 2 * width, 2),
                _Block(2 * width, 2 * width, 2),
                _Block(2 * width, 2 * width, 1),
            ]
        )
        self.head = nn.Sequential(
            nn.Linear(4 * width + SPEC_DIM, 128), nn.GELU(), nn.Linear(128, 1)
        )

    def forward(self, images: torch.Tensor, spec: torch.Tensor) -> torch.Tensor:
        h = features(images, spec)
        for block in self.blocks:
            h = block(h, spec)
        pooled = torch.cat([h.mean((2, 3)), h.amax((2, 3)), spec], 1)
        return torch.sigmoid(self.head(pooled).squeeze(1))

    def score(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """`forward` with the prompts parsed; differentiable in `images`."""
        if images.ndim != 4 or images.shape[0] != len(prompts):
            raise GoldenNoiseError(
                f"expected images [B, 3, H, W] and one prompt per image; got "
                f"{tuple(images.shape)} and {len(prompts)} prompts"
            )
        spec = torch.stack([spec_vector(p) for p in prompts]).to(images)
        return self(images, spec)


@cache
def load_reward_model() -> ToyRewardModel:
    """The shipped reward model (frozen, eval mode)."""
    if not (REWARD_MODEL_DIR / "config.json").is_file():
        raise GoldenNoiseError(
            f"expected the toy reward model in {REWARD_MODEL_DIR}, found none; fit one with "
            "`golden-noise toy-reward --out DIR` and copy DIR/reward_model there"
        )
    model = ToyRewardModel.from_pretrained(REWARD_MODEL_DIR).eval()
    model.requires_grad_(False)
    return model


def reward(images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
    """The shipped reward model's score `[B]`: the `Reward` signature of `scorers.rewards`."""
    model = load_reward_model().to(images.device)
    return model.score(images.float(), prompts)
