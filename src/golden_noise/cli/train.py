"""`golden-noise train`: Stage II, an NPNet from a Noise Prompt Dataset.

Multi-process: `accelerate launch --multi_gpu --num_processes N "$(which golden-noise)" train ...`
(GPUs, or CPU processes on a machine without GPUs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from golden_noise.cli.app import app
from golden_noise.cli.options import ConfigOptions, with_options
from golden_noise.npnet.config import NPNetConfig
from golden_noise.train.config import TrainConfig

TRAINING = ConfigOptions(
    TrainConfig,
    skip=("dataset", "margin", "npnet"),
    help={
        "out": "Run directory: last/, best/, checkpoints/, metrics.",
        "batch_size": "Global batch per forward pass (split over processes).",
        "lr_scheduler": "diffusers get_scheduler name.",
        "score": "Filter on this extra scorer's columns.",
        "checkpoint_every": "Also checkpoint every N optimizer steps (0: per epoch).",
        "init_from": "Fine-tune this NPNet (folder, .pth, hub id); one made for another family "
        "or text width keeps the tensors that fit and re-initialises (and lists) the rest.",
        "backbone_init": "Residual backbone start: auto (ImageNet for a Swin, random otherwise), "
        "imagenet (timm's weights, downloaded if not cached), random, or a weights file.",
        "log_with": "auto (TensorBoard if installed), tensorboard or none.",
        "cpu": "Train on the CPU even when a GPU exists.",
        "progress": "Hide the progress bar.",
        "objective": "mse (regress the dataset's targets, the paper's) or reward (train through "
        "the dataset's pipeline on a differentiable reward).",
        "reward": "Reward objective: differentiable reward (toy-reward-model, toy-surrogate).",
        "stay_close": "Reward objective: weight of the penalty keeping the output a standard "
        "Gaussian near its input.",
        "no_harm": "Reward objective: weight of each row's shortfall below its input noise's "
        "reward.",
        "reward_steps": "Reward objective: sampler steps per image (default: the dataset's).",
    },
)
# The architecture beyond the dataset's shapes; a flag not given keeps the trainer's choice.
ARCHITECTURE = ConfigOptions(
    NPNetConfig,
    skip=("channels", "height", "width", "text_tokens", "text_dim", "family"),
    every=True,
    help={
        "svd_variant": "attention (the authors' inference form) or mean (their trainer's).",
        "backbone": "timm model name for the residual branch.",
        "backbone_kwargs": "JSON arguments of the residual branch, over the default branch's "
        "own when no branch is named, e.g. '{\"width\": 128}' for a prompt-offset net.",
        "residual_kind": "timm (released; default for 4x128x128 latents), unet (cross-attention "
        "UNet at latent resolution; default for other shapes unless --backbone is given) "
        "or prompt-offset (an offset from the prompt alone, the same for every seed; "
        "it brings keep_norm and no SVD or text injection unless those flags are given; the "
        "default for a prompt-offset teacher's data).",
        "keep_norm": "Rescale golden noise to the input noise's norm: direction only, never "
        "temperature.",
        "use_svd": "Ablation: without the SVD branch.",
        "use_residual": "Ablation: without the residual branch.",
        "use_text": "Ablation: without text injection.",
    },
)


@app.command("train")
@with_options(TRAINING, ARCHITECTURE)
def train_command(
    dataset: Annotated[
        Path,
        typer.Argument(help="Noise Prompt Dataset directory (from collect or import-authors)."),
    ],
    margin: Annotated[
        float | None,
        typer.Option(
            help="Keep rows with score_source + margin < score_target (default: the manifest's)."
        ),
    ] = None,
    unfiltered: Annotated[
        bool, typer.Option("--unfiltered", help="Train on every pair, whatever its scores.")
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON on stdout, nothing else.")
    ] = False,
    **options: Any,
) -> None:
    """Train NPNet on a Noise Prompt Dataset; resumes from OUT's latest checkpoint if any."""
    from rich.console import Console

    from golden_noise.train import train as run_training

    config = TrainConfig(
        dataset=dataset,
        margin=None if unfiltered else ("manifest" if margin is None else margin),
        npnet=ARCHITECTURE.values(options),
        **TRAINING.values(options),
    )
    from golden_noise.cli.output import stdout_to_stderr

    with stdout_to_stderr(json_output):
        result = run_training(config)
    from accelerate import PartialState

    if not PartialState().is_main_process:  # every rank trains; one summary is printed
        return
    if json_output:
        from dataclasses import asdict

        from golden_noise.cli.output import print_json

        print_json(asdict(result))
        return
    last = result.history[-1] if result.history else {}
    if config.objective == "reward":
        baselines = (
            f"reward {last.get('val_reward', float('nan')):.5f}, identity "
            f"{last.get('val_reward_identity', float('nan')):.5f}"
        )
    else:
        baselines = (
            f"identity {last.get('val_identity', float('nan')):.5f}, mean residual "
            f"{last.get('val_mean_residual', float('nan')):.5f}"
        )
    Console().print(
        f"done: best val loss {result.best_val_loss:.5f} (last: {baselines}); "
        f"weights in {config.out / 'best'}"
    )
