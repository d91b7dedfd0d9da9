"""Per-seed golden noise as a choice among the noise's own orientations, on the toy world.

Every rotation and reflection of a standard Gaussian latent (the 8 elements of the square's
symmetry group, D4, acting on the latent grid) is itself a standard Gaussian latent with the
same norm, and it draws another picture: the seed's layout turned. Choosing, per seed and
prompt, the orientation that will draw the best image is golden noise that cannot cost
variety the way an offset does and has an exact control (a random orientation gains nothing
on average). This script measures how much such a choice is worth and how much of it a
learned net finds (docs/prompt-offsets.md, "Choosing the noise's orientation"):

    python benchmarks/orientation_select.py scores scores.npz --per-type 64
    python benchmarks/orientation_select.py search scores.npz --preview-steps 1,2,3
    python benchmarks/orientation_select.py labels labels_0.npz --shard 0 --shards 2
    python benchmarks/orientation_select.py labels labels_1.npz --shard 1 --shards 2
    python benchmarks/orientation_select.py select scores.npz labels_0.npz labels_1.npz

`scores` renders every orientation of the validation samples of `learned_gain.py evaluate
--per-type N` through the toy pipeline (10 steps) and scores them exactly: the best of the 8
is the oracle, orientation 0 the standard arm. `search` picks, per sample, the orientation
whose short DDIM preview (1-3 steps, decoded) scores best, with the toy reward model or the
exact scorer on the preview: a test-time search, not a net. `labels` scores every orientation
of 8 fresh noises of every train prompt by the 3-step preview (the exact scorer on it), and
`select` trains a value net (convolutions over the latent, its positions attending to the
prompt's tokens) to rank a noise's orientations by those labels (listwise cross-entropy), then
reports the validation samples' exact gain of the orientation it picks.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from learned_gain import TYPES, Toy, samples, seed_noise, soft_and_correct
from torch import nn

from golden_noise.core.progress import track
from golden_noise.evaluation.diversity import compare_diversity, diversity_by_prompt
from golden_noise.toy.grammar import prompts_of
from golden_noise.toy.reward_model import reward as reward_model

ORIENTATIONS = 8


def orientations(x: torch.Tensor) -> torch.Tensor:
    """`[B, C, H, W]` -> `[B, 8, C, H, W]`: each quarter turn, then it mirrored; 0 is `x`."""
    turned = []
    for k in range(4):
        r = torch.rot90(x, k, dims=(2, 3))
        turned += [r, torch.flip(r, dims=(3,))]
    return torch.stack(turned, 1)


def preview_images(toy: Toy, latents: torch.Tensor, prompts: list[str], steps: int) -> torch.Tensor:
    """The toy pipeline's `steps`-step DDIM images of `latents`, `[B, 3, 32, 32]` in [0, 1]."""
    cond, uncond = toy.embed(prompts)
    with torch.no_grad():
        return torch.cat(
            [
                toy.differentiable_images(
                    latents[i : i + 256], cond[i : i + 256], uncond[i : i + 256], steps
                )
                for i in range(0, len(latents), 256)
            ]
        )


