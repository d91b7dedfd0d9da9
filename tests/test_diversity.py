"""Diversity among a prompt's seeds: the number, its pairing with standard, and where it shows."""

import json

import numpy as np
import pytest
from PIL import Image
from tiny_pipelines import build_sd, tiny_npnet

from golden_noise.evaluation.diversity import (
    SIDE,
    compare_diversity,
    pairwise_distance,
    prompt_diversity,
)
from golden_noise.evaluation.evaluate import Generation, evaluate
from golden_noise.evaluation.report import ImageRow
from golden_noise.evaluation.report.rows import ratio_label
from golden_noise.generation import arms
from golden_noise.generation.generate import GoldenNoise
from golden_noise.scorers import get_scorer


def test_pairwise_distance_is_the_mean_rms_over_pairs() -> None:
    images = np.random.default_rng(0).random((5, 8, 8, 3))
    direct = [
        np.sqrt(np.mean((images[i] - images[j]) ** 2)) for i in range(5) for j in range(i + 1, 5)
    ]
    # the Gram form cancels sums of ~200 squares in float64: error ~1e-14, far below 1e-9
    assert pairwise_distance(images) == pytest.approx(np.mean(direct), rel=1e-9)
    black, white = np.zeros((4, 4, 3)), np.ones((4, 4, 3))
    assert pairwise_distance(np.stack([black, white])) == pytest.approx(1.0, abs=1e-12)
    assert pairwise_distance(np.stack([white, white, white])) == 0.0


def _save(folder, name: str, value: float, size: int = 16) -> str:
    Image.fromarray(np.full((size, size, 3), round(value * 255), np.uint8)).save(folder / name)
    return name


def test_each_arm_is_paired_with_standard_prompt_by_prompt(tmp_path) -> None:
    """Two prompts with two seeds and one with a single seed (left out). Standard images of a
    prompt are black and white (distance 1) or black and grey; "same" draws one picture for
    every seed (distance 0); "copy" is standard itself."""
    shades = {"p": (0.0, 1.0), "q": (0.0, 0.2), "lonely": (0.5,)}
    rows = []
    for prompt, values in shades.items():
        for seed, value in enumerate(values):
            for arm, shade in (("standard", value), ("same", 0.0), ("copy", value)):
                name = _save(tmp_path, f"{prompt}-{seed}-{arm}.png", shade)
                rows.append(ImageRow(0, prompt, seed, arm, name))
    per_arm = prompt_diversity(tmp_path, rows)
    assert set(per_arm["standard"]) == {"p", "q"}  # one seed: no pairs
    assert per_arm["standard"]["p"] == pytest.approx(1.0)
    assert per_arm["standard"]["q"] == pytest.approx(51 / 255)  # 8-bit grey 0.2
    found = compare_diversity(per_arm, resamples=100)
    assert found["prompts"] == 2
    same, copy = found["vs_standard"]["same"], found["vs_standard"]["copy"]
    assert same["ratio"] == 0.0 and (same["wins"], same["losses"]) == (0, 2)
    assert same["mean_diff"] == pytest.approx(-(1.0 + 51 / 255) / 2)
    assert copy["ratio"] == 1.0 and copy["ties"] == 2
    assert compare_diversity({"standard": {}, "golden": {}}) is None
    flat = compare_diversity({"standard": {"p": 0.0}, "golden": {"p": 0.1}}, resamples=100)
    assert np.isnan(flat["vs_standard"]["golden"]["ratio"])  # no spread to compare with
    assert ratio_label(flat["vs_standard"]["golden"]) == " (no ratio)"
    assert ratio_label(same) == " (0.00x)" and ratio_label({"mean_arm": 1.0}) == ""


def test_large_images_are_resized_without_changing_the_distance(tmp_path) -> None:
    big = [_save(tmp_path, f"{v}.png", v, size=4 * SIDE) for v in (0.0, 1.0)]
    rows = [ImageRow(0, "p", seed, "standard", name) for seed, name in enumerate(big)]
    assert prompt_diversity(tmp_path, rows)["standard"]["p"] == pytest.approx(1.0)


def _evaluate(folder, seeds: list[int]) -> dict:
    """standard and a random NPNet's golden arm on a tiny SD pipeline, two toy prompts."""
    pipe = build_sd()
    pipe.set_progress_bar_config(disable=True)
    made = {"standard": arms.standard(), "golden": arms.golden(GoldenNoise(tiny_npnet(32), pipe))}
    generation = Generation(pipe, made, {"num_inference_steps": 2}, batch_size=3)
    samples = arms.make_samples(["a red circle", "two blue squares"], seeds)
    return evaluate(folder, [get_scorer("toy-soft")], samples=samples, generation=generation,
                    show_progress=False, resamples=100)  # fmt: skip


def test_evaluate_reports_diversity_when_prompts_have_several_seeds(tmp_path) -> None:
    summary = _evaluate(tmp_path, [0, 1, 2])
    found = summary["diversity"]
    assert found["prompts"] == 2 and set(found["vs_standard"]) == {"golden"}
    saved = json.loads((tmp_path / "metrics.json").read_text())["summary"]["diversity"]
    assert saved["vs_standard"]["golden"]["n"] == 2
    page = (tmp_path / "report.html").read_text()
    assert "<h2>Diversity</h2>" in page and "pixel-diversity" in page
    assert _evaluate(tmp_path / "one", [0])["diversity"] is None
    assert "diversity was not measured" in (tmp_path / "one" / "report.html").read_text()
