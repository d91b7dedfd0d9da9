"""NPNet's share of a generation: FLOPs at full SDXL scale, and time measured in one run.

1. FLOPs, no weights: the full-size SDXL UNet (stabilityai/stable-diffusion-xl-base-1.0's
   config) built on the meta device, one forward at 128x128 (1024 px) counted by
   `torch.utils.flop_counter.FlopCounterMode`, against the released-architecture NPNet
   (Swin-T, 77x2048 text) counted the same way, for 50 and 4 steps.
2. Time: a pipeline call from the seed's noise vs the same call from golden noise (NPNet
   included), same prompts and seeds, alternating, medians. `--pipeline` takes "toy", a
   local pipeline folder or a hub id; without `--npnet` a random NPNet of the released
   architecture sized to the pipeline is used (timing does not depend on weight values).

    .venv/bin/python benchmarks/overhead.py [--pipeline toy] [--npnet SRC] [--steps 20]
        [--seeds 3] [--threads 1] [--flops-only]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from rich.console import Console
from rich.progress import track
from rich.table import Table
from torch.utils.flop_counter import FlopCounterMode

from golden_noise import GoldenNoise, NPNet, NPNetConfig
from golden_noise.adapters import adapter_for
from golden_noise.adapters.loading import pipeline_from_spec

# diffusers' unet/config.json of stabilityai/stable-diffusion-xl-base-1.0 (2.567B parameters).
SDXL_UNET = {
    "sample_size": 128,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "block_out_channels": (320, 640, 1280),
    "layers_per_block": 2,
    "attention_head_dim": (5, 10, 20),
    "transformer_layers_per_block": (1, 2, 10),
    "cross_attention_dim": 2048,
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
    "norm_num_groups": 32,
}
PROMPTS = ["a red cube on a blue ball", "a photo of a cat wearing a hat"]


def sdxl_unet_flops(batch: int) -> tuple[int, int]:
    """(parameters, FLOPs of one forward) of the full SDXL UNet at 128x128, without weights."""
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(**SDXL_UNET)
        inputs = {
            "sample": torch.empty(batch, 4, 128, 128),
            "timestep": torch.full((batch,), 999),
            "encoder_hidden_states": torch.empty(batch, 77, 2048),
            "added_cond_kwargs": {
                "text_embeds": torch.empty(batch, 1280),
                "time_ids": torch.empty(batch, 6),
            },
        }
        with FlopCounterMode(display=False) as counter:
            unet(**inputs)
    return sum(p.numel() for p in unet.parameters()), counter.get_total_flops()


def npnet_flops() -> tuple[int, int, int]:
    """(parameters, counted FLOPs, SVD FLOP bound) of the released SDXL NPNet at 128x128.

    NPNet checks its inputs for NaN (a data-dependent read meta tensors cannot answer), so
    it runs on real random tensors on the CPU (~0.3 s). FlopCounterMode has no formula for
    `linalg.svd`; the bound is Golub-Reinsch's ~21 n^3 for U, S and V of the n x n matrix.
    """
    torch.manual_seed(0)
    net = NPNet(NPNetConfig(family="sdxl")).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(torch.randn(1, 4, 128, 128), torch.randn(1, 77, 2048))
    n = net.config.svd_rank
    return sum(p.numel() for p in net.parameters()), counter.get_total_flops(), 21 * n**3


def report_flops(console: Console) -> None:
    params, cfg_step = sdxl_unet_flops(batch=2)
    _, plain_step = sdxl_unet_flops(batch=1)
    net_params, net_counted, svd_bound = npnet_flops()
    net_total = net_counted + svd_bound
    console.print(
        f"SDXL UNet: {params / 1e9:.3f}B parameters; one step at 128x128: "
        f"{cfg_step / 1e12:.2f} TFLOPs with CFG (batch 2), {plain_step / 1e12:.2f} without.\n"
        f"NPNet (released SDXL architecture): {net_params / 1e6:.2f}M parameters, "
        f"{net_counted / 1e9:.2f} GFLOPs counted + <= {svd_bound / 1e9:.2f} GFLOPs SVD."
    )
    table = Table(title="NPNet FLOPs / UNet FLOPs of a 1024 px SDXL generation (no VAE, no text)")
    for column in ("generation", "UNet TFLOPs", "NPNet share"):
        table.add_column(column, justify="left" if column == "generation" else "right")
    for label, unet_total in (
        ("50 steps, CFG", 50 * cfg_step),
        ("4 steps, CFG", 4 * cfg_step),
        ("4 steps, no CFG (Turbo/Lightning)", 4 * plain_step),
        ("1 step, no CFG (Turbo)", plain_step),
    ):
        table.add_row(label, f"{unet_total / 1e12:.1f}", f"{net_total / unet_total:.5%}")
    console.print(table)


def fitted_npnet(pipe: object) -> NPNet:
    """A random NPNet of the released architecture fitted to the pipeline's shapes."""
    adapter = adapter_for(pipe)
    tokens, width = adapter.text_shape()
    _, channels, height, latent_width = adapter.latent_shape(1)
    config = NPNetConfig(
        channels=channels,
        height=height,
        width=latent_width,
        text_tokens=tokens,
        text_dim=width,
        family=adapter.family,
    )
    torch.manual_seed(0)
    return NPNet(config).eval()


