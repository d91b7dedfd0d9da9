"""Measurements on the toy world: does a *learned* NPNet beat the norm-matched control?

The research harness behind docs/learned-gain.md and docs/prompt-offsets.md, kept as
it ran. Datasets come from `golden-noise collect` (commands in the README); this script trains
NPNets on them and evaluates standard / golden / norm-matched images on the toy's validation
split (tuning) or on the demo's held-out pairs (reported once):

    python benchmarks/learned_gain.py train-mse DATASET OUT --arch unet --epochs 3 --lr 1e-3
    python benchmarks/learned_gain.py train-reward OUT --iters 150 --penalty 0.1 --lr 1e-3
    python benchmarks/learned_gain.py train-informed OUT --iters 200 --lr 3e-4
    python benchmarks/learned_gain.py train-modulator DATASET --init denoiser --epochs 8
    python benchmarks/learned_gain.py prompt-offsets --per-type 4 --iters 60 --threads 2
    python benchmarks/learned_gain.py prompt-offsets --split train --counts 18,16,14,16 \
        --seeds 0 --save offsets.pt --threads 2
    python benchmarks/learned_gain.py distill offsets.pt OUT
    python benchmarks/learned_gain.py prompt-offsets --split train --counts 0,28,10,36 \
        --seeds 0 --iters 30 --lr 0.03 --exclude offsets.pt --init OUT --save more.pt
    python benchmarks/learned_gain.py distill offsets.pt more.pt OUT2 --init OUT --steps 600
    python benchmarks/learned_gain.py prompt-offsets --prompts P.txt --modes 4 --k 8 --lr 0.1 \
        --stay-close 0.03 --seeds 0 --save modes.pt
    python benchmarks/learned_gain.py partition-modes offsets.pt
    python benchmarks/learned_gain.py direct A.pt --minutes 6.5 --widths 32,64 --no-harm 1
    python benchmarks/learned_gain.py dataset-offsets DATASET offsets.pt
    python benchmarks/learned_gain.py compose-offsets offsets.pt composed.pt --ridge 1
    python benchmarks/learned_gain.py table-r2 composed.pt NET [NET ...]
    python benchmarks/learned_gain.py shared-offset OUT --iters 40 --save-at 10,20,40
    python benchmarks/learned_gain.py shared-offset OUT --linear --lr-w 5e-5 --save-at 20
    python benchmarks/learned_gain.py evaluate NET NAME --split validation --per-type 32
    python benchmarks/learned_gain.py evaluate NET NAME --split heldout --n 1024
    python benchmarks/learned_gain.py evaluate NET NAME --per-type 256 --against SHIPPED_NET

`train-mse` regresses the teacher's targets (`target_scale` 1: the stored x_T') with AdamW and
keeps the last epoch; it prints validation MSE beside the identity and mean-residual baselines.
`train-reward` is the direct reward objective (the Noise Hypernetworks idea, arXiv 2508.09968):
NPNet's output is sampled through a differentiable 10-step DDIM loop of the toy pipeline and
the toy's differentiable surrogate (`golden_noise.toy.surrogate`) is maximised, with penalties
on the output/input norm ratio and on the size of the move.
`direct` is the same loss as `golden-noise train --objective reward` at GPU scale (fresh train
prompts and noise every step, checkpoints at fractions of a wall-clock budget in one file;
`evaluate A.pt@STEP` takes one). `dataset-offsets` recovers the offsets of a `collect --teacher
prompt-offset` dataset from its rows for `distill`. `table-r2` says how much of a
`compose-offsets` table's offsets each prompt-offset net gives, on the train prompts and on the
validation compositions (`distill --batch-size 32 --backbone-kwargs ...` trains the larger
nets by minibatches).
`train-informed` is a research probe beyond NPNet: a residual UNet that also reads the
pipeline's first guided noise prediction for x (one extra denoiser call, "what image will this
noise become"), trained on the shipped toy reward model with the no-harm hinge of
`golden-noise train --objective reward`; `evaluate` takes its folder too.
`train-modulator` regresses a dataset's targets (e.g. `collect --teacher reward-gradient`) with
a modulator started from a trainable copy of the toy denoiser and prints whether held-back
prompts' moves are predicted (MSE beside the identity, cosine of predicted and target move).
`prompt-offsets` asks what a learned net could at best carry without reading the noise: one
offset per validation prompt, `g = (x + mu_p) * |x| / |x + mu_p|` (the norm kept, so no
temperature), ascended on the shipped toy reward model over fresh noises, then scored exactly
on unseen seeds beside its controls: the offsets' shared mean, another prompt's offset, and
each offset minus the mean. `distill` fits a prompt-offset NPNet (`--residual-kind
prompt-offset --keep-norm`, no SVD, no text injection) to such offsets by regression, so
`evaluate` can ask whether the offsets of fitted prompts carry over to other prompts.
`--modes K` fits K offsets per prompt, each noise shifted by the one it leans toward most
(`golden_noise.npnet.offset_branch.route`, as the library's teacher and net do), and `distill`
then pairs predicted with fitted modes in whichever order fits best (`matched_mse`).
`partition-modes` routes 4 modes by a fixed partition of noise space instead (two principal
directions of fitted offsets), the same for every prompt.
`--exclude` skips prompts already fitted and `--init` starts each new prompt's offset at a
net's prediction (rounds of fit-then-distill: the new offsets stay consistent with the map
learned so far instead of picking an arbitrary layout); `distill --init` continues a net on
all offsets files given. The library's form of the fit is `golden-noise collect --teacher
prompt-offset` (`golden_noise.teachers.prompt_offset`: the same loss, its noise draws keyed
by the prompt's text); this script keeps the loop that produced the numbers in
benchmarks/README.md.
`shared-offset` is the control every prompt-offset net must beat: one offset for every
prompt, ascended the same way across the train split's prompts (fresh prompts, types in turn,
and fresh noises every step), or with `--linear` that offset plus a linear map of the prompt's
per-token embeddings (an amortised offset net with nothing to overfit but a matrix); it saves
`OUT_{ITER}.pt` files ({b, W}) that `evaluate` takes as nets.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from diffusers import DDIMScheduler, UNet2DConditionModel
from safetensors.torch import load_file, save_file

from golden_noise.core.latent_norms import latent_norms, stay_close_penalty, with_norms
from golden_noise.dataset.reader import NoisePromptDataset, load_splits
from golden_noise.demo.config import TOY_NPNET
from golden_noise.evaluation.diversity import compare_diversity, diversity_by_prompt
from golden_noise.evaluation.stats import paired_stats
from golden_noise.npnet import NPNet, NPNetConfig
from golden_noise.npnet.offset_branch import leaning, route
from golden_noise.toy import load_pipeline
from golden_noise.toy.grammar import parse, prompts_of, sample_prompts
from golden_noise.toy.offset_parts import (
    OBJECTS,
    ROLES,
    OffsetParts,
    fit_offset_parts,
    offsets_of_rows,
)
from golden_noise.toy.reward_model import load_reward_model, spec_vector
from golden_noise.toy.reward_model import reward as reward_model
from golden_noise.toy.scorer import score
from golden_noise.toy.surrogate import reward
from golden_noise.train.objectives import reward_loss

SVD = ("svd_hidden", "svd_mlp_hidden", "svd_heads")
TOY_SHAPES = dict(
    channels=4, height=8, width=8, text_tokens=16, text_dim=64, family="sd",
    **{k: TOY_NPNET[k] for k in SVD},
)  # fmt: skip
ARCHS = {
    "timm": {k: v for k, v in TOY_NPNET.items() if k not in SVD},  # the demo's toy NPNet
    "unet": dict(
        residual_kind="unet",
        backbone_kwargs=dict(block_out_channels=[32, 64], norm_num_groups=16, attention_head_dim=8),
    ),
}
TYPES = ("single", "pair", "counting", "position")
STEPS, GUIDANCE = 20, 2.0  # the toy's default sampler (evaluation)


def soft_and_correct(images: np.ndarray, prompts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Exact toy (soft, correct) of uint8 images, as float arrays."""
    result = score(images, prompts)
    return result.soft.numpy(), result.correct.numpy().astype(float)


