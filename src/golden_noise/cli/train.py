"""`golden-noise train`: Stage II, an NPNet from a Noise Prompt Dataset.

Multi-process: `accelerate launch --multi_gpu --num_processes N "$(which golden-noise)" train ...`
(GPUs, or CPU processes on a machine without GPUs).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from golden_noise.cli.app import app, print_error


def _npnet_overrides(
    backbone: str | None,
    backbone_kwargs: str | None,
    backbone_input_size: int | None,
    svd_variant: str,
    no_svd: bool,
    no_residual: bool,
    no_text: bool,
    text_reduction: str | None,
    text_reduction_dim: int | None,
) -> dict[str, object]:
    from golden_noise.errors import GoldenNoiseError

    overrides: dict[str, object] = {"svd_variant": svd_variant}
    if backbone is not None:
        overrides["backbone"] = backbone
    if backbone_kwargs is not None:
        try:
            overrides["backbone_kwargs"] = json.loads(backbone_kwargs)
        except json.JSONDecodeError as exc:
            raise GoldenNoiseError(
                f"--backbone-kwargs must be a JSON object; got {backbone_kwargs!r}"
            ) from exc
    if backbone_input_size is not None:
        overrides["backbone_input_size"] = backbone_input_size
    if text_reduction is not None:
        overrides["text_reduction"] = text_reduction
    if text_reduction_dim is not None:
        overrides["text_reduction_dim"] = text_reduction_dim
    for flag, name in ((no_svd, "use_svd"), (no_residual, "use_residual"), (no_text, "use_text")):
        if flag:
            overrides[name] = False
    return overrides


@app.command()
def train(
    dataset: Annotated[
        Path,
        typer.Argument(help="Noise Prompt Dataset directory (from collect or import-authors)."),
    ],
    out: Annotated[Path, typer.Option(help="Run directory: last/, best/, checkpoints/, metrics.")],
    batch_size: Annotated[
        int, typer.Option(help="Global batch per forward pass (split over processes).")
    ] = 64,
    epochs: int = 30,
    lr: float = 1e-4,
    weight_decay: float = 0.01,
    lr_scheduler: Annotated[str, typer.Option(help="diffusers get_scheduler name.")] = "constant",
    warmup_steps: int = 0,
    margin: Annotated[
        float | None,
        typer.Option(
            help="Keep rows with score_source + margin < score_target [default: manifest's]."
        ),
    ] = None,
    unfiltered: Annotated[
        bool, typer.Option(help="Train on every pair, whatever its scores (ablation).")
    ] = False,
    score: Annotated[
        str | None, typer.Option(help="Filter on this extra scorer's columns.")
    ] = None,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    seed: int = 0,
    mixed_precision: Annotated[str, typer.Option(help="no, fp16 or bf16.")] = "no",
    gradient_accumulation_steps: int = 1,
    num_workers: int = 0,
    checkpoint_every: Annotated[
        int, typer.Option(help="Also checkpoint every N optimizer steps (0: per epoch).")
    ] = 0,
    keep_checkpoints: int = 2,
    backbone: Annotated[
        str | None, typer.Option(help="timm model name for the residual branch.")
    ] = None,
    backbone_kwargs: Annotated[
        str | None, typer.Option(help="JSON overrides, e.g. '{\"img_size\": 64}'.")
    ] = None,
    backbone_input_size: int | None = None,
    backbone_pretrained: Annotated[
        bool,
        typer.Option(
            help="Start the backbone from timm weights in the local cache (never downloads)."
        ),
    ] = False,
    backbone_weights: Annotated[
        Path | None, typer.Option(help="Start the backbone from this weights file.")
    ] = None,
    svd_variant: Annotated[
        str, typer.Option(help="attention (the inference form) or mean.")
    ] = "attention",
    no_svd: Annotated[bool, typer.Option(help="Ablation: without the SVD branch.")] = False,
    no_residual: Annotated[
        bool, typer.Option(help="Ablation: without the residual branch.")
    ] = False,
    no_text: Annotated[bool, typer.Option(help="Ablation: without text injection.")] = False,
    text_reduction: Annotated[str | None, typer.Option(help="none, mean or projection.")] = None,
    text_reduction_dim: int | None = None,
    init_from: Annotated[
        str | None, typer.Option(help="Fine-tune this NPNet (folder, .pth, hub id).")
    ] = None,
    log_with: Annotated[
        str, typer.Option(help="auto (TensorBoard if installed), tensorboard or none.")
    ] = "auto",
    cpu: Annotated[bool, typer.Option(help="Train on the CPU even when a GPU exists.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON on stdout, nothing else.")
    ] = False,
) -> None:
    """Train NPNet on a Noise Prompt Dataset; resumes from OUT's latest checkpoint if any."""
    from rich.console import Console

    from golden_noise.errors import GoldenNoiseError
    from golden_noise.train import TrainConfig
    from golden_noise.train import train as run_training

    try:
        config = TrainConfig(
            dataset=dataset,
            out=out,
            batch_size=batch_size,
            epochs=epochs,
            lr=lr,
            weight_decay=weight_decay,
            lr_scheduler=lr_scheduler,
            warmup_steps=warmup_steps,
            margin=None if unfiltered else ("manifest" if margin is None else margin),
            score=score,
            val_fraction=val_fraction,
            split_seed=split_seed,
            seed=seed,
            mixed_precision=mixed_precision,
            gradient_accumulation_steps=gradient_accumulation_steps,
            num_workers=num_workers,
            checkpoint_every=checkpoint_every,
            keep_checkpoints=keep_checkpoints,
            npnet=_npnet_overrides(
                backbone,
                backbone_kwargs,
                backbone_input_size,
                svd_variant,
                no_svd,
                no_residual,
                no_text,
                text_reduction,
                text_reduction_dim,
            ),
            init_from=init_from,
            backbone_pretrained=str(backbone_weights) if backbone_weights else backbone_pretrained,
            log_with=log_with,
            cpu=cpu,
            progress=progress,
        )
        from golden_noise.cli.output import stdout_to_stderr

        with stdout_to_stderr(json_output):
            result = run_training(config)
    except GoldenNoiseError as exc:
        print_error(exc)
        raise typer.Exit(1) from exc
    if json_output:
        from dataclasses import asdict

        from golden_noise.cli.output import print_json

        print_json(asdict(result))
        return
    last = result.history[-1] if result.history else {}
    Console().print(
        f"done: best val loss {result.best_val_loss:.5f} (last: identity "
        f"{last.get('val_identity', float('nan')):.5f}, mean residual "
        f"{last.get('val_mean_residual', float('nan')):.5f}); weights in {out / 'best'}"
    )
