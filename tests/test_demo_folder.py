"""A demo folder belongs to one run: another run's settings or pipeline are refused before
anything is written (its collection would add rows to this run's datasets), and so are stage
outputs that no readable `demo_config.json` vouches for; the same run still resumes."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import test_demo
import torch
from cli_outcome import assert_refused, run_cli
from test_demo import TINY, tiny_toy_pipeline

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.core.file_digests import folder_sha256s
from golden_noise.demo import run_demo, run_study
from golden_noise.demo.config import CONFIG_NAME

demo_run = test_demo.demo_run  # the same module-scoped run, made once for this module


@pytest.fixture
def run_copy(demo_run, tmp_path) -> Path:
    """A copy of the finished run to refuse into (the module's run stays as it was)."""
    out, _, _ = demo_run
    shutil.copytree(out, tmp_path / "run")
    return tmp_path / "run"


def other_pipeline():
    """The tiny pipeline with one weight changed: same shapes, other images."""
    pipe = tiny_toy_pipeline()
    with torch.no_grad():
        next(pipe.unet.parameters()).add_(0.5)
    return pipe


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"collect_rows": 32}, "collect_rows: run 16, now 32"),
        ({"name": "quick", "epochs": 3}, "name: run 'test', now 'quick'; epochs: run 1, now 3"),
        ({"prompt_seed": 1}, "prompt_seed: run 0, now 1"),
    ],
)
def test_other_settings_are_refused_and_the_folder_left_as_it_was(
    demo_run, run_copy, settings, named
):
    _, pipe, _ = demo_run
    before = folder_sha256s(run_copy)
    with pytest.raises(GoldenNoiseError, match="holds a demo run with other settings") as refused:
        run_demo(run_copy, dataclasses.replace(TINY, **settings), pipe=pipe, progress=False)
    assert named in str(refused.value) and "new --out" in str(refused.value)
    assert folder_sha256s(run_copy) == before


def test_another_pipeline_is_refused(demo_run, run_copy):
    before = folder_sha256s(run_copy)
    with pytest.raises(GoldenNoiseError, match="pipeline_sha256: run '"):
        run_demo(run_copy, TINY, pipe=other_pipeline(), progress=False)
    with pytest.raises(GoldenNoiseError, match="pipeline_sha256: run '"):
        run_study(run_copy, TINY, other_pipeline(), progress=False)
    assert folder_sha256s(run_copy) == before


def test_the_same_run_still_resumes_after_a_refusal(demo_run):
    """In the run's own folder (a copy's report names the original's npnet/ path)."""
    out, pipe, summary = demo_run
    before = folder_sha256s(out)
    with pytest.raises(GoldenNoiseError, match="epochs: run 1, now 2"):
        run_demo(out, dataclasses.replace(TINY, epochs=2), pipe=pipe, progress=False)
    assert folder_sha256s(out) == before
    again = run_demo(out, TINY, pipe=pipe, progress=False)
    assert again["evaluation"]["overall"] == summary["evaluation"]["overall"]
    assert folder_sha256s(out)[CONFIG_NAME] == before[CONFIG_NAME]  # the record, kept as is


def test_the_cli_refuses_another_preset_in_one_line(run_copy):
    """`demo --quick` into the tiny run's folder: one error line naming the preset."""
    before = folder_sha256s(run_copy)
    code, output = run_cli("demo", "--quick", "--out", run_copy, "--processes", "1",
                           "--threads", "1", "--no-progress")  # fmt: skip
    assert_refused(code, output, "name: run 'test', now 'quick'", "new --out")
    assert folder_sha256s(run_copy) == before


@pytest.mark.parametrize("record", [None, "{not json", "[]"])
def test_stage_outputs_without_a_readable_record_are_refused(demo_run, run_copy, record):
    _, pipe, _ = demo_run
    if record is None:
        (run_copy / CONFIG_NAME).unlink()
    else:
        (run_copy / CONFIG_NAME).write_text(record)
    before = folder_sha256s(run_copy)
    expected = f"but no {CONFIG_NAME}" if record is None else f"cannot read .*{CONFIG_NAME}"
    with pytest.raises(GoldenNoiseError, match=expected):
        run_demo(run_copy, TINY, pipe=pipe, progress=False)
    assert folder_sha256s(run_copy) == before


def test_one_stage_output_without_a_record_is_refused(demo_run, tmp_path):
    """A run killed while fitting offsets leaves only `offsets/`; nothing shows what made it."""
    out, pipe, _ = demo_run
    shutil.copytree(out / "offsets", tmp_path / "run" / "offsets")
    before = folder_sha256s(tmp_path / "run")
    with pytest.raises(GoldenNoiseError, match=r"holds demo outputs \(offsets\) but no"):
        run_demo(tmp_path / "run", TINY, pipe=pipe, progress=False)
    assert folder_sha256s(tmp_path / "run") == before


def test_the_pipeline_digest_survives_a_save_and_a_reload(tmp_path):
    """Saving adds diffusers' bookkeeping to the scheduler's config (and lists its defaults in
    set order): none of it may change the digest, or a run could not resume its own folder."""
    from golden_noise.adapters.loading import pipeline_sha256
    from golden_noise.toy import load_pipeline

    pipe = tiny_toy_pipeline()
    digest = pipeline_sha256(pipe)
    pipe.save_pretrained(tmp_path / "pipe")
    assert pipeline_sha256(pipe) == digest
    assert pipeline_sha256(load_pipeline(path=tmp_path / "pipe")) == digest
    assert pipeline_sha256(other_pipeline()) != digest


def test_a_rerun_keeps_the_published_net_and_refuses_other_weights(demo_run, run_copy):
    """Before: every re-run replaced npnet/ whole (a user's notes there deleted), and weights
    changed under train/last/ were published as the demo's net while the report still
    described the net it had measured."""
    out, pipe, summary = demo_run
    notes = out / "npnet" / "notes.txt"
    notes.write_text("mine")
    try:
        again = run_demo(out, TINY, pipe=pipe, progress=False)
        assert notes.read_text() == "mine"
        assert again["evaluation"]["overall"] == summary["evaluation"]["overall"]
    finally:
        notes.unlink()
    weights = run_copy / "train" / "last" / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-40] ^= 0x10
    weights.write_bytes(bytes(raw))
    published = folder_sha256s(run_copy / "npnet")
    with pytest.raises(GoldenNoiseError, match="model.safetensors other than the net published"):
        run_demo(run_copy, TINY, pipe=pipe, progress=False)
    assert folder_sha256s(run_copy / "npnet") == published


def test_a_pipeline_folder_saved_in_float16_loads_in_one_dtype(tmp_path):
    """Before: without --dtype, a folder whose text encoder was saved in float16 loaded it in
    float16 beside a float32 UNet and crashed at the first matmul (collect, generate,
    evaluate)."""
    from golden_noise.adapters.loading import pipeline_from_spec

    pipe = tiny_toy_pipeline()
    pipe.text_encoder.to(torch.float16)
    pipe.save_pretrained(tmp_path / "pipe")
    loaded = pipeline_from_spec(str(tmp_path / "pipe"), device="cpu")
    dtypes = {
        name: next(getattr(loaded, name).parameters()).dtype
        for name in ("text_encoder", "unet", "vae")
    }
    assert set(dtypes.values()) == {torch.float32}, dtypes