class Toy:
    """The shipped toy pipeline with a DDIM sampler, prompt embeddings cached."""

    def __init__(self, device: str = "cpu") -> None:
        self.device = torch.device(device)
        self.pipe = load_pipeline(self.device)
        self.pipe.set_progress_bar_config(disable=True)
        self.pipe.scheduler = DDIMScheduler.from_config(self.pipe.scheduler.config)
        self.ddim = DDIMScheduler.from_config(self.pipe.scheduler.config)
        self._embeds: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for p in list(self.pipe.unet.parameters()) + list(self.pipe.vae.parameters()):
            p.requires_grad_(False)

    def embed(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        for p in prompts:
            if p not in self._embeds:
                with torch.no_grad():
                    cond, uncond = self.pipe.encode_prompt(p, self.device, 1, True)
                self._embeds[p] = (cond[0], uncond[0])
        pairs = [self._embeds[p] for p in prompts]
        return torch.stack([c for c, _ in pairs]), torch.stack([u for _, u in pairs])

    def scores(self, latents: torch.Tensor, prompts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Exact toy (soft, correct) of the images the pipeline makes from `latents`."""
        return soft_and_correct(self.render(latents, prompts), prompts)

    @torch.no_grad()
    def render(self, latents: torch.Tensor, prompts: list[str]) -> np.ndarray:
        """The pipeline's uint8 images `[B, 32, 32, 3]` from `latents`."""
        images = []
        for start in range(0, len(prompts), 256):
            cond, uncond = self.embed(prompts[start : start + 256])
            out = self.pipe(
                prompt_embeds=cond, negative_prompt_embeds=uncond,
                latents=latents[start : start + 256], num_inference_steps=STEPS,
                guidance_scale=GUIDANCE, output_type="np",
            ).images  # fmt: skip
            images.append((np.clip(out, 0, 1) * 255).round().astype(np.uint8))
        return np.concatenate(images)

    def guided_eps(
        self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor
    ) -> torch.Tensor:
        """The toy UNet's classifier-free-guided noise prediction at timestep `t`."""
        eps = self.pipe.unet(
            torch.cat([x, x]), t, encoder_hidden_states=torch.cat([uncond, cond])
        ).sample
        eps_uncond, eps_cond = eps.chunk(2)
        return eps_uncond + GUIDANCE * (eps_cond - eps_uncond)

    def differentiable_images(
        self, x: torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor, steps: int
    ) -> torch.Tensor:
        """DDIM with CFG written out, so the surrogate's gradient reaches the noise."""
        self.ddim.set_timesteps(steps)
        for t in self.ddim.timesteps:
            x = self.ddim.step(self.guided_eps(x, t, cond, uncond), t, x, eta=0.0).prev_sample
        images = self.pipe.vae.decode(x / self.pipe.vae.config.scaling_factor).sample
        return (images / 2 + 0.5).clamp(0, 1)


def seed_noise(seeds: list[int]) -> torch.Tensor:
    """The toy pipeline's own draw for each seed (CPU generator, [4, 8, 8])."""
    return torch.stack(
        [torch.randn((4, 8, 8), generator=torch.Generator().manual_seed(s)) for s in seeds]
    )


def samples(split: str, per_type: int, n: int) -> list[tuple[str, int, str]]:
    """(prompt, seed, type): validation = `per_type` random prompts of each type, seeds from
    1,000,000; heldout = the demo's held-out pairs (sample_prompts(1024, 2), seeds 2,000,000+i)."""
    if split == "heldout":
        prompts = sample_prompts(1024, 2, "heldout")[:n]
        return [(p, 2_000_000 + i, parse(p).prompt_type) for i, p in enumerate(prompts)]
    rng, out = np.random.default_rng(0), []
    for kind in TYPES:
        pool = list(prompts_of("validation", kind))
        for _ in range(per_type):
            out.append((pool[rng.integers(len(pool))], 1_000_000 + len(out), kind))
    return out


def rows(dataset) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    source, target, embeds = zip(*(dataset[i] for i in range(len(dataset))), strict=True)
    return torch.stack(source), torch.stack(target), torch.stack(embeds)


def mse_epoch(net, opt, s: torch.Tensor, t: torch.Tensor, e: torch.Tensor, batch: int) -> float:
    """One epoch of MSE regression of `net(s, e)` onto `t` in shuffled batches; the mean loss."""
    order, total = torch.randperm(len(s)), 0.0
    for b in range(0, len(s), batch):
        j = order[b : b + batch]
        loss = ((net(s[j], e[j]) - t[j]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item() * len(j)
    return total / len(s)


def train_mse(args: argparse.Namespace) -> None:
    train, val = load_splits(args.dataset, val_fraction=0.1, margin=None)
    (s, t, e), (vs, vt, ve) = rows(train), rows(val)
    if args.limit:
        s, t, e = s[: args.limit], t[: args.limit], e[: args.limit]
    torch.manual_seed(0)
    net = NPNet(NPNetConfig(**{**TOY_SHAPES, **ARCHS[args.arch]})).train()
    opt = torch.optim.AdamW(net.parameters(), args.lr, weight_decay=0.01)
    identity = ((vt - vs) ** 2).mean().item()
    mean_residual = ((vt - vs - (t - s).mean(0)) ** 2).mean().item()
    for epoch in range(args.epochs):
        start, train_mse = time.time(), mse_epoch(net, opt, s, t, e, 64)
        with torch.no_grad():
            net.eval()
            val_mse = ((net(vs, ve) - vt) ** 2).mean().item()
            net.train()
        print(f"epoch {epoch} train {train_mse:.4f} val {val_mse:.4f} (identity "
              f"{identity:.4f}, mean-residual {mean_residual:.4f}) {time.time() - start:.0f}s "
              f"rows {len(s)}", flush=True)  # fmt: skip
    net.eval().save_pretrained(args.out)


def train_reward(args: argparse.Namespace) -> None:
    toy = Toy()
    torch.manual_seed(0)
    net = NPNet(NPNetConfig(**{**TOY_SHAPES, **ARCHS["unet"]})).train()
    with torch.no_grad():  # start at identity-plus-SVD with a live residual path
        net.beta.fill_(1.0)
        net.residual.unet.conv_out.weight.zero_()
        net.residual.unet.conv_out.bias.zero_()
    opt = torch.optim.AdamW(net.parameters(), args.lr, weight_decay=0.01)
    prompts, batch, history = sample_prompts(20000, 7, "train"), 32, []
    for it in range(args.iters):
        ps = prompts[it * batch : (it + 1) * batch]
        x = seed_noise(list(range(5_000_000 + it * batch, 5_000_000 + (it + 1) * batch)))
        cond, uncond = toy.embed(ps)
        golden = net(x, cond)
        ratio = golden.flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)
        move = ((golden - x) ** 2).flatten(1).sum(1) / (x**2).flatten(1).sum(1)
        value = reward(toy.differentiable_images(golden, cond, uncond, args.steps), ps)
        loss = -value.mean() + args.penalty * (100 * ((ratio - 1) ** 2).mean() + move.mean())
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(value.mean().item())
        if it % 5 == 0:
            line = f"iter {it} surrogate {np.mean(history[-5:]):.3f} norm ratio {ratio.mean():.3f}"
            print(f"{line} relative move {move.mean().sqrt():.3f}", flush=True)
    net.eval().save_pretrained(args.out)


class DenoiserInformed(torch.nn.Module):
    """golden = x + UNet([x, eps(x)], prompt): eps is the pipeline's guided noise prediction
    at the first of the evaluation sampler's timesteps (no gradient); conv_out starts at zero,
    so the net starts as the identity."""

    FILE = "denoiser_informed.safetensors"

    def __init__(self, toy: Toy) -> None:
        super().__init__()
        self.toy = toy
        self.unet = UNet2DConditionModel(
            sample_size=8, in_channels=8, out_channels=4, block_out_channels=(32, 64),
            layers_per_block=1, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=64,
            attention_head_dim=8, norm_num_groups=16,
        )  # fmt: skip
        torch.nn.init.zeros_(self.unet.conv_out.weight)
        torch.nn.init.zeros_(self.unet.conv_out.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            self.toy.ddim.set_timesteps(STEPS)
            eps = self.toy.guided_eps(x, self.toy.ddim.timesteps[0], cond, uncond)
        return x + self.unet(torch.cat([x, eps], 1), 0, encoder_hidden_states=cond).sample


def direct(args: argparse.Namespace) -> None:
    """The direct reward objective at scale: fresh train prompts (all four types in turn) and
    fresh noise every step, the loss of `golden-noise train --objective reward` on the toy reward
    model, NPNet = x + UNet residual at the input's norm (no SVD, no text injection), starting
    at the identity. Checkpoints at the fractions of `--minutes` given go into one file."""
    device = torch.device(args.device)
    toy = Toy(args.device)
    model = load_reward_model().to(device)
    pool = sorted({p for kind in TYPES for p in prompts_of("train", kind)})
    toy.embed(pool)
    specs = {p: spec_vector(p).to(device) for p in pool}
    widths = [int(w) for w in args.widths.split(",")]
    config = NPNetConfig(**TOY_SHAPES, residual_kind="unet", keep_norm=True, use_svd=False,
                         use_text=False, backbone_kwargs=dict(block_out_channels=widths,
                         norm_num_groups=16, attention_head_dim=8))  # fmt: skip
    torch.manual_seed(args.seed)
    net = NPNet(config).to(device).train()
    with torch.no_grad():
        net.beta.fill_(1.0)
        net.residual.unet.conv_out.weight.zero_()
        net.residual.unet.conv_out.bias.zero_()
    opt = torch.optim.AdamW(net.parameters(), args.lr, weight_decay=0.0)
    generator = torch.Generator(device).manual_seed(args.seed)
    saves = sorted(float(f) * args.minutes * 60 for f in args.save_at.split(","))
    checkpoints, history, start, it = {}, [], time.time(), 0
    while saves:
        elapsed = time.time() - start
        if elapsed >= saves[0]:  # one checkpoint for every save time a slow step passed
            saves = [at for at in saves if at > elapsed]
            checkpoints[it] = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
            torch.save({"config": config.to_dict(), "checkpoints": checkpoints}, args.out)
            print(f"saved step {it} ({len(checkpoints)} checkpoints)", flush=True)
            continue
        ps = sample_prompts(args.batch, args.seed * 10_000_000 + it, "train")
        cond, uncond = toy.embed(ps)
        spec = torch.stack([specs[p] for p in ps])
        x = torch.randn((len(ps), 4, 8, 8), generator=generator, device=device)
        with torch.no_grad():
            own = model(toy.differentiable_images(x, cond, uncond, args.steps), spec)
        golden = net(x, cond)
        value = model(toy.differentiable_images(golden, cond, uncond, args.steps), spec)
        penalty = stay_close_penalty(golden, x)
        loss = reward_loss(value, penalty, own, args.stay_close, args.no_harm).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(torch.stack([(value - own).mean(), penalty.mean()]).detach())
        it += 1
        if it % args.log_every == 0:
            gain, pen = torch.stack(history[-args.log_every :]).mean(0).tolist()
            print(f"step {it} {time.time() - start:.0f}s reward gain {gain:+.4f} penalty "
                  f"{pen:.4f}", flush=True)  # fmt: skip


def train_informed(args: argparse.Namespace) -> None:
    toy = Toy()
    torch.manual_seed(0)
    net = DenoiserInformed(toy).train()
    opt = torch.optim.AdamW(net.unet.parameters(), args.lr, weight_decay=0.01)
    prompts, batch, history = sample_prompts(40000, 7, "train"), 32, []
    for it in range(args.iters):
        ps = prompts[it * batch : (it + 1) * batch]
        x = seed_noise(list(range(7_000_000 + it * batch, 7_000_000 + (it + 1) * batch)))
        cond, uncond = toy.embed(ps)
        golden = net(x, cond, uncond)
        value = reward_model(toy.differentiable_images(golden, cond, uncond, args.steps), ps)
        with torch.no_grad():
            own = reward_model(toy.differentiable_images(x, cond, uncond, args.steps), ps)
        # the loss of `golden-noise train --objective reward` (stay_close 0.3, no_harm 2)
        penalty = stay_close_penalty(golden, x)
        loss = reward_loss(value, penalty, own, 0.3, 2.0).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append((value - own).mean().item())
        if it % 5 == 0:
            print(f"iter {it} reward gain {np.mean(history[-5:]):+.4f} penalty "
                  f"{penalty.mean():.4f}", flush=True)  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    save_file(net.unet.state_dict(), args.out / DenoiserInformed.FILE)


class DenoiserModulator(torch.nn.Module):
    """golden = x + head([x, e]) at x's norm, e = a trainable copy of the toy UNet's
    conditional noise prediction at the evaluation sampler's first timestep: the modulator
    starts from the denoiser (the Noise Hypernetworks idea), so it starts knowing what image
    x becomes. head's last conv starts at zero, so the net starts as the identity; `random`
    re-initialises the copy (the same architecture without the denoiser's knowledge)."""

    def __init__(self, toy: Toy, init: str) -> None:
        super().__init__()
        self.unet = copy.deepcopy(toy.pipe.unet).requires_grad_(True)
        if init == "random":
            torch.manual_seed(0)
            for module in self.unet.modules():
                if module is not self.unet and hasattr(module, "reset_parameters"):
                    module.reset_parameters()
        toy.ddim.set_timesteps(STEPS)
        self.t0 = int(toy.ddim.timesteps[0])
        conv = torch.nn.Conv2d
        self.head = torch.nn.Sequential(
            conv(8, 64, 3, padding=1), torch.nn.SiLU(), conv(64, 4, 3, padding=1)
        )
        torch.nn.init.zeros_(self.head[2].weight)
        torch.nn.init.zeros_(self.head[2].bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        e = self.unet(x, self.t0, encoder_hidden_states=cond).sample
        return with_norms(x + self.head(torch.cat([x, e], 1)), latent_norms(x))


def train_modulator(args: argparse.Namespace) -> None:
    """Regress a dataset's targets with `DenoiserModulator`; print how much of the targets'
    move is shared by a prompt's seeds, then held-back prompts' MSE and move cosine per epoch."""
    train, val = load_splits(args.dataset, val_fraction=0.1, margin=None)
    (s, t, e), (vs, vt, ve) = rows(train), rows(val)
    move = torch.nn.functional.normalize((t - s).flatten(1), dim=1)
    prompt = train.table.columns["prompt_index"][train.rows]
    same = [
        move[a] @ move[b]
        for p in np.unique(prompt)
        for a, b in itertools.combinations(np.flatnonzero(prompt == p), 2)
    ]
    rng = np.random.default_rng(0)
    other = [move[a] @ move[b] for a, b in rng.integers(len(s), size=(5000, 2)) if a != b]
    print(f"cosine of two target moves: same prompt {np.mean(same):.3f} ({len(same)} pairs), "
          f"any two rows {np.mean(other):.3f}", flush=True)  # fmt: skip
    torch.manual_seed(0)
    net = DenoiserModulator(Toy(), args.init).train()
    opt = torch.optim.AdamW(
        [{"params": net.unet.parameters(), "lr": args.lr_unet},
         {"params": net.head.parameters(), "lr": args.lr}], weight_decay=0.0,
    )  # fmt: skip
    identity = ((vt - vs) ** 2).mean().item()
    for epoch in range(args.epochs):
        start, train_mse = time.time(), mse_epoch(net, opt, s, t, e, 32)
        with torch.no_grad():
            net.eval()
            golden = net(vs, ve)
            net.train()
        cos = torch.nn.functional.cosine_similarity((golden - vs).flatten(1), (vt - vs).flatten(1))
        print(f"epoch {epoch + 1} train {train_mse:.4f} val {((golden - vt) ** 2).mean():.4f} "
              f"(identity {identity:.4f}) move cosine {cos.mean():+.3f} "
              f"{time.time() - start:.0f}s", flush=True)  # fmt: skip


def keep_norm(x: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """`x + offset` rescaled per sample to `|x|`."""
    return with_norms(x + offset, latent_norms(x))


def drawn_prompts(split: str, counts: list[int], exclude: set[str]) -> tuple[list[str], list[str]]:
    """`counts[t]` prompts of each type `t` drawn from `split` (seed 5), none of `exclude`;
    the prompts and their types."""
    rng, prompts, kinds = np.random.default_rng(5), [], []
    for kind, count in zip(TYPES, counts, strict=True):
        pool = sorted(set(prompts_of(split, kind)) - exclude)
        count = min(count, len(pool))
        prompts += [pool[i] for i in rng.choice(len(pool), count, replace=False)]
        kinds += [kind] * count
    return prompts, kinds


def fit_prompt_offsets(
    toy: Toy,
    prompts: list[str],
    mu: torch.Tensor,
    args: argparse.Namespace,
    choose: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = leaning,
) -> torch.Tensor:
    """Each prompt's modes `mu` `[n, K, 4, 8, 8]`, ascended from their start by Adam on the toy
    reward model over `args.k` fresh noises a prompt and step (seeds 5,000,000 on), each noise
    shifted by the mode `choose(noises, their prompts' modes)` picks (`leaning`: the one it
    leans toward most), at the noise's norm, with `args.stay_close` as a trust region."""
    n, k, modes = len(prompts), args.k, mu.shape[1]
    cond, uncond = toy.embed(prompts)
    mu.requires_grad_(True)
    optimizer = torch.optim.Adam([mu], lr=args.lr)
    rows = torch.arange(n).repeat_interleave(k)
    texts = [prompts[i] for i in rows]
    start = time.time()
    for it in range(args.iters):
        x = seed_noise(list(range(5_000_000 + it * n * k, 5_000_000 + (it + 1) * n * k)))
        optimizer.zero_grad()
        rewards, chosen = [], []
        for c in range(0, len(rows), 64):  # gradients summed over chunks: bounded memory
            part = slice(c, c + 64)
            offsets = mu[rows[part]]
            picked = choose(x[part], offsets.detach())
            g = keep_norm(x[part], offsets[torch.arange(len(picked)), picked])
            images = toy.differentiable_images(g, cond[rows[part]], uncond[rows[part]], args.steps)
            r = reward_model(images, texts[part])
            penalty = stay_close_penalty(g, x[part])
            ((-r.sum() + args.stay_close * penalty.sum()) / len(rows)).backward()
            rewards.append(r.detach())
            chosen.append(picked)
        optimizer.step()
        if it % 5 == 0:
            size = mu.detach().flatten(2).norm(dim=2).mean()
            use = torch.bincount(torch.cat(chosen), minlength=modes).tolist()
            print(f"iter {it} reward {torch.cat(rewards).mean():.4f} |mu| {size:.2f} modes used "
                  f"{use} {time.time() - start:.0f}s", flush=True)  # fmt: skip
    return mu.detach()


def prompt_offsets(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    toy = Toy()
    counts = [int(c) for c in args.counts.split(",")] if args.counts else [args.per_type] * 4
    fitted = {p for path in args.exclude for p in load_offsets(path)["prompts"]}
    if args.prompts:  # a file, one prompt per line, instead of a draw from the split
        prompts = args.prompts.read_text(encoding="utf-8").splitlines()
        kinds = [parse(p).prompt_type for p in prompts]
    else:
        prompts, kinds = drawn_prompts(args.split, counts, fitted)
    n, modes = len(prompts), args.modes
    cond, _ = toy.embed(prompts)
    if args.init:
        with torch.no_grad():
            mu = NPNet.from_pretrained(args.init).prompt_offsets(cond)
    elif modes == 1:
        mu = torch.zeros(n, 1, 4, 8, 8)
    else:  # small random directions, so that the noises split between the modes
        torch.manual_seed(0)
        mu = torch.randn(1 if args.shared_start else n, modes, 4, 8, 8).expand(n, -1, -1, -1, -1)
        mu = mu / mu.flatten(2).norm(dim=2)[..., None, None, None]
    mu = fit_prompt_offsets(toy, prompts, mu, args)
    if args.save:
        torch.save({"prompts": prompts, "offsets": mu}, args.save)
    if not args.seeds:
        return
    rows = torch.arange(n).repeat_interleave(args.seeds)
    x = seed_noise(list(range(6_000_000, 6_000_000 + len(rows))))
    texts, kinds = [prompts[i] for i in rows], np.array(kinds)[rows.numpy()]
    standard = toy.scores(x, texts)
    mean = mu.mean(0, keepdim=True)
    arms = {
        "own offset": mu[rows],
        "shared mean": mean.expand(len(rows), -1, -1, -1, -1),
        "another prompt's": mu[torch.roll(torch.arange(n), 1)][rows],
        "own minus mean": (mu - mean)[rows],
    }
    size, mean_size = (m.flatten(2).norm(dim=2).mean() for m in (mu, mean))
    print(f"{n} prompts x {args.seeds} unseen seeds; |mu| {size:.2f}, |mean| {mean_size:.2f}")
    for name, offsets in arms.items():
        arm = toy.scores(keep_norm(x, route(x, offsets)), texts)
        for m, metric in enumerate(("soft", "correct")):
            stats = paired_stats(standard[m], arm[m])
            diff = arm[m] - standard[m]
            per = " ".join(f"{t}:{diff[kinds == t].mean():+.3f}" for t in TYPES)
            print(f"{name:17s} {metric:7s} {stats['mean_diff']:+.4f} [{stats['ci95_low']:+.4f}, "
                  f"{stats['ci95_high']:+.4f}] p {stats['wilcoxon_p']:.2g} | {per}")  # fmt: skip


def partition_modes(args: argparse.Namespace) -> None:
    """Modes routed by a fixed partition of noise space, the same for every prompt: the sign
    of the noise's projection on each of the two leading principal directions of `offsets`
    (fitted train offsets: the directions good offsets differ along most), so mode k would
    mean the same region of noise in every prompt. The 16 validation prompts of
    `prompt-offsets`, 4 modes fitted from zero, then the modes' agreement across prompts and
    32 unseen seeds per prompt scored beside the modes' mean (one offset)."""
    torch.set_num_threads(args.threads)
    fits = load_offsets(args.offsets)["offsets"][:, 0].flatten(1)
    directions = torch.linalg.svd(fits - fits.mean(0), full_matrices=False)[2][:2]

    def region(x: torch.Tensor) -> torch.Tensor:
        return ((x.flatten(1) @ directions.T > 0).long() * torch.tensor([1, 2])).sum(1)

    def routed(x: torch.Tensor, modes: torch.Tensor) -> torch.Tensor:
        return modes[torch.arange(len(x)), region(x)]

    toy = Toy()
    prompts, _ = drawn_prompts("validation", [4] * 4, set())  # `prompt-offsets --per-type 4`'s
    n = len(prompts)
    mu = fit_prompt_offsets(
        toy, prompts, torch.zeros(n, 4, 4, 8, 8), args, choose=lambda x, _: region(x)
    )
    mean = mu.mean(1)
    deviation = (mu - mean[:, None]).flatten(2)
    unit = deviation / deviation.norm(dim=2, keepdim=True)
    same = torch.einsum("pkd,qkd->pqk", unit, unit)[~torch.eye(n, dtype=torch.bool)]
    print(f"|mean| {mean.flatten(1).norm(dim=1).mean():.2f}, |mode - mean| "
          f"{deviation.norm(dim=2).mean():.2f}; same mode, two prompts: cosine "
          f"{same.mean():.3f}")  # fmt: skip
    rows = torch.arange(n).repeat_interleave(32)
    texts = [prompts[i] for i in rows]
    x = seed_noise(list(range(6_000_000, 6_000_000 + len(rows))))

    def measured(latents: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        images = toy.render(latents, texts)
        found = diversity_by_prompt(images / 255.0, texts)
        return *soft_and_correct(images, texts), np.array([found[q] for q in prompts])

    soft0, correct0, spread0 = measured(x)
    for name, offsets in (("modes", routed(x, mu[rows])), ("the modes' mean", mean[rows])):
        soft, correct, spread = measured(keep_norm(x, offsets))
        a, b = paired_stats(soft0, soft), paired_stats(correct0, correct)
        print(f"{name}: soft {a['mean_diff']:+.4f} [{a['ci95_low']:+.4f}, {a['ci95_high']:+.4f}] "
              f"p {a['wilcoxon_p']:.2g}; correct {b['mean_diff']:+.4f}; diversity "
              f"{(spread / spread0).mean():.3f}")  # fmt: skip


def shared_offset(args: argparse.Namespace) -> None:
    toy, rng = Toy(), np.random.default_rng(args.seed)
    by_type = {t: sorted(set(prompts_of("train", t))) for t in TYPES}
    b = torch.zeros(4 * 8 * 8, requires_grad=True)
    w = torch.zeros(16 * 64, 4 * 8 * 8, requires_grad=args.linear)
    table = torch.zeros(len(OBJECTS), len(ROLES), 4 * 8 * 8, requires_grad=args.factored)
    groups = [{"params": [b], "lr": args.lr}]
    groups += [{"params": [w], "lr": args.lr_w}] * args.linear
    groups += [{"params": [table], "lr": args.lr_t}] * args.factored
    optimizer = torch.optim.Adam(groups)
    save_at = {int(i) for i in args.save_at.split(",")}
    start = time.time()
    for it in range(1, args.iters + 1):
        pools = [by_type[TYPES[i % 4]] for i in range(args.prompts)]
        texts = [q for pool in pools for q in [pool[rng.integers(len(pool))]] * args.k]
        cond, uncond = toy.embed(texts)
        first = args.noise_base + it * len(texts)
        x = seed_noise(list(range(first, first + len(texts))))
        optimizer.zero_grad()
        rewards = []
        for c in range(0, len(texts), 64):  # gradients summed over chunks: bounded memory
            part = slice(c, c + 64)
            offsets = shared_offsets({"b": b, "W": w, "T": table}, cond[part], texts[part])
            g = keep_norm(x[part], offsets)
            images = toy.differentiable_images(g, cond[part], uncond[part], args.steps)
            r = reward_model(images, texts[part])
            penalty = stay_close_penalty(g, x[part])
            ((-r.sum() + args.stay_close * penalty.sum()) / len(texts)).backward()
            rewards.append(r.detach())
        optimizer.step()
        print(f"iter {it} reward {torch.cat(rewards).mean():.4f} |b| {b.detach().norm():.2f} "
              f"{time.time() - start:.0f}s", flush=True)  # fmt: skip
        if it in save_at:
            saved = {"b": b, "W": w, "T": table}
            torch.save({k: v.detach().clone() for k, v in saved.items()}, f"{args.out}_{it}.pt")


def shared_offsets(saved: dict, cond: torch.Tensor, texts: list[str]) -> torch.Tensor:
    """`b + W e(p) + sum of T[object, slot]` per prompt (e: the flattened per-token
    embeddings), as `[B, 4, 8, 8]`; files without `T` (no table) read it as zero."""
    offsets = (saved["b"] + cond.flatten(1) @ saved["W"]).view(-1, 4, 8, 8)
    if "T" in saved:  # the parts alone: `b` is already in
        table = saved["T"].view(len(OBJECTS), len(ROLES), 4, 8, 8)
        offsets = offsets + OffsetParts(torch.zeros(4, 8, 8), table).offsets(texts)
    return offsets


def compose_offsets(args: argparse.Namespace) -> None:
    """Distil fitted offsets into the object-and-role table of `shared-offset --factored`
    (`toy.offset_parts`, as the composed-offset teacher fits it) by ridge least squares
    instead of on the reward model; prints held-back prompts' offset error beside the mean's
    and none's."""
    saved = load_offsets(args.offsets)
    prompts, offsets = saved["prompts"], saved["offsets"][:, 0]
    distinct = list(dict.fromkeys(prompts))  # a prompt fitted twice is held back whole
    order = np.random.default_rng(0).permutation(len(distinct))
    unseen_texts = {distinct[i] for i in order[: len(distinct) // 10]}
    held = torch.tensor([p in unseen_texts for p in prompts])
    fitted_on = [p for p, h in zip(prompts, held.tolist(), strict=True) if not h]
    groups = args.groups.split(",")
    table = fit_offset_parts(fitted_on, offsets[~held], args.ridge, groups)
    unseen = [p for p, h in zip(prompts, held.tolist(), strict=True) if h]
    error = {
        "table": (table.offsets(unseen) - offsets[held]).square().mean(),
        "mean": (offsets[~held].mean(0) - offsets[held]).square().mean(),
        "none": offsets[held].square().mean(),
    }
    errors = ", ".join(f"{k} {v:.4f}" for k, v in error.items())
    print(f"{len(prompts)} offsets, ridge {args.ridge}, parts {args.groups}; MSE on "
          f"{int(held.sum())} held-back fits: {errors}")  # fmt: skip
    table = fit_offset_parts(prompts, offsets, args.ridge, groups)
    composed = table.offsets(prompts)
    explained = 1 - (offsets - composed).square().sum() / (offsets - offsets.mean(0)).square().sum()
    torch.save({"b": args.scale * table.shared.flatten(), "W": torch.zeros(16 * 64, 4 * 8 * 8),
                "T": args.scale * table.parts.flatten(2)}, args.out)  # fmt: skip
    if args.offsets_out:  # the table's own offsets for the same prompts, for `distill`
        torch.save({"prompts": prompts, "offsets": composed[:, None]}, args.offsets_out)
    print(f"fitted on all: the table explains {explained:.3f} of their variance about the mean; "
          f"|b| {table.shared.norm():.2f}")  # fmt: skip


def dataset_offsets(args: argparse.Namespace) -> None:
    """`collect --teacher prompt-offset` datasets' offsets, recovered from their rows
    (`toy.offset_parts.offsets_of_rows`) for `distill` and `compose-offsets`; several datasets
    (fits of the same prompts with other `--offset-fit-seed`s) give every fit, a prompt fitted
    twice listed twice. `--sample N` keeps N prompts drawn at random, `--counts` so many of
    each type (seed 0; one dataset)."""
    if len(args.dataset) > 1 and (args.sample or args.counts):
        raise SystemExit("--sample and --counts choose prompts of one dataset; got several")
    found = [offsets_of_rows(NoisePromptDataset(path)) for path in args.dataset]
    prompts = list(found[0])
    if args.sample:
        chosen = np.random.default_rng(0).choice(len(prompts), args.sample, replace=False)
        prompts = [prompts[i] for i in sorted(chosen)]
    if args.counts:
        rng, kept = np.random.default_rng(0), []
        for kind, count in zip(TYPES, args.counts.split(","), strict=True):
            pool = [p for p in prompts if parse(p).prompt_type == kind]
            kept += [pool[i] for i in sorted(rng.choice(len(pool), int(count), replace=False))]
        prompts = kept
    fits = [(p, found[0][p]) for p in prompts] + [fit for f in found[1:] for fit in f.items()]
    offsets = torch.stack([mu for _, mu in fits])[:, None]
    torch.save({"prompts": [p for p, _ in fits], "offsets": offsets}, args.out)
    print(f"{len(fits)} fits of {len({p for p, _ in fits})} prompts; mean |mu| "
          f"{offsets.flatten(2).norm(dim=2).mean():.2f}")  # fmt: skip


def load_offsets(path: Path) -> dict:
    """An offsets file of `prompt-offsets --save` as `{prompts, offsets [n, K, 4, 8, 8]}`
    (files from before modes hold `[n, 4, 8, 8]`: one mode)."""
    saved = torch.load(path)
    if saved["offsets"].dim() == 4:
        saved["offsets"] = saved["offsets"][:, None]
    return saved


def matched_mse(predicted: torch.Tensor, fitted: torch.Tensor) -> torch.Tensor:
    """Per prompt, the mean squared error of `[n, K, ...]` offsets under the pairing of
    predicted and fitted modes that fits best (modes have no order)."""
    k = predicted.shape[1]
    cost = (predicted.flatten(2)[:, :, None] - fitted.flatten(2)[:, None]).square().mean(3)
    pairings = torch.tensor(list(itertools.permutations(range(k))))
    return cost[:, torch.arange(k).expand_as(pairings), pairings].mean(2).min(1).values


def distill(args: argparse.Namespace) -> None:
    saved = [load_offsets(path) for path in args.offsets]
    prompts = [p for s in saved for p in s["prompts"]]
    offsets = torch.cat([s["offsets"] for s in saved])
    embeds, _ = Toy().embed(prompts)
    if args.init:
        net = NPNet.from_pretrained(args.init)
    else:
        modes = offsets.shape[1]
        sizing = {**({"modes": modes} if modes > 1 else {}), **json.loads(args.backbone_kwargs)}
        config = NPNetConfig(**TOY_SHAPES, residual_kind="prompt-offset", keep_norm=True,
                             use_svd=False, use_text=False, backbone_kwargs=sizing)  # fmt: skip
        torch.manual_seed(0)
        net = NPNet(config)
    optimizer = torch.optim.AdamW(net.residual.parameters(), args.lr, weight_decay=0.0)
    weights = torch.ones(len(prompts))
    if args.balance:  # each prompt type weighs the same in the loss, however many it has
        kinds = [parse(p).prompt_type for p in prompts]
        weights = torch.tensor([len(prompts) / (len(TYPES) * kinds.count(k)) for k in kinds])
    order, batches = torch.Generator().manual_seed(0), []
    for step in range(args.steps):
        if not batches:  # full batch, or the next minibatch of a fresh shuffle
            everyone = torch.randperm(len(prompts), generator=order)
            batches = list(everyone.split(args.batch_size or len(prompts)))
        rows = batches.pop()
        per_prompt = matched_mse(net.prompt_offsets(embeds[rows]), offsets[rows])
        loss = (weights[rows] * per_prompt).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 300 == 0:
            print(f"step {step} mse {loss.item():.5f} ({len(prompts)} prompts, offsets' "
                  f"variance {offsets.var():.5f})", flush=True)  # fmt: skip
    net.save_pretrained(args.out)


def table_r2(args: argparse.Namespace) -> None:
    """How much of a table's offsets each net gives, on the train prompts and on the
    validation compositions no net or table was fitted on: 1 - SSE / the offsets' sum of
    squares about the train offsets' mean."""
    toy, saved = Toy(), torch.load(args.table)
    splits = {s: [p for t in TYPES for p in prompts_of(s, t)] for s in ("train", "validation")}
    embeds = {s: toy.embed(prompts)[0] for s, prompts in splits.items()}
    wanted = {s: shared_offsets(saved, embeds[s], prompts) for s, prompts in splits.items()}
    mean = wanted["train"].mean(0)
    for path in args.nets:
        net = NPNet.from_pretrained(path).eval()
        shares = []
        for split in splits:
            with torch.no_grad():
                given = net.prompt_offsets(embeds[split])[:, 0]
            sse = (given - wanted[split]).square().sum()
            shares.append(f"{split} {1 - sse / (wanted[split] - mean).square().sum():.3f}")
        print(f"{path}: share of the table's offsets: {', '.join(shares)}")


def load_net(path: Path, toy: Toy):
    """An NPNet folder, a `train-informed` one (called as net(x, cond, uncond)), or `FILE@STEP`:
    a checkpoint of a `direct` run, or a `shared-offset` file (`.pt`)."""
    if path.suffix == ".pt":
        saved = torch.load(path)
        return lambda x, cond, uncond, texts: keep_norm(x, shared_offsets(saved, cond, texts))
    if "@" in path.name:
        file, step = str(path).rsplit("@", 1)
        saved = torch.load(file)
        npnet = NPNet(NPNetConfig.from_dict(saved["config"]))
        npnet.load_state_dict(saved["checkpoints"][int(step)])
        return lambda x, cond, uncond, texts: npnet.eval()(x, cond)
    if (path / DenoiserInformed.FILE).is_file():
        net = DenoiserInformed(toy)
        net.unet.load_state_dict(load_file(path / DenoiserInformed.FILE))
        return lambda x, cond, uncond, texts: net.eval()(x, cond, uncond)
    npnet = NPNet.from_pretrained(path).eval()
    return lambda x, cond, uncond, texts: npnet(x, cond)


def golden_latents(
    net: Callable[..., torch.Tensor], x: torch.Tensor, prompts: list[str], toy: Toy
) -> torch.Tensor:
    """A `load_net` net's latents for noises `x`, in batches of 256."""
    with torch.no_grad():
        return torch.cat(
            [
                net(x[i : i + 256], *toy.embed(prompts[i : i + 256]), prompts[i : i + 256])
                for i in range(0, len(x), 256)
            ]
        )


def evaluate(args: argparse.Namespace) -> None:
    toy = Toy()
    net = load_net(args.net, toy)
    chosen = samples(args.split, args.per_type, args.n)
    prompts, kinds = [p for p, _, _ in chosen], np.array([k for *_, k in chosen])
    x = seed_noise([s for _, s, _ in chosen])
    golden = golden_latents(net, x, prompts, toy)
    ratio = golden.flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)
    images = {
        "standard": toy.render(x, prompts),
        "golden": toy.render(golden, prompts),
        "norm-matched": toy.render(x * ratio[:, None, None, None], prompts),
        "random move": toy.render(random_move(x, golden), prompts),
    }
    if args.against:  # another net on the same samples: the paired comparison that ranks nets
        other = load_net(args.against, toy)
        images["against"] = toy.render(golden_latents(other, x, prompts, toy), prompts)
    arms = {arm: soft_and_correct(drawn, prompts) for arm, drawn in images.items()}
    print(f"{args.name} on {args.split} ({len(chosen)} samples; paired bootstrap 95% interval, "
          "Wilcoxon p, ties dropped): golden/standard norm ratio "
          f"{ratio.mean():.3f} (sd {ratio.std():.3f})")  # fmt: skip
    for m, metric in enumerate(("soft", "correct")):
        for a, b in (
            ("golden", "standard"),
            ("norm-matched", "standard"),
            ("random move", "standard"),
            ("golden", "norm-matched"),
            *([("golden", "against")] if args.against else []),
        ):
            stats = paired_stats(arms[b][m], arms[a][m])
            diff = arms[a][m] - arms[b][m]
            per = " ".join(f"{k}:{diff[kinds == k].mean():+.3f}" for k in TYPES)
            print(f"{metric:7s} {a} - {b}: {stats['mean_diff']:+.4f} [{stats['ci95_low']:+.4f}, "
                  f"{stats['ci95_high']:+.4f}] p {stats['wilcoxon_p']:.2g} | {per}")  # fmt: skip
    for m, metric in enumerate(("soft", "correct")):  # the target: no type down beyond its CI
        by_type = []
        for k in TYPES:
            stats = paired_stats(arms["standard"][m][kinds == k], arms["golden"][m][kinds == k])
            by_type.append(f"{k} {stats['mean_diff']:+.3f} [{stats['ci95_low']:+.3f}, "
                           f"{stats['ci95_high']:+.3f}]")  # fmt: skip
        print(f"{metric:7s} golden - standard by type: " + "; ".join(by_type))
    found = compare_diversity(
        {arm: diversity_by_prompt(drawn / 255.0, prompts) for arm, drawn in images.items()}
    )
    for arm, stats in found["vs_standard"].items():
        print(f"diversity {arm} / standard: ratio {stats['ratio']:.3f}, difference "
              f"{stats['mean_diff']:+.4f} [{stats['ci95_low']:+.4f}, {stats['ci95_high']:+.4f}]"
              f" p {stats['wilcoxon_p']:.2g} ({found['prompts']} prompts, >= 2 seeds)")  # fmt: skip
    summary = {"net": args.name, "split": args.split, "samples": len(chosen)}
    for m, metric in enumerate(("soft", "correct")):
        for arm in ("golden", "norm-matched", "random move"):
            summary[f"{metric} {arm} - standard"] = float(
                arms[arm][m].mean() - arms["standard"][m].mean()
            )
        golden_vs_norm = paired_stats(arms["norm-matched"][m], arms["golden"][m])
        summary[f"{metric} golden - norm-matched p"] = float(golden_vs_norm["wilcoxon_p"])
    summary.update({f"diversity {a}": s["ratio"] for a, s in found["vs_standard"].items()})
    print("json " + json.dumps(summary))


def random_move(x: torch.Tensor, golden: torch.Tensor) -> torch.Tensor:
    """The same-size random control: each noise moved as far as golden moved it, in a random
    direction (seeded), at golden's norm: what any move of that size does."""
    direction = torch.randn(x.shape, generator=torch.Generator().manual_seed(7))
    step = (golden - x).flatten(1).norm(dim=1) / direction.flatten(1).norm(dim=1)
    return with_norms(x + direction * step[:, None, None, None], latent_norms(golden))


def main() -> None:
    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train-mse")
    p.add_argument("dataset", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--arch", choices=sorted(ARCHS), default="unet")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--limit", type=int, default=0)
    p = sub.add_parser("train-modulator")
    p.add_argument("dataset", type=Path)
    p.add_argument("--init", choices=("denoiser", "random"), default="denoiser")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3, help="the head's")
    p.add_argument("--lr-unet", type=float, default=1e-4, help="the denoiser copy's")
    p = sub.add_parser("compose-offsets")
    p.add_argument("offsets", type=Path, help="a `prompt-offsets --save` or `dataset-offsets` file")
    p.add_argument("out", type=Path, help="a .pt file `evaluate` takes as a net")
    p.add_argument("--ridge", type=float, default=1.0)
    p.add_argument(
        "--groups", default="object",
        help="part groups, e.g. object,colour,shape,role (toy.offset_parts.PART_GROUPS)",
    )  # fmt: skip
    p.add_argument("--scale", type=float, default=1.0, help="multiply every offset by this")
    p.add_argument("--offsets-out", type=Path, help="also save the table's offsets of the prompts")
    p = sub.add_parser("train-reward")
    p.add_argument("out", type=Path)
    p.add_argument("--iters", type=int, default=150)
    p.add_argument("--penalty", type=float, default=0.1)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--steps", type=int, default=10)
    p = sub.add_parser("direct")
    p.add_argument("out", type=Path, help="a .pt file: {config, checkpoints: {step: state}}")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--minutes", type=float, default=8.0)
    p.add_argument("--save-at", default="0.25,0.5,1", help="fractions of --minutes")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--widths", default="32,64", help="the residual UNet's block widths")
    p.add_argument("--no-harm", type=float, default=1.0)
    p.add_argument("--stay-close", type=float, default=0.3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=25)
    p = sub.add_parser("train-informed")
    p.add_argument("out", type=Path)
    p.add_argument("--iters", type=int, default=200)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--steps", type=int, default=10)
    p = sub.add_parser("prompt-offsets")
    p.add_argument("--per-type", type=int, default=4)
    p.add_argument("--k", type=int, default=4, help="fresh noises per prompt and step")
    p.add_argument("--iters", type=int, default=60)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--stay-close", type=float, default=0.3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--seeds", type=int, default=32, help="unseen seeds per prompt, scored")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--split", choices=("validation", "train"), default="validation")
    p.add_argument("--counts", default="", help="prompts per type, e.g. 18,16,14,16")
    p.add_argument("--save", type=Path, default=None, help="write {prompts, offsets} here")
    p.add_argument("--exclude", type=Path, nargs="*", default=[], help="offsets files to skip")
    p.add_argument("--init", type=Path, default=None, help="start at this net's offsets")
    p.add_argument("--modes", type=int, default=1, help="offsets per prompt (routed by noise)")
    p.add_argument("--prompts", type=Path, default=None, help="fit these (one per line)")
    p.add_argument("--shared-start", action="store_true", help="every prompt's modes start alike")
    p = sub.add_parser("partition-modes")
    p.add_argument("offsets", type=Path, help="fitted train offsets (`dataset-offsets`)")
    p.add_argument("--k", type=int, default=8, help="fresh noises per prompt and step")
    p.add_argument("--iters", type=int, default=60)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--stay-close", type=float, default=0.03)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p = sub.add_parser("shared-offset")
    p.add_argument("out", help="files OUT_{ITER}.pt")
    p.add_argument("--linear", action="store_true", help="plus a linear map of the prompt")
    p.add_argument("--iters", type=int, default=40)
    p.add_argument("--lr", type=float, default=0.1, help="Adam lr of the shared offset")
    p.add_argument("--lr-w", type=float, default=5e-5, help="Adam lr of the linear map")
    p.add_argument("--factored", action="store_true", help="plus an offset per object and role")
    p.add_argument("--lr-t", type=float, default=0.03, help="Adam lr of the object offsets")
    p.add_argument("--prompts", type=int, default=32, help="fresh train prompts a step")
    p.add_argument("--k", type=int, default=4, help="fresh noises per prompt and step")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--stay-close", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=11, help="draw of the prompts")
    p.add_argument("--noise-base", type=int, default=7_000_000)
    p.add_argument("--save-at", default="10,20,40")
    p = sub.add_parser("dataset-offsets")
    p.add_argument("dataset", type=Path, nargs="+")
    p.add_argument("out", type=Path)
    p.add_argument("--sample", type=int, default=0, help="keep this many prompts at random")
    p.add_argument("--counts", default="", help="or this many of each type, e.g. 18,16,14,16")
    p = sub.add_parser("distill")
    p.add_argument("offsets", type=Path, nargs="+")
    p.add_argument("out", type=Path)
    p.add_argument("--init", type=Path, default=None, help="continue from this net")
    p.add_argument("--balance", action="store_true", help="weigh prompt types equally")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--batch-size", type=int, default=0, help="prompts a step (0: all)")
    p.add_argument("--backbone-kwargs", default="{}", help='e.g. \'{"width": 128, "layers": 4}\'')
    p = sub.add_parser("table-r2")
    p.add_argument("table", type=Path, help="a `compose-offsets` file")
    p.add_argument("nets", type=Path, nargs="+", help="prompt-offset NPNet folders")
    p = sub.add_parser("evaluate")
    p.add_argument("net", type=Path)
    p.add_argument("name")
    p.add_argument("--split", choices=("validation", "heldout"), default="validation")
    p.add_argument("--per-type", type=int, default=32)
    p.add_argument("--n", type=int, default=1024)
    p.add_argument("--against", type=Path, help="also this net, paired: golden - against")
    args = parser.parse_args()
    commands = {
        "train-mse": train_mse,
        "train-reward": train_reward,
        "direct": direct,
        "train-informed": train_informed,
        "train-modulator": train_modulator,
        "table-r2": table_r2,
        "compose-offsets": compose_offsets,
        "prompt-offsets": prompt_offsets,
        "partition-modes": partition_modes,
        "shared-offset": shared_offset,
        "dataset-offsets": dataset_offsets,
        "distill": distill,
        "evaluate": evaluate,
    }
    commands[args.command](args)


if __name__ == "__main__":
    main()
