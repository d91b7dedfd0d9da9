"""A residual branch that draws a prompt-dependent offset of the noise: where the prompt
wants what, the same for every seed.

Measured on the toy world (docs/prompt-offsets.md): one learned offset per prompt,
added to fresh noise and rescaled to the noise's norm, raised the exact soft score by +0.045
to +0.062 (two runs, p 0.015 and 3e-5) on unseen seeds, while nets that read the noise
itself (the released branch, the UNet) learned only a temperature change. The offset is
what the sampler turns into layout, counts and sides; a net that must also read the noise
has to learn it through far noisier gradients.

Two readings of the prompt (`reading`). "positions": every latent position has a learned
query that cross-attends to the prompt's per-token embedding (`torch.nn.TransformerDecoder`:
self-attention among positions lets objects avoid each other); a linear head, zero at the
start, gives each position's channels. "tokens": the prompt's tokens attend to each other
(`torch.nn.TransformerEncoder`, so a word learns its role from the words after it) and each
token's head gives a whole offset; the offset is their sum. A sum over words is the form of
an offset composed from parts (`toy.offset_parts`: one offset per object in its role), so a
new composition of known words gets the sum of their offsets; attention's softmax over
tokens has no such form (toy: 0.88 of the composed table's offsets on the validation
compositions against 0.78, docs/prompt-offsets.md). NPNet adds the branch's output to the
noise.

With `modes` K > 1 the head gives K offsets per prompt and each noise takes the one it
already leans toward most (`route`: the largest cosine). One offset moves every seed of a
prompt toward one picture, so a large offset buys its gain with the prompt's variety; K
offsets keep K layouts and move each seed the least. On the toy world, 4 modes
fitted on 16 validation prompts gave +0.082 soft at 1.06x standard's diversity where one
offset of the same size gave +0.060 at 0.90x (docs/prompt-offsets.md).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.npnet.branch import prompt_per_sample

# Sized for small latents; `backbone_kwargs` override any of these.
DEFAULT_OFFSET: dict[str, Any] = {
    "width": 64, "layers": 2, "heads": 4, "modes": 1, "reading": "positions"
}  # fmt: skip
READINGS = ("positions", "tokens")


def leaning(x: torch.Tensor, modes: torch.Tensor) -> torch.Tensor:
    """For each noise `x` `[B, C, H, W]`, the index of the offset of `modes` `[B, K, C, H, W]`
    with the largest cosine to it (the first where all are zero), `[B]`."""
    flat = modes.flatten(2)
    unit = flat / flat.norm(dim=2, keepdim=True).clamp_min(1e-12)
    return torch.einsum("bkd,bd->bk", unit, x.flatten(1).to(unit.dtype)).argmax(dim=1)


def route(x: torch.Tensor, modes: torch.Tensor) -> torch.Tensor:
    """Each noise's offset, `[B, C, H, W]`: the one of `modes` it leans toward most."""
    return modes[torch.arange(len(modes), device=modes.device), leaning(x, modes)]


class PromptOffsetBranch(nn.Module):
    """The offsets read from the prompt (see the module), `[B, K, C, H, W]`, routed."""

    starts_at_zero = True

    def __init__(
        self, channels: int, height: int, width: int, text_dim: int, overrides: dict[str, Any]
    ) -> None:
        super().__init__()
        unknown = sorted(set(overrides) - set(DEFAULT_OFFSET))
        if unknown:
            raise GoldenNoiseError(
                f"the 'prompt-offset' branch takes backbone_kwargs {sorted(DEFAULT_OFFSET)}; "
                f"got unknown {unknown}"
            )
        kwargs = {**DEFAULT_OFFSET, **overrides}
        size, layers, heads = kwargs["width"], kwargs["layers"], kwargs["heads"]
        numbers = (size, layers, heads, kwargs["modes"])
        if not all(isinstance(v, int) and v > 0 for v in numbers) or size % heads:
            raise GoldenNoiseError(
                "the 'prompt-offset' branch needs positive integer width, layers, heads and "
                f"modes, with heads dividing width; got {kwargs}"
            )
        if kwargs["reading"] not in READINGS:
            raise GoldenNoiseError(
                f"the 'prompt-offset' branch reads the prompt by one of {list(READINGS)}; "
                f"got reading {kwargs['reading']!r}"
            )
        self.modes, self.reading = kwargs["modes"], kwargs["reading"]
        self.shape = (channels, height, width)
        if self.reading == "positions":  # queries drawn first, as before readings existed, so
            # a seeded net of this reading starts from the same weights as it always did
            self.queries = nn.Parameter(torch.randn(height * width, size) * 0.02)
            self.keys = nn.Linear(text_dim, size)
            layer = nn.TransformerDecoderLayer(size, heads, 2 * size, dropout=0.0, batch_first=True)
            self.decoder = nn.TransformerDecoder(layer, layers)
            self.head = nn.Linear(size, channels * self.modes)
        else:
            self.keys = nn.Linear(text_dim, size)
            layer = nn.TransformerEncoderLayer(size, heads, 2 * size, dropout=0.0, batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, layers)
            self.head = nn.Linear(size, self.modes * channels * height * width)
        # Zero head: NPNet starts as the identity with beta = 1, and the head gets a gradient
        # at once (see UNetResidualBranch for why the released beta = 0 start cannot learn).
        # Several modes start as small different offsets instead: zero modes tie, every noise
        # routes to the first, the others learn the same mean, and whether training ever splits
        # them then hangs on float rounding (two CPUs: 4.5% and 41% of the identity's error).
        nn.init.zeros_(self.head.bias)
        if self.modes == 1:
            nn.init.zeros_(self.head.weight)
        else:
            nn.init.normal_(self.head.weight, std=1e-3)
        self.text_dim = text_dim

    def forward(self, x: torch.Tensor, prompt_embeds: torch.Tensor | None) -> torch.Tensor:
        """`x` float32 `[B, C, H, W]` (read only to choose among several modes),
        `prompt_embeds` `[B or 1, L, D]` (None: no prompt, a learned prompt-free offset)."""
        return route(x, self.offsets(x, prompt_embeds))

    def offsets(self, x: torch.Tensor, prompt_embeds: torch.Tensor | None) -> torch.Tensor:
        """Every mode's offset, `[B, K, C, H, W]` (`x`: its batch size and device only)."""
        batch = x.shape[0]
        tokens = self.keys(prompt_per_sample(prompt_embeds, x, self.text_dim))
        if self.reading == "tokens":
            summed = self.head(self.encoder(tokens)).sum(dim=1)
            return summed.reshape(batch, self.modes, *self.shape)
        hidden = self.decoder(self.queries.expand(batch, -1, -1), tokens)
        return self.head(hidden).transpose(1, 2).reshape(batch, self.modes, *self.shape)
