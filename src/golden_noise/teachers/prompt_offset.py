"""A teacher whose target depends on the prompt only: fitted offsets per prompt.

On the toy world (docs/prompt-offsets.md) golden noise is mostly a prompt-specific shift: one
offset `mu_p` per prompt, used as `x_T' = (x_T + mu_p) |x_T| / |x_T + mu_p|` (the norm kept,
so no part of the gain is a temperature change), carries a real gain to unseen seeds, and a
prompt-offset NPNet can learn it by plain MSE because every row of a prompt has the same
offset: nothing random for the regression to average away.

`mu_p` is fitted by Adam on a differentiable reward of the pipeline's own images (as ReNO
does for one noise, arXiv 2406.04312), averaged over `noises` fresh noises per step so that
it serves any noise, with `stay_close_penalty` as a trust region. Each prompt's fit is its
own: its noises come from a generator fixed by (step, the prompt's text) and its loss term
does not see other prompts, so the offset is a function of the prompt text, whatever index,
batch or process it lands in (up to float round-off), and a resumed run refits the same one.
`fit_seed` draws other fit noises: a second fit of the same prompts, which the
composed-offset teacher averages with the first (one more doubling of the fits it rests on).
Offsets are kept per process, so a prompt's further seeds cost only their scoring.

`modes` K > 1 fits K offsets per prompt, each noise shifted by the one it leans toward most
(`npnet.offset_branch.route`, also during the fit, so each offset serves the noises routed to
it): one offset moves every seed toward one picture and pays for a large gain with the
prompt's variety; K keep K layouts (toy: +0.082 soft at 1.06x standard's
diversity for 4 modes against +0.060 at 0.90x for one of the same size; docs/prompt-offsets.md).
They start as small random directions drawn from the prompt's text, so that the noises split
between them.

`init` (a prompt-offset NPNet with as many modes) starts each prompt's fit at that net's
offsets for it instead of zero: fitted from zero, a prompt gets one of the many layouts that
serve it; started from a net's prediction, it gets the one nearest what the net already maps
it to. Rounds of fit-from-prediction, then training, made the toy's best net so far
(docs/prompt-offsets.md).

A batch's new prompts are fitted together, their gradients summed chunk by chunk: each chunk
holds whole prompts and at most the sampler's batch of images (`collect
--generation-batch-size`), so memory stays bounded however many prompts a batch brings.
`fit_steps` runs the fit through a coarser sampler than the one that scores the rows: the
fit's cost is iters x noises x fit_steps denoiser passes (x 3 for the backward) a prompt.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import torch

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.core.latent_norms import latent_norms, stay_close_penalty, with_norms
from golden_noise.core.seeds import keyed_generator
from golden_noise.core.weights import weights_digest
from golden_noise.npnet import NPNet
from golden_noise.npnet.offset_branch import route
from golden_noise.scorers.rewards import load_reward
from golden_noise.teachers.base import Rows, Taught, Teacher, score_source_and_target
from golden_noise.teachers.local_search import candidate_noise
from golden_noise.teachers.sampler import CollectionSampler, take_rows


def text_key(prompt: str) -> int:
    """A stable integer for a prompt's text (the same in every process and run)."""
    return zlib.crc32(prompt.encode("utf-8"))


