"""Options built from config dataclasses: one option per field, English flags, unset overrides."""

import dataclasses
from typing import Any, Literal

import pytest
import typer
from typer.testing import CliRunner

from golden_noise.cli import app
from golden_noise.cli.options import ConfigOptions, with_options
from golden_noise.core.errors import GoldenNoiseError
from golden_noise.npnet import NPNet, NPNetConfig
from golden_noise.train import TrainConfig


@dataclasses.dataclass
class Settings:
    size: int = 3
    mode: Literal["fast", "exact"] = "fast"
    use_cache: bool = True
    verbose: bool = False
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


def _run(group, *args):
    seen = {}
    command = typer.Typer()

    @command.command()
    @with_options(group)
    def main(name: str = "x", **options: Any) -> None:
        seen.update(group.values(options), name=name)

    result = CliRunner().invoke(command, list(args))
    return result, seen


def test_each_field_is_an_option_with_its_default_and_english_flags():
    group = ConfigOptions(Settings, help={"size": "How many."})
    result, seen = _run(group)
    assert result.exit_code == 0, result.output
    assert seen == {**dataclasses.asdict(Settings()), "name": "x"}
    args = ["--size", "5", "--mode", "exact", "--no-cache", "--verbose", "--extra", '{"a": 1}']
    result, seen = _run(group, *args)
    assert result.exit_code == 0, result.output
    assert seen == {"size": 5, "mode": "exact", "use_cache": False, "verbose": True,
                    "extra": {"a": 1}, "name": "x"}  # fmt: skip
    assert _run(group, "--no-no-cache")[0].exit_code == 2  # no double negatives
    assert _run(group, "--mode", "slow")[0].exit_code == 2  # Literal fields are choices
    with pytest.raises(GoldenNoiseError, match="--extra must be a JSON object"):
        group.values({"size": 3, "mode": "fast", "no_cache": False, "verbose": False,
                      "extra": "[1]"})  # fmt: skip


def test_unset_options_leave_the_configuration_to_the_caller():
    group = ConfigOptions(Settings, every=True, rename={"use_cache": "fresh"})
    assert _run(group)[1] == {"name": "x"}
    assert _run(group, "--fresh", "--size", "7")[1] == {"use_cache": False, "size": 7, "name": "x"}


def test_train_has_an_option_for_every_config_field(tmp_path, monkeypatch):
    """A field added to TrainConfig or NPNetConfig reaches `golden-noise train` unedited."""
    import golden_noise.train

    seen = {}
    monkeypatch.setattr(golden_noise.train, "train", lambda config: seen.setdefault("c", config))
    args = ["train", str(tmp_path / "ds"), "--out", str(tmp_path / "run"), "--no-svd",
            "--svd-heads", "2", "--no-progress", "--cpu", "--keep-checkpoints", "5",
            "--unfiltered"]  # fmt: skip
    CliRunner().invoke(app, args)
    config = seen["c"]
    assert config.npnet == {"use_svd": False, "svd_heads": 2}
    expected = TrainConfig(tmp_path / "ds", tmp_path / "run", keep_checkpoints=5, cpu=True,
                           progress=False, margin=None, npnet=config.npnet)  # fmt: skip
    assert config == expected
    command = typer.main.get_command(app).commands["train"]
    options = {opt for param in command.params for opt in param.opts}
    shapes = {"channels", "height", "width", "text_tokens", "text_dim", "family"}
    flags = {"use_svd": "no-svd", "use_residual": "no-residual", "use_text": "no-text"}
    for field in dataclasses.fields(NPNetConfig):
        if field.name not in shapes:
            assert f"--{flags.get(field.name, field.name.replace('_', '-'))}" in options
    for field in dataclasses.fields(TrainConfig):
        if field.name not in {"dataset", "npnet", "progress"}:
            assert f"--{field.name.replace('_', '-')}" in options, field.name
    assert "--no-progress" in options and "--no-no-svd" not in options


def test_collect_builds_its_settings_from_their_dataclasses(monkeypatch, tmp_path):
    import golden_noise.adapters.loading
    import golden_noise.collection.collect
    from golden_noise.collection.collect import SeedPlan
    from golden_noise.teachers import SamplerSettings
    from golden_noise.teachers.redenoise_step import RedenoiseSettings
    from golden_noise.toy import DEFAULT_GUIDANCE

    seen = {}

    def fake_collect(pipe, prompts, out, scorer, **kwargs):
        seen.update(kwargs)
        raise GoldenNoiseError("stop here")

    monkeypatch.setattr(golden_noise.adapters.loading, "pipeline_from_spec", lambda *a, **k: None)
    monkeypatch.setattr(golden_noise.collection.collect, "collect", fake_collect)
    args = [
        "collect",
        "-p",
        "toy:train:2",
        "--out",
        "unused",
        "--shared-seeds",
        "--seeds-per-prompt",
    ]
    args += ["3", "--sampler", "pipeline", "--steps", "7", "--redenoise-steps", "4", "--w-l", "3"]
    result = CliRunner().invoke(app, args)
    assert "stop here" in result.output, result.output
    assert seen["seeds"] == SeedPlan(per_prompt=3, distinct=False)
    assert seen["sampler"] == SamplerSettings(7, DEFAULT_GUIDANCE, "pipeline")
    assert seen["teacher"].settings == RedenoiseSettings(steps=4, w_l=3.0)
    CliRunner().invoke(app, ["collect", "-p", "toy:train:2", "--out", "unused", "--steps", "5"])
    assert seen["teacher"].settings.steps == 5  # re-denoise follows --steps unless given
    assert seen["seeds"] == SeedPlan()
    args = ["collect", "-p", "toy:train:2", "--out", "unused", "--teacher", "prompt-offset"]
    CliRunner().invoke(app, [*args, "--offset-iters", "7", "--offset-lr", "0.2"])
    assert seen["teacher"].options() == {
        "reward": "toy-reward-model", "iters": 7, "noises": 4, "lr": 0.2, "stay_close": 0.3,
    }  # fmt: skip
    config = NPNetConfig(channels=4, height=8, width=8, text_tokens=16, text_dim=64,
                         residual_kind="prompt-offset", use_svd=False, use_text=False)  # fmt: skip
    NPNet(config).save_pretrained(tmp_path / "po")
    CliRunner().invoke(app, [*args, "--offset-init", str(tmp_path / "po")])
    assert seen["teacher"].options()["init"] == str(tmp_path / "po")
    CliRunner().invoke(app, [*args, "--offset-modes", "3"])
    assert seen["teacher"].options()["modes"] == 3
    args = ["collect", "-p", "toy:train:2", "--out", "unused", "--teacher", "reward-gradient"]
    CliRunner().invoke(app, [*args, "--reward", "toy-reward-model"])  # not its default
    assert seen["teacher"].options()["reward"] == "toy-reward-model"
