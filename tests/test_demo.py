"""The demo orchestration and study on a tiny toy-architecture pipeline (random weights).

Whether golden noise *helps* is measured on the trained toy by `golden-noise demo` itself;
here we check the plumbing: stages, seed and split separation, the teacher choice, the offset
recipe's data and net, batched arms equal to one-image arms, resuming without regenerating,
the study's arms and nets.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from PIL import Image
from typer.testing import CliRunner

from golden_noise.cli import app
from golden_noise.core.errors import GoldenNoiseError
from golden_noise.dataset import DatasetManifest, NoisePromptDataset, RowTable
from golden_noise.demo import DemoConfig, run_demo, run_study
from golden_noise.demo.config import EVAL_SEED_OFFSET, VALIDATION_SEED_OFFSET
from golden_noise.demo.stages import heldout_samples
from golden_noise.demo.study import ABLATIONS, SAMPLERS
from golden_noise.evaluation.evaluate import MADE_FOR_KEY, NORM_RATIO_KEY
from golden_noise.generation.generate import GoldenNoise
from golden_noise.npnet import NPNet, NPNetConfig
from golden_noise.toy import components
from golden_noise.toy.grammar import prompt_type, split_of
from golden_noise.toy.tokenizer import build_tokenizer

TINY = DemoConfig(
    name="test",
    validation_rows=4,
    collect_rows=16,
    eval_samples=6,
    epochs=1,
    steps=2,
    margin=-1.0,  # a random pipeline rarely improves: keep every pair so training has rows
    batch_size=2,
    generation_batch_size=4,
    study_samples=4,
    sampler_samples=2,
    npnet={
        "backbone": "vit_tiny_patch16_224",
        "backbone_kwargs": {
            "img_size": 8,
            "patch_size": 4,
            "embed_dim": 16,
            "depth": 1,
            "num_heads": 2,
        },
        "backbone_input_size": 8,
        "svd_hidden": 8,
        "svd_mlp_hidden": 16,
        "svd_heads": 2,
    },
    fit_prompts=4,
    composed_prompts=12,
    offset_fit={"iters": 1, "fit_steps": 1, "lr": 0.15, "noises": 2},
    offset_net={"width": 16, "layers": 1, "heads": 2},
    net_epochs=1,
    net_batch_size=4,
    recipe_steps=1,
)


def tiny_toy_pipeline() -> StableDiffusionPipeline:
    torch.manual_seed(0)
    pipe = StableDiffusionPipeline(
        vae=components.build_vae(tiny=True),
        text_encoder=components.build_text_encoder(tiny=True),
        tokenizer=build_tokenizer(),
        unet=components.build_unet(tiny=True),
        scheduler=components.build_sampler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    pipe = tiny_toy_pipeline()
    summary = run_demo(out, TINY, pipe=pipe, progress=False)
    return out, pipe, summary


def test_demo_writes_every_stage_and_the_report(demo_run):
    out, _, summary = demo_run
    assert list(summary["seconds"]) == [
        "choose teacher (validation)",
        "fit offsets",
        "compose offsets",
        "train",
        "evaluate (held-out)",
    ]
    for name in ("report.html", "metrics.json", "grid.png"):
        assert (out / "report" / name).is_file(), name
    assert (
        json.loads((out / "summary.json").read_text())["teacher_choice"]
        == (summary["teacher_choice"])
    )
    net = NPNet.from_pretrained(out / "npnet")
    assert (net.config.height, net.config.width, net.config.text_dim) == (8, 8, 8)
    assert net.config.residual_kind == "prompt-offset" and net.config.keep_norm
    assert net.config.backbone_kwargs == TINY.offset_net
    stats = summary["evaluation"]
    assert stats["n_samples"] == TINY.eval_samples
    # the recipe's net keeps the noise's norm: its norm-matched arm would be standard itself
    assert set(stats["overall"]["toy-soft"]["means"]) == {
        "standard", "golden", "random move", "teacher"
    }  # fmt: skip
    assert "vs_norm-matched" not in stats["overall"]["toy-soft"]
    ratios = stats["norm_ratio"]
    assert len(ratios["golden"]) == TINY.eval_samples
    # golden is rescaled to the noise's norm in float32: 1 to ~1e-7 relative
    assert ratios["golden"] == pytest.approx([1.0] * TINY.eval_samples, rel=1e-5)


def _row_prompts(folder) -> list[str]:
    """Each row's prompt text, in the rows' prompt-index order."""
    manifest = DatasetManifest.load(folder)
    records = NoisePromptDataset(folder, manifest=manifest).prompts().values()
    texts = {record.index: record.text for record in records}
    indices = RowTable.load(folder, manifest).columns["prompt_index"]
    return [texts[int(i)] for i in sorted(indices)]


def test_the_offset_recipe_fits_composes_and_trains_on_train_prompts(demo_run):
    """Fits of the first `fit_prompts` train prompts (types in turn), composed for the first
    `composed_prompts`, the net trained on those rows, its last epoch published."""
    from golden_noise.toy.grammar import every_prompt

    out, _, summary = demo_run
    order = every_prompt("train", TINY.prompt_seed)
    fitted = DatasetManifest.load(out / "offsets")
    assert fitted.teacher == "prompt-offset"
    assert {k: fitted.teacher_options[k] for k in TINY.offset_fit} == TINY.offset_fit
    assert _row_prompts(out / "offsets") == order[: TINY.fit_prompts]
    composed = DatasetManifest.load(out / "npd")
    assert composed.teacher == "composed-offset"
    assert composed.teacher_options["source_prompts"] == TINY.fit_prompts
    assert composed.teacher_options["ridge"] == TINY.offset_ridge
    assert fitted.sampler["steps"] == composed.sampler["steps"] == TINY.recipe_steps
    assert _row_prompts(out / "npd") == order[: TINY.composed_prompts]
    assert summary["collected"]["rows"] == TINY.composed_prompts
    assert summary["fitted"]["rows"] == summary["collected"]["fitted_prompts"] == TINY.fit_prompts
    history = (out / "train" / "metrics.jsonl").read_text().splitlines()
    assert len(history) == TINY.net_epochs
    published = (out / "npnet" / "model.safetensors").read_bytes()
    assert published == (out / "train" / "last" / "model.safetensors").read_bytes()


def test_teacher_choice_is_the_best_validation_target(demo_run):
    out, _, summary = demo_run
    choice = summary["teacher_choice"]
    targets = {n: choice[n]["mean_soft_target"] for n, _ in TINY.teachers}
    assert choice["chosen"] == max(targets, key=targets.get)
    for name in targets:
        table = RowTable.load(out / "validation" / name, DatasetManifest.load(out / "validation"
                                                                             / name))  # fmt: skip
        assert choice[name]["mean_soft_target"] == pytest.approx(
            float(np.mean(table.columns["score_target"]))
        )


def test_stages_use_disjoint_prompts_and_seeds(demo_run):
    out, _, _ = demo_run
    train_seeds = set()
    for stage in ("offsets", "npd"):
        rows = RowTable.load(out / stage, DatasetManifest.load(out / stage))
        train_seeds |= set(rows.columns["seed"].tolist())
        prompts = _row_prompts(out / stage)
        assert all(split_of(p) == "train" or prompt_type(p) == "single" for p in prompts)
    name = TINY.teachers[0][0]
    validation = RowTable.load(out / "validation" / name,
                               DatasetManifest.load(out / "validation" / name))  # fmt: skip
    validation_seeds = set(validation.columns["seed"].tolist())
    samples = heldout_samples(TINY)
    eval_seeds = {s.seed for s in samples}
    assert max(train_seeds) < VALIDATION_SEED_OFFSET <= min(validation_seeds)
    assert max(validation_seeds) < EVAL_SEED_OFFSET <= min(eval_seeds)
    assert len(eval_seeds) == len(samples)
    multi = [s.prompt for s in samples if s.group != "single"]  # singles are in every split
    assert multi and all(split_of(p) == "heldout" for p in multi)


def test_rerun_resumes_without_regenerating(demo_run):
    out, pipe, summary = demo_run
    images = sorted((out / "report" / "images").glob("*.png"))
    stamps = [p.stat().st_mtime_ns for p in images]
    again = run_demo(out, TINY, pipe=pipe, progress=False)
    assert [p.stat().st_mtime_ns for p in images] == stamps
    assert again["evaluation"]["overall"] == summary["evaluation"]["overall"]


def test_evaluation_in_two_processes_matches_the_in_process_one(demo_run, tmp_path):
    """The CLI's default for the full demo: the held-out evaluation as two accelerate
    processes that rebuild the stage from the run's folder. Same images bit for bit (each
    process generates whole batches) and the same statistics as evaluating in-process."""
    import shutil

    from golden_noise.core.json_values import finite_or_null
    from golden_noise.demo.processes import EvaluationProcesses, evaluate_in_processes

    out, pipe, summary = demo_run
    copy = tmp_path / "run"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("report", "study"))
    pipe.save_pretrained(tmp_path / "pipe")
    stats = evaluate_in_processes(copy, EvaluationProcesses(2, 1, tmp_path / "pipe"), False)
    # read back from metrics.json, strict JSON: a statistic that does not exist is null there
    assert stats == json.loads(json.dumps(finite_or_null(summary["evaluation"])))
    images = sorted((out / "report" / "images").glob("*.png"))
    assert len(images) == TINY.eval_samples * 4  # standard, golden, random move, teacher
    for image in images:  # their text differs: the settings' digest names each run's pipe
        with Image.open(image) as ours, Image.open(copy / "report" / "images" / image.name) as two:
            assert np.array_equal(np.asarray(ours), np.asarray(two)), image.name
            for key in (MADE_FOR_KEY, NORM_RATIO_KEY):
                assert ours.text.get(key) == two.text.get(key), (image.name, key)


def test_the_evaluation_worker_starts_without_a_double_import_warning():
    """`python -m golden_noise.demo.processes` imports the package first; if the package had
    already imported the module, runpy warns on every worker's start (shown in every full
    demo's output), and the module's globals exist twice."""
    command = [sys.executable, "-W", "error::RuntimeWarning", "-m", "golden_noise.demo.processes"]
    done = subprocess.run([*command, "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-500:]


def test_evaluation_processes_refuse_a_run_without_its_earlier_stages(demo_run, tmp_path):
    """Checked before any process starts: the message names the missing file."""
    import shutil

    from golden_noise.demo.processes import EvaluationProcesses, evaluate_in_processes

    out, _, _ = demo_run
    shutil.copytree(out, tmp_path / "run", ignore=shutil.ignore_patterns("report", "study"))
    shutil.rmtree(tmp_path / "run" / "npnet")
    with pytest.raises(GoldenNoiseError, match="npnet/config.json from the demo's earlier"):
        evaluate_in_processes(tmp_path / "run", EvaluationProcesses(2), False)


def test_study_trains_each_variant_and_evaluates_every_sampler(demo_run):
    out, pipe, _ = demo_run
    findings = run_study(out, TINY, pipe, progress=False)
    teachers = [name for name, _ in TINY.teachers]
    arms = set(findings["teachers"]["evaluation"]["overall"]["toy-soft"]["means"])
    assert arms == {"standard"} | {f"{k}-{t}" for k in ("golden", "teacher") for t in teachers}
    arms = set(findings["ablations"]["evaluation"]["overall"]["toy-soft"]["means"])
    assert arms == {"standard", "golden", "norm-matched"} | {f"golden-{a}" for a in ABLATIONS}
    config = NPNet.from_pretrained(out / "study" / "npnet-no-svd").config
    assert not config.use_svd and config.use_residual and config.use_text
    assert not NPNet.from_pretrained(out / "study" / "npnet-no-text").config.use_text
    no_filter = json.loads((out / "study" / "train-no-filter" / "train_config.json").read_text())
    assert no_filter["margin"] is None
    assert set(findings["samplers"]) == set(SAMPLERS)
    run = json.loads((out / "study" / "samplers" / "euler" / "run.json").read_text())
    assert run["sampler"] == "EulerDiscreteScheduler"
    assert type(pipe.scheduler).__name__ == "DDIMScheduler"  # restored


def test_load_npnet_ships_or_explains(tmp_path, monkeypatch):
    from golden_noise.toy import npnet as toy_npnet

    monkeypatch.setattr(toy_npnet, "NPNET_DIR", tmp_path / "npnet")
    with pytest.raises(GoldenNoiseError, match="golden-noise train DATASET"):
        toy_npnet.load_npnet()
    config = NPNetConfig(height=8, width=8, text_tokens=16, text_dim=64, **TINY.npnet)
    NPNet(config).save_pretrained(tmp_path / "npnet")
    assert toy_npnet.load_npnet().config == config


def test_shipped_npnet_fits_the_shipped_toy_pipeline():
    from golden_noise.toy import load_npnet, load_pipeline

    pipe = load_pipeline()
    golden = GoldenNoise(load_npnet(), pipe)
    latents = golden.latents(["a red circle"], torch.Generator().manual_seed(0))
    assert latents.shape == (1, 4, 8, 8) and torch.isfinite(latents).all()


def test_cli_refuses_a_missing_pipeline(tmp_path):
    result = CliRunner().invoke(
        app, ["demo", "--quick", "--out", str(tmp_path / "o"), "--pipeline", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert "model_index.json" in result.output


def test_the_cli_refuses_quick_and_full_scale_together(tmp_path):
    result = CliRunner().invoke(
        app, ["demo", "--quick", "--full-scale", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 1 and "--quick and --full-scale" in result.output
    assert not (tmp_path / "o").exists()


def test_the_full_scale_preset_is_the_recipe_of_the_shipped_net():
    """`demo --full-scale` remakes the shipped toy NPNet: the committed fits and composed rows
    were made with its fit, table, prompts and sampler, and the shipped net has its size."""
    from golden_noise.demo import FULL_SCALE
    from golden_noise.demo.offset_recipe import recipe_prompts
    from golden_noise.teachers import get_teacher
    from golden_noise.toy.npnet import NPNET_DIR

    data = Path(__file__).parents[1] / "data"
    fitted = DatasetManifest.load(data / "toy-prompt-offsets")
    composed = DatasetManifest.load(data / "toy-composed-offsets")
    every = recipe_prompts(FULL_SCALE, FULL_SCALE.composed_prompts)
    assert fitted.teacher == "prompt-offset" and composed.teacher == "composed-offset"
    teacher = get_teacher("prompt-offset", **FULL_SCALE.offset_fit)
    assert teacher.options() == fitted.teacher_options
    assert composed.teacher_options["ridge"] == FULL_SCALE.offset_ridge
    assert composed.teacher_options["source_prompts"] == len(every)
    assert _row_prompts(data / "toy-prompt-offsets") == every
    assert _row_prompts(data / "toy-composed-offsets") == every
    for manifest in (fitted, composed):
        sampler = manifest.sampler
        recipe = (FULL_SCALE.recipe_steps, FULL_SCALE.guidance)
        assert (sampler["steps"], sampler["guidance"]) == recipe
    shipped = json.loads((NPNET_DIR / "config.json").read_text())
    assert shipped["backbone_kwargs"] == FULL_SCALE.offset_net and shipped["keep_norm"]


def test_presets_keep_the_promised_sizes():
    from golden_noise.demo import FULL, QUICK

    assert FULL.eval_samples >= 1000  # the floor for the reported result
    assert QUICK.margin == FULL.margin  # CI runs the real filter, only smaller


def _net_keeping_norm(keep_norm: bool) -> SimpleNamespace:
    return SimpleNamespace(npnet=SimpleNamespace(config=SimpleNamespace(keep_norm=keep_norm)))


def test_demo_arms_add_the_shipped_npnet_beside_the_runs_own():
    """The demo evaluates the shipped toy NPNet, and a random move of its size, on the same
    held-out samples when it is given (the default pipeline), and only then; the norm-matched
    control only for a net that changes the noise's norm."""
    from golden_noise.demo.stages import demo_arms

    config = DemoConfig(name="t", validation_rows=1, collect_rows=1, eval_samples=1, epochs=1)
    changes_norm = _net_keeping_norm(False)
    without = demo_arms(None, changes_norm, None, config)
    assert list(without) == ["standard", "golden", "norm-matched", "random move"]
    with_shipped = demo_arms(None, changes_norm, None, config, shipped=object())
    assert list(with_shipped) == [
        "standard", "golden", "norm-matched", "random move", "shipped", "shipped random move"
    ]  # fmt: skip
    keeps_norm = demo_arms(None, _net_keeping_norm(True), None, config)
    assert list(keeps_norm) == ["standard", "golden", "random move"]