class PromptOffsetTeacher(Teacher):
    """x_T' = x_T shifted by its prompt's fitted offset (of `modes`, the one it leans toward),
    at x_T's norm."""

    name = "prompt-offset"

    def __init__(
        self,
        reward: str = "toy-reward-model",
        iters: int = 60,
        noises: int = 4,
        lr: float = 0.05,
        stay_close: float = 0.3,
        init: str | None = None,
        modes: int = 1,
        fit_steps: int | None = None,
        fit_seed: int = 0,
    ) -> None:
        counts = [("iters", iters), ("noises", noises), ("modes", modes)]
        if fit_steps is not None:
            counts.append(("fit_steps", fit_steps))
        for label, value in counts:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise GoldenNoiseError(
                    f"prompt-offset {label} must be an integer >= 1; got {value!r}"
                )
        if isinstance(fit_seed, bool) or not isinstance(fit_seed, int) or fit_seed < 0:
            raise GoldenNoiseError(
                f"prompt-offset fit_seed must be an integer >= 0; got {fit_seed!r}"
            )
        if not math.isfinite(lr) or lr <= 0:
            raise GoldenNoiseError(f"prompt-offset lr must be a positive number; got {lr}")
        if not math.isfinite(stay_close) or stay_close < 0:
            raise GoldenNoiseError(f"prompt-offset stay_close must be >= 0; got {stay_close}")
        self.reward = load_reward(reward)
        self.reward_name = reward
        self.iters = iters
        self.noises = noises
        self.lr = lr
        self.stay_close = stay_close
        self.init = init
        self.modes = modes
        self.fit_steps = fit_steps
        self.fit_seed = fit_seed
        self._init_net = None if init is None else _offset_net(init)
        self._offsets: dict[str, torch.Tensor] = {}

    def options(self) -> dict[str, Any]:
        options = {
            "reward": self.reward_name,
            "iters": self.iters,
            "noises": self.noises,
            "lr": self.lr,
            "stay_close": self.stay_close,
        }
        # only when set: datasets made before these options existed still resume
        if self.modes != 1:
            options["modes"] = self.modes
        if self.fit_steps is not None:
            options["fit_steps"] = self.fit_steps
        if self.fit_seed:
            options["fit_seed"] = self.fit_seed
        if self._init_net is None:
            return options
        # the digest too: a net retrained in place would resume the dataset from other offsets
        return {**options, "init": self.init, "init_sha256": weights_digest(self._init_net)}

    def offsets(self, rows: Rows, sampler: CollectionSampler) -> torch.Tensor:
        """Each row's prompt offsets `[B, K, ...]` (float32, CPU), fitting prompts not seen
        yet."""
        first_rows: dict[str, int] = {}
        for row, prompt in enumerate(rows.prompts):
            if prompt not in self._offsets:
                first_rows.setdefault(prompt, row)
        if first_rows:
            fitted = self._fit(rows, list(first_rows.values()), sampler)
            self._offsets.update(zip(first_rows, fitted, strict=True))
        return torch.stack([self._offsets[prompt] for prompt in rows.prompts])

    def _fit(self, rows: Rows, first_rows: list[int], sampler: CollectionSampler) -> torch.Tensor:
        k, device = self.noises, rows.source.device
        shape = rows.source.shape[1:]
        fit_rows = torch.tensor(first_rows).repeat_interleave(k)
        call_kwargs = {  # detached: only the offsets learn, whatever made the embeddings
            key: value.detach() if isinstance(value, torch.Tensor) else value
            for key, value in take_rows(rows.call_kwargs, fit_rows.to(device)).items()
        }
        prompts = [rows.prompts[i] for i in fit_rows.tolist()]
        seeds = [rows.seeds[i] for i in fit_rows.tolist()]
        offsets = self._start([rows.prompts[i] for i in first_rows], sampler, shape)
        offsets = offsets.to(device).requires_grad_(True)
        optimizer = torch.optim.Adam([offsets], lr=self.lr)
        # Whole prompts per chunk, at most the sampler's batch of images: the graph through
        # the sampler is held for one chunk at a time, and the summed gradient is the same.
        per_chunk = max(1, sampler.batch_size // k)
        seed_key = self._seed_key()
        for step in range(self.iters):
            rows.status(f"fitting {len(first_rows)} prompt offsets, step {step + 1}/{self.iters}")
            x = torch.cat(
                [candidate_noise(rows.source[0], step, text_key(prompts[i * k]), k, *seed_key)
                 for i in range(len(first_rows))]
            ).to(device)  # fmt: skip
            optimizer.zero_grad()
            for first in range(0, len(first_rows), per_chunk):
                part = slice(first * k, (first + per_chunk) * k)
                with torch.enable_grad():  # collection runs under no_grad
                    mine = offsets[first : first + per_chunk].repeat_interleave(k, dim=0)
                    shift = route(x[part], mine)
                    golden = with_norms(x[part] + shift, latent_norms(x[part]))
                    images = sampler.differentiable_images(
                        golden, take_rows(call_kwargs, part), seeds[part], self.fit_steps
                    )
                    per_noise = -self.reward(images.float(), prompts[part]).float()
                    per_noise = per_noise + self.stay_close * stay_close_penalty(golden, x[part])
                    per_noise.view(-1, k).mean(dim=1).sum().backward()  # each prompt its own
            optimizer.step()
        return offsets.detach().cpu()

    def _seed_key(self) -> tuple[int, ...]:
        """The fit seed's part of every draw's key: none at seed 0, so fits of seed 0 keep
        the draws of datasets made before the option."""
        return (self.fit_seed,) if self.fit_seed else ()

    def _start_generator(self, prompt: str) -> torch.Generator:
        """The generator of a prompt's modes' start directions (its text alone at seed 0, as
        before the option)."""
        if not self.fit_seed:
            return torch.Generator().manual_seed(text_key(prompt))
        return keyed_generator(text_key(prompt), *self._seed_key())

    def _start(
        self, prompts: list[str], sampler: CollectionSampler, shape: torch.Size
    ) -> torch.Tensor:
        """Where each prompt's fit begins: zero (one mode), small random directions keyed by
        the prompt's text (several), or the `init` net's offsets for it."""
        if self._init_net is None and self.modes == 1:
            return torch.zeros(len(prompts), 1, *shape)
        if self._init_net is None:
            draws = [
                torch.randn((self.modes, *shape), generator=self._start_generator(p))
                for p in prompts
            ]
            return with_norms(torch.stack(draws).flatten(0, 1), 1.0).view(-1, self.modes, *shape)
        net = self._init_net.to(sampler.adapter.device)
        made_for = (net.config.channels, net.config.height, net.config.width)
        if tuple(shape) != made_for:
            raise GoldenNoiseError(
                f"prompt-offset init {self.init} was made for latents {list(made_for)}; "
                f"this pipeline's are {list(shape)}"
            )
        if net.residual.modes != self.modes:
            raise GoldenNoiseError(
                f"prompt-offset init {self.init} offers {net.residual.modes} offset mode(s) "
                f"per prompt; this teacher fits {self.modes}"
            )
        with torch.no_grad():
            return net.prompt_offsets(sampler.adapter.encode_prompt(prompts).tokens).float()

    def teach(self, rows: Rows, sampler: CollectionSampler) -> Taught:
        source = rows.source.float()
        shifted = source + route(source, self.offsets(rows, sampler).to(source.device))
        return score_source_and_target(rows, with_norms(shifted, latent_norms(source)), sampler)

    def model_calls_per_row(self, sampler: CollectionSampler) -> int:
        # a prompt's first row: its fit (forward + backward ~ 3 forward passes per noise, step
        # and sampler step); every row: scoring source and target
        settings = sampler.settings
        per_step = settings.model_calls_per_image() // settings.steps  # 2 with guidance
        fit = 3 * self.iters * self.noises * (self.fit_steps or settings.steps) * per_step
        return fit + 2 * settings.model_calls_per_image()


def _offset_net(path: str) -> NPNet:
    """The NPNet at `path`, which must be a prompt-offset net."""
    net = NPNet.from_pretrained(path)
    net.check_prompt_offset_net()
    return net
