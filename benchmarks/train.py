"""Training throughput: text embeddings from the dataset's cache vs re-encoding every step.

The authors' trainer runs the pipeline's text encoders inside every training step; ours
reads each prompt's per-token embedding from the dataset, computed once at collection. Both
modes below run the same NPNet, AdamW step and MSE on the same batches from the same
on-disk dataset, interleaved step by step in one run so machine load hits both alike; the
only difference is where `prompt_embeds` comes from (the cache, or
`adapter.encode_prompt(batch texts)` under no_grad, every text of the batch).

    .venv/bin/python benchmarks/train.py [--pipeline toy] [--steps 20] [--batch-size 16]
        [--threads 1] [--backbone NAME --backbone-kwargs JSON --backbone-input-size N]

`--pipeline` is "toy", a local pipeline folder or a hub id. Without backbone options the
NPNet is the released architecture (Swin-T residual branch) sized to the pipeline.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import track
from rich.table import Table
from torch.nn import functional as F
from torch.utils.data import DataLoader

from golden_noise.adapters import adapter_for
from golden_noise.adapters.loading import pipeline_from_spec
from golden_noise.dataset import DatasetManifest, DatasetWriter, NoisePromptDataset, PromptRecord
from golden_noise.npnet import NPNet, NPNetConfig

SUBJECTS = ["a red cube", "two cats", "a blue ball", "a tall tree", "an old car", "a small boat"]
PLACES = ["on a table", "in the snow", "at night", "by the sea", "in a forest", "on the moon"]


def build_dataset(root: Path, adapter, rows: int, prompts: int) -> NoisePromptDataset:
    texts = [f"{SUBJECTS[i % 6]} {PLACES[(i // 6) % 6]}, view {i}" for i in range(prompts)]
    shape = adapter.latent_shape(1)[1:]
    with torch.no_grad():
        embeds = adapter.encode_prompt(texts).tokens.float().cpu()
    manifest = DatasetManifest(
        family=adapter.family, latent_shape=shape, text_shape=tuple(embeds.shape[1:])
    )
    records = [PromptRecord(i, t) for i, t in enumerate(texts)]
    with DatasetWriter(root, manifest, prompts=records) as writer:
        writer.add_embeddings(list(range(prompts)), embeds)
        source = torch.randn(rows, *shape, generator=torch.Generator().manual_seed(0))
        index = [i % prompts for i in range(rows)]
        seeds = [i // prompts for i in range(rows)]
        writer.add(source, source + 0.1, index, seeds, [0.0] * rows, [1.0] * rows)
    return NoisePromptDataset(root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline", default="toy")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--backbone")
    parser.add_argument("--backbone-kwargs", default="{}")
    parser.add_argument("--backbone-input-size", type=int)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    console = Console()

    adapter = adapter_for(pipeline_from_spec(args.pipeline, dtype="float32", device="cpu"))
    rows = args.batch_size * (args.steps + 2)
    with tempfile.TemporaryDirectory() as tmp:
        data = build_dataset(Path(tmp) / "npd", adapter, rows, args.prompts)
        texts = {i: r.text for i, r in data.prompts().items()}
        prompt_of_item = [p for p, _ in data.keys]
        overrides = {}
        if args.backbone:
            overrides = {
                "backbone": args.backbone,
                "backbone_kwargs": json.loads(args.backbone_kwargs),
                "backbone_input_size": args.backbone_input_size or 224,
            }
        channels, height, width = data.manifest.latent_shape
        tokens, dim = data.manifest.text_shape
        config = NPNetConfig(
            channels=channels,
            height=height,
            width=width,
            text_tokens=tokens,
            text_dim=dim,
            family=adapter.family,
            **overrides,
        )
        net = NPNet(config).train()
        optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)
        loader = DataLoader(list(range(len(data))), batch_size=args.batch_size)

        def step(items: list[int], reencode: bool) -> float:
            started = time.perf_counter()
            batch = [data[i] for i in items]
            source = torch.stack([b[0] for b in batch])
            target = torch.stack([b[1] for b in batch])
            if reencode:
                with torch.no_grad():
                    embeds = adapter.encode_prompt([texts[prompt_of_item[i]] for i in items])
                embeds = embeds.tokens.float()
            else:
                embeds = torch.stack([b[2] for b in batch])
            loss = F.mse_loss(net(source, embeds), target)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            return time.perf_counter() - started

        batches = [b.tolist() for b in loader]
        for warm in batches[:2]:
            step(warm, False), step(warm, True)
        times: dict[bool, list[float]] = {False: [], True: []}
        for items in track(batches[2:], description="interleaved steps", console=console):
            for reencode in (False, True):
                times[reencode].append(step(items, reencode))

    cached, encoded = (statistics.median(times[m]) for m in (False, True))
    table = Table(title=f"training step, batch {args.batch_size}, {args.threads} thread(s)")
    for column in ("prompt embeddings", "median s/step", "samples/s"):
        table.add_column(column)
    table.add_row("dataset cache (ours)", f"{cached:.4f}", f"{args.batch_size / cached:.1f}")
    table.add_row("re-encode every step", f"{encoded:.4f}", f"{args.batch_size / encoded:.1f}")
    console.print(table)
    params = sum(p.numel() for p in net.parameters()) / 1e6
    console.print(
        f"pipeline {args.pipeline!r} ({adapter.family}), latents {data.manifest.latent_shape}, "
        f"text {data.manifest.text_shape}; NPNet {params:.2f}M parameters ({config.backbone})"
    )
    console.print(f"samples/s ratio, cache / re-encode: {encoded / cached:.2f}x")


if __name__ == "__main__":
    main()
