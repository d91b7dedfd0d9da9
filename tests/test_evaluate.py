"""evaluate on a tiny SD pipeline with a tiny NPNet: pairing, resume, re-score, teacher arm."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_pipelines import build_sd, make_identity, tiny_npnet

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.core.weights import weights_digest
from golden_noise.evaluation.evaluate import (
    MADE_FOR_KEY,
    Generation,
    evaluate,
    image_file,
    made_for,
)
from golden_noise.generation import arms
from golden_noise.generation.arms import make_samples
from golden_noise.generation.generate import GoldenNoise
from golden_noise.scorers import get_scorer
from golden_noise.teachers import RedenoiseTeacher
from golden_noise.teachers.redenoise_step import RedenoiseSettings

PROMPTS = [
    "a red circle",
    "two blue squares",
    "a green triangle on the left and a red square on the right",
]
CALL = {"num_inference_steps": 2, "guidance_scale": 3.0}


@pytest.fixture(scope="module")
def pipe():
    pipe = build_sd()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def scorers():
    return [get_scorer("toy-soft"), get_scorer("toy-correct")]


def generation(pipe, net, teacher=False):
    golden = GoldenNoise(net, pipe)
    made = {"standard": arms.standard(), "golden": arms.golden(golden)}
    if teacher:
        made["teacher"] = arms.teacher(RedenoiseTeacher(RedenoiseSettings(steps=4)))
    return Generation(pipe, made, CALL, batch_size=2)


def pixels(path):
    return np.asarray(Image.open(path), dtype=np.int16)


def test_writes_paired_images_and_the_report(tmp_path, pipe):
    samples = make_samples(PROMPTS[:2], [0, 1])
    summary = evaluate(
        tmp_path, scorers(), samples=samples, generation=generation(pipe, tiny_npnet(32)),
        run={"pipeline": "tiny-sd"}, show_progress=False, resamples=200,
    )  # fmt: skip
    assert summary["n_samples"] == 4 and summary["arms"] == ["standard", "golden"]
    assert len(list((tmp_path / "images").glob("*.png"))) == 8
    for name in ("metrics.json", "images.csv", "report.html", "grid.png", "index.jsonl"):
        assert (tmp_path / name).is_file()
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert report["run"] == {"pipeline": "tiny-sd"}
    assert set(report["summary"]["overall"]) == {"toy-soft", "toy-correct"}
    assert set(report["summary"]["groups"]) == {"single", "counting"}  # toy prompt types
    standard = pixels(tmp_path / image_file(samples[1], "standard"))
    expected = pipe(PROMPTS[0], generator=_generator(1), **CALL).images[0]
    # evaluate may batch rows the reference call runs alone: different kernels leave ~1e-6 on
    # [0, 1] pixels, which can flip one 8-bit level where a value sits on a rounding edge;
    # another seed or noise moves pixels by tens of levels.
    assert np.abs(standard - np.asarray(expected, dtype=np.int16)).max() <= 1
    golden = pixels(tmp_path / image_file(samples[1], "golden"))
    assert np.abs(golden - standard).max() > 0  # a random NPNet changes the image


def _generator(seed):
    import torch

    return torch.Generator().manual_seed(seed)


def test_identity_npnet_gives_the_standard_image(tmp_path, pipe):
    """Both arms start from the same seeded noise: an identity NPNet changes nothing."""
    samples = make_samples(PROMPTS[:1], [3])
    made = generation(pipe, make_identity(tiny_npnet(32)))
    evaluate(tmp_path, scorers(), samples=samples, generation=made, show_progress=False,
             resamples=100)  # fmt: skip
    difference = pixels(tmp_path / image_file(samples[0], "golden")) - pixels(
        tmp_path / image_file(samples[0], "standard")
    )
    assert np.abs(difference).max() <= 1  # float round-off of the SVD, then 8-bit rounding


def test_rescore_reads_images_without_the_pipeline(tmp_path, pipe):
    samples = make_samples(PROMPTS, [0])
    first = evaluate(
        tmp_path, scorers(), samples=samples, generation=generation(pipe, tiny_npnet(32)),
        run={"steps": 2}, show_progress=False, resamples=100,
    )  # fmt: skip
    (tmp_path / "report.html").unlink()

    def never(batch):
        raise AssertionError("existing images must not be regenerated")

    again = evaluate(
        tmp_path, scorers(), samples=samples,
        generation=Generation(pipe, {"standard": never, "golden": never}, CALL),
        show_progress=False, resamples=100,
    )  # fmt: skip
    rescored = evaluate(tmp_path, scorers(), show_progress=False, resamples=100)
    # As JSON: groups of one sample have NaN intervals, and NaN != NaN in a dict comparison.
    assert json.dumps(first) == json.dumps(again) == json.dumps(rescored)
    assert len(first["norm_ratio"]["golden"]) == 3  # read back from the PNGs by the rescore
    assert (tmp_path / "report.html").is_file()
    assert json.loads((tmp_path / "metrics.json").read_text())["run"] == {"steps": 2}
    (tmp_path / image_file(samples[2], "golden")).unlink()
    with pytest.raises(GoldenNoiseError, match="1 are missing"):
        evaluate(tmp_path, scorers(), show_progress=False)


def test_teacher_arm_is_a_third_column(tmp_path, pipe):
    samples = make_samples(PROMPTS[:1], [0, 1])
    made = generation(pipe, tiny_npnet(32), teacher=True)
    summary = evaluate(tmp_path, scorers(), samples=samples, generation=made,
                       show_progress=False, resamples=100)  # fmt: skip
    assert summary["arms"] == ["standard", "golden", "teacher"]
    assert set(summary["overall"]["toy-soft"]["vs_standard"]) == {"golden", "teacher"}
    teacher = pixels(tmp_path / image_file(samples[0], "teacher"))
    assert np.abs(teacher - pixels(tmp_path / image_file(samples[0], "standard"))).max() > 0


def test_needs_a_standard_arm(tmp_path, pipe):
    with pytest.raises(GoldenNoiseError, match="'standard' arm"):
        evaluate(tmp_path, scorers(), samples=make_samples(PROMPTS[:1], [0]),
                 generation=Generation(pipe, {}))  # fmt: skip
    with pytest.raises(GoldenNoiseError, match="index.jsonl"):
        evaluate(tmp_path / "empty", scorers())


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("saved")
    build_sd().save_pretrained(root / "pipe")
    tiny_npnet(32).save_pretrained(root / "npnet")
    (root / "prompts.txt").write_text("\n".join(PROMPTS[:2]) + "\n")
    return root


def cli(saved, out, *args):
    from typer.testing import CliRunner

    from golden_noise.cli import app

    base = ["evaluate", "--out", str(out), "--no-progress", "--cpu"]
    return CliRunner().invoke(app, [*base, *args])


def test_cli_evaluates_then_rescores(saved, tmp_path):
    out = tmp_path / "eval"
    result = cli(
        saved, out, "--pipeline", str(saved / "pipe"), "--npnet", str(saved / "npnet"),
        "--prompts", str(saved / "prompts.txt"), "--seeds", "0-1", "--steps", "2",
        "--scorers", "toy-soft,toy-correct", "--teacher",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "toy-soft" in result.output and "teacher" in result.output
    assert "norm-matched" in result.output  # the control arms are there by default
    assert "random move" in result.output
    # standard, golden, norm-matched, random move, teacher
    assert len(list((out / "images").glob("*.png"))) == 2 * 2 * 5
    report = json.loads((out / "metrics.json").read_text())
    assert report["run"]["num_inference_steps"] == 2
    assert report["summary"]["n_samples"] == 4
    result = cli(saved, out, "--rescore", "--scorers", "toy-correct")
    assert result.exit_code == 0, result.output
    report = json.loads((out / "metrics.json").read_text())
    assert list(report["metrics"]) == ["toy-correct"]
    assert report["run"]["scorers"] == "toy-correct" and report["run"]["seeds"] == "0-1"


def test_cli_resumes_the_same_prompts_and_seeds_named_another_way(saved, tmp_path):
    """Before: a prompts file, then the same prompts typed as -p strings (or seeds 0-1, then
    0,1) was refused as other settings."""
    out = tmp_path / "eval"
    common = ["--pipeline", str(saved / "pipe"), "--npnet", str(saved / "npnet"), "--steps", "2",
              "--scorers", "toy-soft"]  # fmt: skip
    first = cli(saved, out, *common, "--prompts", str(saved / "prompts.txt"), "--seeds", "0-1")
    assert first.exit_code == 0, first.output
    images = {p.name: p.read_bytes() for p in (out / "images").iterdir()}
    typed = [arg for prompt in PROMPTS[:2] for arg in ("-p", prompt)]
    again = cli(saved, out, *common, *typed, "--seeds", "0,1")
    assert again.exit_code == 0, again.output
    assert {p.name: p.read_bytes() for p in (out / "images").iterdir()} == images
    other = cli(saved, out, *common, *typed[:2], "--seeds", "0,1")
    assert other.exit_code == 1 and "prompts or seeds" in other.output


def test_cli_user_errors(saved, tmp_path):
    result = cli(saved, tmp_path / "a", "--pipeline", str(saved / "pipe"))
    assert result.exit_code == 1 and "expected --prompts" in result.output
    result = cli(saved, tmp_path / "b", "--rescore", "--scorers", "toy-soft,nope")
    assert result.exit_code == 1 and "unknown scorer 'nope'" in result.output


def test_a_folder_made_with_other_settings_is_refused_not_reported_as_new(tmp_path, pipe):
    """Before: a second run with another NPNet, steps or prompts kept the old images and
    rewrote run.json, reporting the old images as the new settings' results."""
    samples = make_samples(PROMPTS[:2], [0])
    net = tiny_npnet(32)
    run = {"npnet": "a", "npnet_sha256": weights_digest(net)}
    evaluate(tmp_path, scorers(), samples=samples, generation=generation(pipe, net), run=run,
             show_progress=False, resamples=50)  # fmt: skip
    recorded = (tmp_path / "run.json").read_text()
    retrained = tiny_npnet(32)  # the same path, other weights
    with torch.no_grad():
        retrained.alpha.add_(1.0)
    changes = [
        ({"samples": make_samples(PROMPTS[1:3], [0])}, "prompts or seeds"),
        ({"call": {**CALL, "num_inference_steps": 3}}, "num_inference_steps: 2 -> 3"),
        ({"run": {**run, "npnet": "b"}}, "npnet: 'a' -> 'b'"),
        ({"run": {**run, "npnet_sha256": weights_digest(retrained)}}, "npnet_sha256"),
    ]
    for change, message in changes:
        made = generation(pipe, net)
        made.call = change.get("call", CALL)
        with pytest.raises(GoldenNoiseError, match=message):
            evaluate(tmp_path, scorers(), samples=change.get("samples", samples),
                     generation=made, run=change.get("run", run), show_progress=False)  # fmt: skip
        assert (tmp_path / "run.json").read_text() == recorded
    with pytest.raises(GoldenNoiseError, match="at least one scorer"):
        evaluate(tmp_path, [], show_progress=False)