def exact_soft(images: torch.Tensor, prompts: list[str]) -> np.ndarray:
    """The exact toy scorer's soft score of `[B, 3, H, W]` images in [0, 1]."""
    u8 = (images.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    return soft_and_correct(u8, prompts)[0]


def validation_samples(per_type: int) -> tuple[list[str], np.ndarray, torch.Tensor]:
    """`learned_gain.py evaluate --per-type N`'s samples: prompts, types, noises."""
    chosen = samples("validation", per_type, 0)
    prompts = [p for p, _, _ in chosen]
    return prompts, np.array([k for *_, k in chosen]), seed_noise([s for _, s, _ in chosen])


def scores(args: argparse.Namespace) -> None:
    toy = Toy()
    prompts, kinds, x = validation_samples(args.per_type)
    texts = [p for p in prompts for _ in range(ORIENTATIONS)]
    images = toy.render(orientations(x).flatten(0, 1), texts)
    soft, correct = (s.reshape(len(x), ORIENTATIONS) for s in soft_and_correct(images, texts))
    np.savez(args.out, soft=soft, correct=correct, kinds=kinds, prompts=np.array(prompts),
             images=images.reshape(len(x), ORIENTATIONS, *images.shape[1:]))  # fmt: skip
    report("the best of 8 (oracle)", np.load(args.out), soft.argmax(1))


def report(name: str, found: np.lib.npyio.NpzFile, pick: np.ndarray) -> None:
    """The exact gain of orientation `pick` over orientation 0 (standard) on `scores`'s
    samples, by type, with a random orientation's (the mean over all 8) beside it, and the
    picked images' diversity against standard's."""
    soft, correct, kinds = found["soft"], found["correct"], found["kinds"]
    rows = np.arange(len(soft))
    gain, more = soft[rows, pick] - soft[:, 0], correct[rows, pick] - correct[:, 0]
    by_type = " ".join(f"{k} {gain[kinds == k].mean():+.3f}" for k in TYPES)
    chance = (soft.mean(1) - soft[:, 0]).mean()
    prompts = [str(p) for p in found["prompts"]]
    arms = {"standard": found["images"][:, 0], "picked": found["images"][rows, pick]}
    spread = compare_diversity(
        {arm: diversity_by_prompt(images / 255.0, prompts) for arm, images in arms.items()}
    )["vs_standard"]["picked"]
    print(f"{name} ({len(soft)} samples): soft {gain.mean():+.4f} (se "
          f"{gain.std() / np.sqrt(len(gain)):.4f}), correct {more.mean():+.3f} | {by_type} | "
          f"diversity {spread['ratio']:.3f} | a random orientation: soft {chance:+.4f}",
          flush=True)  # fmt: skip


def search(args: argparse.Namespace) -> None:
    toy, found = Toy(), np.load(args.scores)
    prompts, _, x = validation_samples(len(found["soft"]) // len(TYPES))
    texts = [p for p in prompts for _ in range(ORIENTATIONS)]
    latents = orientations(x).flatten(0, 1)
    for steps in (int(s) for s in args.preview_steps.split(",")):
        images = preview_images(toy, latents, texts, steps)
        judged = {
            "toy reward model": reward_model(images, texts).numpy(),
            "exact scorer": exact_soft(images, texts),
        }
        for judge, values in judged.items():
            pick = values.reshape(len(x), -1).argmax(1)
            report(f"{steps}-step preview, {judge}", found, pick)


def labels(args: argparse.Namespace) -> None:
    toy = Toy()
    every = sorted({p for k in TYPES for p in prompts_of("train", k)})
    place = {p: i for i, p in enumerate(every)}
    mine = every[args.shard :: args.shards]
    prompts, seeds, found = [], [], []
    for start in track(range(0, len(mine), 32), "orientation labels"):
        chunk = [p for p in mine[start : start + 32] for _ in range(args.noises)]
        chunk_seeds = [
            7_000_000 + place[p] * args.noises + j
            for p in mine[start : start + 32]
            for j in range(args.noises)
        ]
        texts = [p for p in chunk for _ in range(ORIENTATIONS)]
        latents = orientations(seed_noise(chunk_seeds)).flatten(0, 1)
        images = preview_images(toy, latents, texts, args.preview_steps)
        prompts += chunk
        seeds += chunk_seeds
        found.append(exact_soft(images, texts).reshape(-1, ORIENTATIONS))
    np.savez(args.out, prompts=np.array(prompts), seeds=np.array(seeds),
             exact=np.concatenate(found))  # fmt: skip


class OrientationValue(nn.Module):
    """A noise's value for a prompt: convolutions over the latent, its positions (with a
    learned position embedding, since left and right matter) attending to the prompt's
    tokens, then one transformer layer, pooled to a number."""

    def __init__(self, width: int, embed_dim: int, positions: int = 64) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(4, width, 3, padding=1), nn.GELU(),
            nn.Conv2d(width, width, 3, padding=1), nn.GELU(),
            nn.Conv2d(width, width, 3, padding=1),
        )  # fmt: skip
        self.position = nn.Parameter(torch.randn(positions, width) * 0.1)
        self.tokens = nn.Linear(embed_dim, width)
        self.attend = nn.MultiheadAttention(width, 4, batch_first=True)
        self.mix = nn.TransformerEncoderLayer(
            width, 4, 2 * width, dropout=0.0, batch_first=True, norm_first=True
        )
        self.head = nn.Sequential(
            nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(), nn.Linear(width, 1)
        )

    def forward(self, latents: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.stem(latents).flatten(2).transpose(1, 2) + self.position
        t = self.tokens(cond)
        h = self.mix(h + self.attend(h, t, t, need_weights=False)[0])
        return self.head(h.mean(1))[:, 0]


def select(args: argparse.Namespace) -> None:
    toy = Toy()
    found = [np.load(path) for path in args.labels]
    prompts = [str(p) for f in found for p in f["prompts"]]
    target = torch.tensor(np.concatenate([f["exact"] for f in found]))
    cond = torch.cat([toy.embed(prompts[i : i + 512])[0] for i in range(0, len(prompts), 512)])
    latents = orientations(seed_noise([int(s) for f in found for s in f["seeds"]]))
    distinct = sorted(set(prompts))  # a tenth of the train prompts held back, for the best epoch
    held = set(np.random.default_rng(0).choice(distinct, len(distinct) // 10, replace=False))
    back = torch.tensor([p in held for p in prompts])
    train, val = torch.where(~back)[0], torch.where(back)[0]
    torch.manual_seed(0)
    net = OrientationValue(args.width, cond.shape[-1])
    optimizer = torch.optim.AdamW(net.parameters(), args.lr, weight_decay=0.01)
    steps = args.epochs * (len(train) // args.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, args.lr, total_steps=steps)

    def values(rows: torch.Tensor) -> torch.Tensor:
        flat = latents[rows].flatten(0, 1)
        return net(flat, cond[rows].repeat_interleave(ORIENTATIONS, 0)).view(-1, ORIENTATIONS)

    def held_gain() -> float:
        with torch.no_grad():
            pick = torch.cat([values(val[i : i + 256]).argmax(1) for i in range(0, len(val), 256)])
        return (target[val, pick] - target[val, 0]).mean().item()

    ceiling = (target[val].max(1).values - target[val, 0]).mean()
    print(f"{len(prompts)} noises of {len(distinct)} train prompts ({len(val)} held back; their "
          f"best orientation's label gain {ceiling:+.4f})")  # fmt: skip
    best, state, start = -np.inf, None, time.time()
    for epoch in range(args.epochs):
        order = train[torch.randperm(len(train))]
        total = 0.0
        for i in range(0, len(order) - args.batch_size + 1, args.batch_size):
            rows = order[i : i + args.batch_size]
            wanted = torch.softmax(target[rows] / args.temperature, 1)
            loss = -(wanted * torch.log_softmax(values(rows), 1)).sum(1).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item()
        gain = held_gain()
        print(f"epoch {epoch} loss {total / (len(order) // args.batch_size):.4f} held-back train "
              f"prompts: label gain of the pick {gain:+.4f} ({time.time() - start:.0f}s)",
              flush=True)  # fmt: skip
        if gain > best:
            best, state = gain, {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(state)
    exact = np.load(args.scores)
    val_prompts, _, x = validation_samples(len(exact["soft"]) // len(TYPES))
    with torch.no_grad():
        flat = orientations(x).flatten(0, 1)
        picked = net(flat, toy.embed(val_prompts)[0].repeat_interleave(ORIENTATIONS, 0))
    pick = picked.view(-1, ORIENTATIONS).argmax(1).numpy()
    report("the value net's pick", exact, pick)
    texts = [p for p in val_prompts for _ in range(ORIENTATIONS)]
    previewed = exact_soft(preview_images(toy, flat, texts, args.preview_steps), texts)
    previewed = previewed.reshape(-1, ORIENTATIONS)
    label_gain = previewed[np.arange(len(pick)), pick] - previewed[:, 0]
    ceiling = (previewed.max(1) - previewed[:, 0]).mean()
    print(f"in the labels' units ({args.preview_steps}-step preview) on the validation samples: "
          f"the pick {label_gain.mean():+.4f}, the best orientation {ceiling:+.4f}")  # fmt: skip
    print(f"orientations picked: {np.bincount(pick, minlength=ORIENTATIONS).tolist()}")


def main() -> None:
    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("scores")
    p.add_argument("out", type=Path)
    p.add_argument("--per-type", type=int, default=64)
    p = sub.add_parser("search")
    p.add_argument("scores", type=Path)
    p.add_argument("--preview-steps", default="1,2,3")
    p = sub.add_parser("labels")
    p.add_argument("out", type=Path)
    p.add_argument("--shard", type=int, default=0)
    p.add_argument("--shards", type=int, default=1)
    p.add_argument("--noises", type=int, default=8, help="fresh noises per train prompt")
    p.add_argument("--preview-steps", type=int, default=3)
    p = sub.add_parser("select")
    p.add_argument("scores", type=Path)
    p.add_argument("labels", type=Path, nargs="+")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--temperature", type=float, default=0.05)
    p.add_argument("--preview-steps", type=int, default=3, help="the labels' preview")
    args = parser.parse_args()
    {"scores": scores, "search": search, "labels": labels, "select": select}[args.command](args)


if __name__ == "__main__":
    main()
