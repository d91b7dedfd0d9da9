"""The README's claims that code can check: its Python example, its numbers about the toy
world, the commands and defaults it names."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import torch
import typer
from typer.testing import CliRunner

README = (Path(__file__).parents[1] / "README.md").read_text()


def _once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"the README example no longer contains {old!r}"
    return text.replace(old, new)


def test_readme_python_example_runs_on_the_toy_pipeline():
    """The first Python block, run as written with only the names swapped: the SDXL class
    and hub id -> the shipped toy pipeline folder, the authors' weights -> the shipped toy
    NPNet, "cuda" -> "cpu". Its latents must be the shipped NPNet's edit of the seed's own
    noise, and it must produce an image."""
    from golden_noise.toy import load_npnet
    from golden_noise.toy.npnet import NPNET_DIR
    from golden_noise.toy.pipeline import WEIGHTS_DIR

    code = re.search(r"```python\n(.*?)```", README, re.DOTALL).group(1)
    code = _once(code, "StableDiffusionXLPipeline\n", "StableDiffusionPipeline\n")
    code = _once(
        code,
        "StableDiffusionXLPipeline.from_pretrained(",
        "StableDiffusionPipeline.from_pretrained(",
    )
    code = _once(code, '"stabilityai/stable-diffusion-xl-base-1.0"', repr(str(WEIGHTS_DIR)))
    code = _once(
        code, '"Klayand/GoldenNoiseModel", pipe, filename="sdxl.pth"', f"{str(NPNET_DIR)!r}, pipe"
    )
    code = code.replace('"cuda"', '"cpu"')
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102
    image, latents, pipe = namespace["image"], namespace["latents"], namespace["pipe"]
    assert image.size == (32, 32) and latents.shape == (1, 4, 8, 8)
    assert latents.dtype == torch.float16  # the example loads the pipeline in float16
    # independently: the shipped NPNet's edit of the seed's own float16 draw, run in float32
    draw = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float16)
    tokens = pipe.encode_prompt("a red fox in the snow", "cpu", 1, False)[0]
    with torch.no_grad():
        expected = load_npnet()(draw.float(), tokens.float()).half()
    assert torch.equal(latents, expected)


def test_readme_toy_row_matches_the_shipped_pipeline():
    from golden_noise.adapters import adapter_for
    from golden_noise.toy import load_pipeline

    row = next(line for line in README.splitlines() if line.startswith("| `toy` |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    adapter = adapter_for(load_pipeline())
    channels, height, width = adapter.latent_shape(1)[1:]
    assert cells[2].startswith(f"{channels}x{height}x{width} (32 px)")
    assert cells[3] == "{}x{}".format(*adapter.text_shape())


def test_readme_parameter_count_is_the_shipped_npnets():
    from golden_noise.toy import load_npnet

    stated = re.search(r"a ([\d,]+)-parameter prompt-offset NPNet", README).group(1)
    assert int(stated.replace(",", "")) == sum(p.numel() for p in load_npnet().parameters())


def test_readme_scorer_defaults_are_the_cli_defaults():
    """README: collect defaults to toy-soft on every pipeline; evaluate to hpsv2.1 on real
    pipelines (toy-soft and toy-correct on the toy)."""
    from golden_noise.cli import collect as collect_cli
    from golden_noise.cli import evaluate as evaluate_cli

    assert "`collect` defaults to `toy-soft` on every" in README
    command = next(
        f for name, f in inspect.getmembers(collect_cli, inspect.isfunction) if name == "collect"
    )
    from golden_noise.collection.recipes import RECIPES

    # not given, the scorer is the recipe's: the default recipe's is toy-soft
    assert inspect.signature(command).parameters["scorer"].default is None
    assert RECIPES["default"].scorer == "toy-soft"
    assert "`hpsv2.1` (`evaluate`'s default on real pipelines" in README
    assert evaluate_cli.DEFAULT_SCORERS == "hpsv2.1"
    assert evaluate_cli.TOY_SCORERS == "toy-soft,toy-correct"


def test_every_command_in_the_readme_table_exists_with_help():
    from golden_noise.cli import app

    table = README.split("## Command line", 1)[1].split("\n\n", 2)[1]
    commands = sorted(set(re.findall(r"`golden-noise ([a-z-]+)", table)) | {"toy-eval"})
    registered = set(typer.main.get_command(app).commands)
    assert set(commands) == registered, set(commands) ^ registered  # each command listed once
    for command in commands:
        result = CliRunner().invoke(app, [command, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output, (command, result.output)


def test_readme_defaults_are_the_codes():
    """ "AdamW, batch 64, 30 epochs, lr 1e-4 by default"; re-denoise "DDIM, first timestep of a
    10-step schedule, CFG 5.5 -> 1.0, exact inversion"; the toy's "DDIM 20 steps, guidance 2.0"."""
    from golden_noise.teachers.redenoise_step import RedenoiseSettings
    from golden_noise.toy.pipeline import DEFAULT_GUIDANCE, DEFAULT_STEPS
    from golden_noise.train import TrainConfig

    assert "train NPNet (AdamW, batch 64, 30 epochs, lr 1e-4 by default)" in README
    config = TrainConfig(dataset=Path("npd"), out=Path("run"))
    assert (config.batch_size, config.epochs, config.lr) == (64, 30, 1e-4)
    assert "DDIM, first timestep of a 10-step schedule, CFG 5.5 -> 1.0, exact inversion" in README
    settings = RedenoiseSettings()
    assert (settings.steps, settings.w_l, settings.w_w, settings.inversion) == (
        10,
        5.5,
        1.0,
        "exact",
    )
    assert "(DDIM 20 steps, guidance 2.0" in README
    assert (DEFAULT_STEPS, DEFAULT_GUIDANCE) == (20, 2.0)