def count_adapter_for(monkeypatch) -> list[object]:
    """Every `adapter_for` call from here on, wherever it was imported (each module binds
    its own name), recorded with its pipeline."""
    import sys

    import golden_noise.cli.evaluate  # noqa: F401  (bind its imports before patching)
    from golden_noise.adapters import adapter_for

    calls: list[object] = []

    def counted(pipe):
        calls.append(pipe)
        return adapter_for(pipe)

    for name, module in list(sys.modules.items()):
        if name.startswith("golden_noise") and getattr(module, "adapter_for", None) is adapter_for:
            monkeypatch.setattr(module, "adapter_for", counted)
    return calls


def test_an_evaluate_run_makes_the_pipeline_adapter_once(saved, tmp_path, monkeypatch):
    """The adapter is made where the pipeline is opened and handed down: the golden net,
    every arm and the teacher's re-denoise (4 pipeline calls per batch) share it."""
    calls = count_adapter_for(monkeypatch)
    result = cli(
        saved, tmp_path / "eval", "--pipeline", str(saved / "pipe"), "--npnet",
        str(saved / "npnet"), "--prompts", str(saved / "prompts.txt"), "--seeds", "0-2",
        "--steps", "2", "--scorers", "toy-soft", "--teacher", "--batch-size", "2",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(calls) == 1


def test_an_evaluation_batch_encodes_its_prompts_once(tmp_path, pipe, monkeypatch):
    """Two nets (golden and its controls, a second net), and the teacher's re-denoise all
    condition on one encoding per batch; before, each net and the teacher encoded again."""
    from golden_noise.adapters.stable_diffusion import StableDiffusionAdapter

    encodes = []
    for method in ("encode_prompt", "prompt_kwargs"):
        original = getattr(StableDiffusionAdapter, method)

        def counted(self, prompts, *args, _original=original, **kwargs):
            encodes.append(list(prompts) if not isinstance(prompts, str) else [prompts])
            return _original(self, prompts, *args, **kwargs)

        monkeypatch.setattr(StableDiffusionAdapter, method, counted)
    first, second = GoldenNoise(tiny_npnet(32), pipe), GoldenNoise(tiny_npnet(32), pipe)
    made = {
        "standard": arms.standard(),
        "golden": arms.golden(first),
        "norm-matched": arms.norm_matched(first),
        "random move": arms.random_move(first),
        "second": arms.golden(second),
        "teacher": arms.teacher(RedenoiseTeacher(RedenoiseSettings(steps=4))),
    }
    samples = make_samples(PROMPTS[:2], [0, 1])  # 4 samples, 2 batches of 2
    evaluate(tmp_path, scorers()[:1], samples=samples, show_progress=False, resamples=50,
             generation=Generation(pipe, made, CALL, batch_size=2))  # fmt: skip
    assert encodes == [[PROMPTS[0]] * 2, [PROMPTS[1]] * 2]


def test_reuse_copies_another_runs_images_only_when_the_same_settings_made_them(tmp_path, pipe):
    """`Generation.reuse`: the standard images of an earlier run are copied (never generated)
    when its record shows the same pipeline, dtype and call; with other call settings they
    are generated afresh."""
    samples = make_samples(PROMPTS[:2], [0])
    first = generation(pipe, tiny_npnet(32))
    evaluate(tmp_path / "first", scorers(), samples=samples, generation=first,
             show_progress=False, resamples=100)  # fmt: skip

    def never(batch):
        raise AssertionError("the reused arm must not be generated")

    made = {"standard": never, "golden": first.arms["golden"]}
    reuse = (tmp_path / "first", {"standard": "standard"})
    older = tmp_path / "first" / image_file(samples[1], "standard")
    with Image.open(older) as image:
        image.save(older)  # as an older evaluate wrote it: no record of what it was made for
    evaluate(tmp_path / "second", scorers(), samples=samples, show_progress=False,
             generation=Generation(pipe, made, CALL, reuse=reuse), resamples=100)  # fmt: skip
    for sample in samples:  # copied with the record this run's re-scores require
        name = image_file(sample, "standard")
        with Image.open(tmp_path / "second" / name) as copied:
            assert copied.text[MADE_FOR_KEY] == made_for(sample, "standard")
            with Image.open(tmp_path / "first" / name) as source:
                assert np.array_equal(np.asarray(copied), np.asarray(source))
    other = {**CALL, "num_inference_steps": 3}
    with pytest.raises(AssertionError, match="must not be generated"):
        evaluate(tmp_path / "third", scorers(), samples=samples, show_progress=False,
                 generation=Generation(pipe, made, other, reuse=reuse), resamples=100)  # fmt: skip
