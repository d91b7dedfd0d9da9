"""`collect --recipe authors`: the released collector's settings in one option, in the manifest."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from golden_noise.cli import app
from golden_noise.collection.recipes import resolve_recipe
from golden_noise.core.errors import GoldenNoiseError
from golden_noise.dataset import DatasetManifest
from golden_noise.teachers.settings import RedenoiseSettings, SamplerSettings

AUTHORS_REDENOISE = {"steps": 50, "w_l": 5.5, "w_w": 0.0, "inversion": "authors"}


def test_the_authors_recipe_is_the_released_collectors_settings() -> None:
    chosen = resolve_recipe("authors", {}, {}, None, None)
    assert chosen.sampler == {"steps": 50, "guidance": 5.5, "scheduler": "ddim"}
    assert chosen.redenoise == AUTHORS_REDENOISE
    assert (chosen.scorer, chosen.margin, chosen.note) == ("hpsv2.1", 0.0, {"name": "authors"})
    SamplerSettings(**chosen.sampler), RedenoiseSettings(**chosen.redenoise)  # both valid


def test_given_options_win_and_are_recorded_the_default_recipe_is_unchanged() -> None:
    chosen = resolve_recipe("authors", {"steps": 10}, {"w_w": 1.0, "repeats": 1}, "x", None)
    assert chosen.sampler["steps"] == 10 and chosen.redenoise["w_w"] == 1.0
    overridden = {"sampler.steps": 10, "redenoise.w_w": 1.0, "scorer": "x"}
    assert chosen.note == {"name": "authors", "overridden": overridden}
    default = resolve_recipe("default", {}, {"timestep_spacing": None}, None, None)
    assert (default.sampler, default.redenoise) == ({}, {})  # the dataclasses' own defaults
    assert (default.scorer, default.margin) == ("toy-soft", 0.0)
    with pytest.raises(GoldenNoiseError, match="unknown recipe 'paper'; expected one of"):
        resolve_recipe("paper", {}, {}, None, None)


def test_collect_with_the_authors_recipe_records_it_in_the_manifest(tmp_path: Path) -> None:
    """On the toy pipeline, scored by toy-soft (HPSv2.1 would need its weights): every other
    setting is the recipe's and the manifest says so."""
    out = tmp_path / "npd"
    args = ["collect", "-p", "toy:train:2", "--out", str(out), "--recipe", "authors"]
    args += ["--scorer", "toy-soft", "--no-progress", "--batch-size", "2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    manifest = DatasetManifest.load(out)
    assert manifest.sampler["steps"] == 50 and manifest.sampler["guidance"] == 5.5
    assert manifest.sampler["scheduler"] == "ddim"
    assert {k: manifest.teacher_options[k] for k in AUTHORS_REDENOISE} == AUTHORS_REDENOISE
    assert (manifest.w_l, manifest.w_w, manifest.margin) == (5.5, 0.0, 0.0)
    assert manifest.notes["recipe"] == {"name": "authors", "overridden": {"scorer": "toy-soft"}}
