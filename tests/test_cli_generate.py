"""`golden-noise generate` end to end on a tiny pipeline and NPNet saved to temp folders."""

import numpy as np
import pytest
from cli_outcome import assert_refused, run_cli
from PIL import Image
from tiny_pipelines import build_sd, make_identity, tiny_npnet
from typer.testing import CliRunner

from golden_noise.cli import app
from golden_noise.cli.options import parse_seeds
from golden_noise.core.errors import GoldenNoiseError
from golden_noise.evaluation.report.grid import CELL, HEADER, LABEL_WIDTH, PAD
from golden_noise.prompts.sources import read_prompt_sources

ROW = CELL + PAD
WIDE = LABEL_WIDTH + 2 * ROW + PAD  # two arms


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("saved")
    build_sd().save_pretrained(root / "pipe")
    tiny_npnet(32, 16).save_pretrained(root / "npnet")
    make_identity(tiny_npnet(32, 16)).save_pretrained(root / "identity")
    return root


def _run(saved, *args):
    base = ["generate", "--pipeline", str(saved / "pipe"), "--steps", "2", "--device", "cpu"]
    return CliRunner().invoke(app, [*base, *args])


def test_golden_images_for_each_prompt_and_seed(saved, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red cube\n\n  a blue ball  \n")
    out = tmp_path / "out"
    args = ["--npnet", str(saved / "npnet"), "--prompts", str(prompts), "--seeds", "3-4"]
    result = _run(saved, *args, "--out", str(out))
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ["000-s3.png", "000-s4.png", "001-s3.png", "001-s4.png", "prompts.txt"]
    assert (out / "prompts.txt").read_text() == '000\t"a red cube"\n001\t"a blue ball"\n'
    assert Image.open(out / "001-s4.png").size == (32, 32)


def test_compare_writes_pairs_and_the_demos_labelled_grids(saved, tmp_path):
    out = tmp_path / "out"
    args = ["--npnet", str(saved / "identity"), "-p", "a red cube", "-p", "a blue ball"]
    result = _run(saved, *args, "--seeds", "0,1", "--compare", "--out", str(out))
    assert result.exit_code == 0, result.output
    for index in ("000", "001"):
        for seed in (0, 1):
            standard = np.asarray(Image.open(out / f"{index}-s{seed}-standard.png"), dtype=int)
            golden = np.asarray(Image.open(out / f"{index}-s{seed}-golden.png"), dtype=int)
            # Identity NPNet: same image up to a rounding flip of the 8-bit PNG.
            assert np.abs(standard - golden).max() <= 1
        # the demo's grid: a row per seed (prompt and seed written), a column per arm
        assert Image.open(out / f"{index}-compare.png").size == (WIDE, HEADER + 2 * ROW + PAD)
    grid = Image.open(out / "grid.png").convert("RGB")
    assert grid.size == (WIDE, HEADER + 4 * ROW + PAD)
    left = LABEL_WIDTH + ROW + PAD  # the first row's golden cell: the image, upscaled
    cell = grid.crop((left, HEADER, left + CELL, HEADER + CELL))
    shown = Image.open(out / "000-s0-golden.png").convert("RGB")
    assert cell.tobytes() == shown.resize((CELL, CELL), Image.Resampling.NEAREST).tobytes()


def test_user_errors_exit_with_a_clear_message(saved, tmp_path):
    no_prompt = _run(saved, "--npnet", str(saved / "npnet"), "--out", str(tmp_path))
    assert no_prompt.exit_code == 1
    assert "expected at least one prompt" in no_prompt.output
    no_net = _run(saved, "-p", "a cat", "--out", str(tmp_path))
    assert no_net.exit_code == 1 and "--npnet is required" in no_net.output
    nope = str(tmp_path / "nope")
    missing = _run(saved, "--npnet", str(saved / "npnet"), "--prompts", nope, "--out", nope)
    assert missing.exit_code == 1 and "no such file" in missing.output
    args = ["--npnet", str(saved / "npnet"), "-p", "a cat", "--height", "64"]
    wrong_size = _run(saved, *args, "--out", str(tmp_path))
    assert wrong_size.exit_code == 1 and "--resize-noise" in wrong_size.output


def test_a_net_for_another_text_width_is_refused_before_any_file_is_written(saved, tmp_path):
    out = tmp_path / "genx"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    narrow = tmp_path / "narrow"
    tiny_npnet(16, 16).save_pretrained(narrow)  # the pipeline's text encoder is 32 wide
    base = ["generate", "--pipeline", saved / "pipe", "--steps", "2", "--device", "cpu"]
    refused = run_cli(*base, "--npnet", narrow, "-p", "a red circle", "--out", out)
    assert_refused(*refused, "prompt embedding 77x16", "77x32")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert (out / "notes.txt").read_bytes() == b"mine\n"
    code, output = run_cli(*base, "--npnet", saved / "npnet", "-p", "a red circle", "--out", out)
    assert code == 0, output


def test_resize_noise_flag_runs_a_net_made_for_another_size(saved, tmp_path):
    args = ["--npnet", str(saved / "npnet"), "-p", "a cat", "--height", "64", "--width", "48"]
    result = _run(saved, *args, "--resize-noise", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "000-s0.png").size == (48, 64)


def test_parse_seeds():
    assert parse_seeds("0-2, 10") == [0, 1, 2, 10]
    for bad in ("a", "3-1", " , "):
        with pytest.raises(GoldenNoiseError):
            parse_seeds(bad)


def test_prompts_option_takes_sources_and_prompts_alike(tmp_path):
    listed = tmp_path / "p.txt"
    listed.write_text("a red cube\n")
    given = ["a blue ball", str(listed), "cat", "a red cube", "toy:train:1"]
    texts, _ = read_prompt_sources(given)
    assert texts[:3] == ["a blue ball", "a red cube", "cat"] and len(texts) == 4
    for source in ("missing.txt", "prompts.csv", "./missing"):
        with pytest.raises(GoldenNoiseError, match="no such file"):
            read_prompt_sources([source])
