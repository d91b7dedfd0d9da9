"""`golden-noise toy-train` and `toy-eval`: rebuild the shipped toy pipeline, measure it."""

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from golden_noise.cli.app import app
from golden_noise.cli.options import ConfigOptions, with_options
from golden_noise.toy.recipe import RewardRecipe, ToyRecipe

RECIPE = ConfigOptions(
    ToyRecipe,
    help={
        "seed": "Seeds weights, data and noise.",
        "tiny": "Minute components, for smoke tests (with short warmup and checkpoint defaults).",
        "batch_size": "Scenes per step.",
        "vae_steps": "VAE training steps.",
        "unet_steps": "UNet + text encoder training steps.",
        "warmup_steps": "Linear warmup steps of each phase's learning rate (default "
        f"{ToyRecipe.warmup_steps}; with --tiny 1, unless given).",
        "checkpoint_every": f"Steps between checkpoints (default {ToyRecipe.checkpoint_every}; "
        "with --tiny the shorter phase's steps, unless given).",
        "threads": "Torch threads (default: the faster of 1 and 2).",
    },
    unset=("warmup_steps", "checkpoint_every"),
)


@app.command("toy-train")
@with_options(RECIPE)
def toy_train(
    out: Annotated[
        Path, typer.Option(help="Run directory: checkpoints, then pipeline/ (resumable).")
    ],
    minutes: Annotated[
        float | None,
        typer.Option(help="Stop the UNet phase after this wall time (not reproducible)."),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    **options: Any,
) -> None:
    """Train the toy pipeline from a seed: VAE, then UNet and text encoder with EMA and CFG.

    A run resumes only with the settings it was started with (its train_config.json)."""
    from golden_noise.toy.train import train_toy_pipeline

    values = RECIPE.values(options)
    if values["tiny"]:  # a few steps: defaults that fit them, unless given
        steps = min(values["vae_steps"], values["unet_steps"])
        values.setdefault("checkpoint_every", max(1, steps))
        values.setdefault("warmup_steps", 1)
    config = ToyRecipe(**values)
    print(f"pipeline written to {train_toy_pipeline(out, config, minutes, progress)}")


# What --grid may be written as: Pillow picks the format from the extension.
GRID_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def _check_outputs(grid_out: Path | None, json_out: Path | None) -> None:
    """Before measuring (minutes): refuse outputs that exist, that the end of the run could
    not write, or that one would overwrite with the other."""
    from golden_noise.core.errors import GoldenNoiseError

    for option, path in (("--grid", grid_out), ("--json", json_out)):
        _check_new_file(option, path)
    if grid_out is not None and grid_out.suffix.lower() not in GRID_SUFFIXES:
        raise GoldenNoiseError(
            f"--grid {grid_out}: expected an image file ending in {', '.join(GRID_SUFFIXES)}, "
            f"got {grid_out.suffix or 'no extension'}"
        )
    if grid_out is not None and json_out is not None and grid_out.resolve() == json_out.resolve():
        raise GoldenNoiseError(
            f"--grid and --json both name {grid_out}; the numbers would overwrite the grid: "
            "give each its own path"
        )


def _check_new_file(option: str, path: Path | None) -> None:
    """Before measuring: like every command's outputs, a file there is never overwritten."""
    from golden_noise.core.errors import GoldenNoiseError

    if path is None:
        return
    if path.exists():
        raise GoldenNoiseError(
            f"{option} {path} already exists; toy-eval writes a new file and never overwrites "
            "one: choose another path, or delete it"
        )
    if not path.parent.is_dir():
        raise GoldenNoiseError(f"{option} {path}: expected an existing folder {path.parent}")


@app.command("toy-eval")
def toy_eval(
    split: Annotated[str, typer.Option(help="train, validation or heldout.")] = "heldout",
    seeds: Annotated[int, typer.Option(help="Seeds per prompt.")] = 8,
    guidance: Annotated[
        float | None, typer.Option(help="Guidance scale [default: DEFAULT_GUIDANCE].")
    ] = None,
    steps: Annotated[
        int | None, typer.Option(help="Sampling steps [default: DEFAULT_STEPS].")
    ] = None,
    pipeline_dir: Annotated[
        Path | None, typer.Option(help="Another run's pipeline/ directory.")
    ] = None,
    grid_out: Annotated[
        Path | None, typer.Option("--grid", help="Also draw 8 prompts x the seeds to this PNG.")
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the numbers here.")
    ] = None,
) -> None:
    """Correct rate per prompt type and the share of seed-dependent prompts."""
    from rich.console import Console
    from rich.table import Table

    from golden_noise.toy.finite import check_finite_pipeline
    from golden_noise.toy.grammar import sample_prompts
    from golden_noise.toy.pipeline import DEFAULT_GUIDANCE, DEFAULT_STEPS, load_pipeline
    from golden_noise.toy.quality import generate, grid, measure

    _check_outputs(grid_out, json_out)
    guidance = DEFAULT_GUIDANCE if guidance is None else guidance
    steps = DEFAULT_STEPS if steps is None else steps
    pipe = load_pipeline(path=pipeline_dir)
    check_finite_pipeline(pipe, pipeline_dir or "the package")
    q = measure(pipe, split, seeds, guidance, steps)
    table = Table(title=f"toy quality: {split}, {seeds} seeds, guidance {guidance}, {steps} steps")
    for col in ("type", "correct", "soft", "seed-dependent prompts"):
        table.add_column(col)
    for t, rate in q.correct.items():
        table.add_row(t, f"{rate:.3f}", f"{q.soft[t]:.3f}", f"{q.seed_dependent[t]:.3f}")
    table.add_row("overall", f"{q.overall_correct:.3f}", "", f"{q.overall_seed_dependent:.3f}")
    Console().print(table)
    print(f"{q.images} images; {q.seconds_per_batch:.2f} s per batch of 64")
    if grid_out is not None:
        rows = sample_prompts(8, seed=0, split=split)
        images = generate(
            pipe, [p for p in rows for _ in range(seeds)], list(range(seeds)) * 8, guidance, steps
        )
        grid(images, rows).save(grid_out)
    if json_out is not None:
        record = {"split": split, "seeds": seeds, "guidance": guidance, "steps": steps}
        record |= asdict(q) | {
            "overall_correct": q.overall_correct,
            "overall_seed_dependent": q.overall_seed_dependent,
        }
        json_out.write_text(json.dumps(record, indent=2))


REWARD_RECIPE = ConfigOptions(
    RewardRecipe,
    help={
        "images": "Images to draw and score exactly (whole chunks of 256).",
        "epochs": "Passes over the training images.",
        "batch_size": "Images per step.",
        "lr": "Peak learning rate (one-cycle schedule).",
        "width": "Channels of the first block.",
        "seed": "Seeds prompts, noise scales, split and weights.",
    },
)


@app.command("toy-reward")
@with_options(REWARD_RECIPE)
def toy_reward(
    out: Annotated[Path, typer.Option(help="Run directory: images/, then reward_model/.")],
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    **options: Any,
) -> None:
    """Fit the toy reward model (the toy's differentiable preference model) to the exact scorer."""
    from golden_noise.toy.reward_fit import fit_reward_model

    fit = fit_reward_model(out, RewardRecipe(**REWARD_RECIPE.values(options)), progress)
    print(
        f"reward model written to {out / 'reward_model'}: held-out images {fit['val_images']}, "
        f"Pearson {fit['val_pearson']:.3f} with the exact soft score (mse {fit['val_mse']:.4f})"
    )