def report_time(console: Console, args: argparse.Namespace) -> None:
    pipe = pipeline_from_spec(args.pipeline, device="cpu")
    pipe.set_progress_bar_config(disable=True)
    net = NPNet.from_pretrained(args.npnet) if args.npnet else fitted_npnet(pipe)
    golden = GoldenNoise(net, pipe)
    call = {"num_inference_steps": args.steps}
    jobs = [(prompt, seed) for prompt in PROMPTS for seed in range(args.seeds)]
    golden.image(PROMPTS[0], 0, **call)  # warm-up: allocator, lazy kernels
    pipe(PROMPTS[0], **call)
    standard, with_golden, latents_only = [], [], []
    for prompt, seed in track(jobs, "standard vs golden", console=console):
        start = time.perf_counter()
        pipe(prompt, generator=torch.Generator().manual_seed(seed), **call)
        standard.append(time.perf_counter() - start)
        start = time.perf_counter()
        golden.image(prompt, seed, **call)
        with_golden.append(time.perf_counter() - start)
        start = time.perf_counter()
        golden.latents(prompt, torch.Generator().manual_seed(seed))
        latents_only.append(time.perf_counter() - start)
    base, total, npnet = (statistics.median(t) for t in (standard, with_golden, latents_only))
    shape = "x".join(str(s) for s in golden.adapter.latent_shape(1)[1:])
    table = Table(
        title=f"{type(pipe).__name__} ({args.pipeline}), latents {shape}, {args.steps} steps, "
        f"CPU, {args.threads} thread(s), median of {len(jobs)}"
    )
    for column in ("call", "seconds", "vs standard"):
        table.add_column(column, justify="left" if column == "call" else "right")
    table.add_row("standard (seed noise)", f"{base:.3f}", "1.000")
    table.add_row("golden (NPNet + same call)", f"{total:.3f}", f"{total / base:.3f}")
    table.add_row("golden latents alone", f"{npnet:.3f}", f"{npnet / base:.3f}")
    console.print(table)
    console.print(
        f"extra time of a golden generation: {total / base - 1:.2%}; golden latents' share of "
        f"it (NPNet + one more prompt encoding + noise draw): {npnet / total:.2%}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", default="toy")
    parser.add_argument("--npnet", default=None)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--flops-only", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    console = Console(width=110)
    report_flops(console)
    if not args.flops_only:
        report_time(console, args)


if __name__ == "__main__":
    main()
