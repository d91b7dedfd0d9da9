"""The shipped toy pipeline, its tokenizer, and the training command on a tiny config."""

import json

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer
from typer.testing import CliRunner

from golden_noise.cli import app
from golden_noise.core.errors import GoldenNoiseError
from golden_noise.toy import DEFAULT_GUIDANCE, DEFAULT_STEPS, load_pipeline, render, score
from golden_noise.toy.grammar import PROMPT_TYPES, prompts_of, sample_prompts
from golden_noise.toy.pipeline import WEIGHTS_DIR
from golden_noise.toy.quality import generate
from golden_noise.toy.tokenizer import MAX_LENGTH, build_tokenizer


@pytest.fixture(scope="module")
def pipe():
    return load_pipeline()


def test_shipped_pipeline_is_small_standard_and_ddim(pipe):
    size = sum(f.stat().st_size for f in WEIGHTS_DIR.rglob("*") if f.is_file())
    assert size < 20 * 2**20
    assert json.loads((WEIGHTS_DIR / "model_index.json").read_text())["_class_name"] == (
        "StableDiffusionPipeline"
    )
    cfg = pipe.scheduler.config
    assert type(pipe.scheduler).__name__ == "DDIMScheduler"
    assert (cfg.clip_sample, cfg.set_alpha_to_one, cfg.steps_offset) == (False, False, 1)
    assert cfg.timestep_spacing == "leading" and cfg.beta_schedule == "scaled_linear"
    assert pipe.unet.dtype == torch.float32


def test_pipeline_generates_deterministically(pipe):
    prompts = ["a red circle", "two blue squares"]
    a = generate(pipe, prompts, [0, 1], DEFAULT_GUIDANCE, steps=4)
    b = generate(pipe, prompts, [0, 1], DEFAULT_GUIDANCE, steps=4)
    c = generate(pipe, prompts, [2, 3], DEFAULT_GUIDANCE, steps=4)
    assert a.shape == (2, 3, 32, 32) and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert DEFAULT_STEPS == 20


def test_pipeline_follows_single_prompts(pipe):
    prompts = list(prompts_of("train", "single"))[:12]
    images = generate(pipe, prompts, list(range(len(prompts))))
    assert score(images, prompts).correct.float().mean() >= 0.75


def test_scorer_on_vae_reconstructions(pipe):
    prompts = sample_prompts(200, seed=5, split="train")
    x = torch.from_numpy(np.stack([render(p, i) for i, p in enumerate(prompts)]))
    x = x.permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        recon = pipe.vae.decode(pipe.vae.encode(x).latent_dist.mean).sample
    result = score((recon + 1) / 2, prompts)
    assert result.correct.float().mean() >= 0.99
    for i, t in enumerate(PROMPT_TYPES):
        assert result.correct[i::4].float().mean() >= 0.97, t


def test_tokenizer_round_trip(tmp_path):
    tok = build_tokenizer()
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    prompts = [p for t in PROMPT_TYPES for p in prompts_of("train", t)[:20]] + [""]
    a = tok(prompts, padding="max_length", return_tensors="pt").input_ids
    b = loaded(prompts, padding="max_length", return_tensors="pt").input_ids
    assert torch.equal(a, b) and a.shape == (len(prompts), MAX_LENGTH)
    assert loaded.model_max_length == MAX_LENGTH
    assert not (a == tok.unk_token_id).any()
    assert tok.decode(a[0], skip_special_tokens=True) == prompts[0]


def test_toy_train_command_on_tiny_config(tmp_path):
    runner = CliRunner()
    args = ["toy-train", "--out", str(tmp_path), "--tiny", "--batch-size", "4", "--threads", "1"]
    first = runner.invoke(app, [*args, "--vae-steps", "2", "--unet-steps", "2"])
    assert first.exit_code == 0, first.output
    assert json.loads((tmp_path / "pipeline" / "toy_step.json").read_text())["step"] == 2
    again = runner.invoke(app, [*args, "--vae-steps", "2", "--unet-steps", "2"])
    assert again.exit_code == 0, again.output
    assert "unet+text: done (step 2 of 2)" in again.output
    assert json.loads((tmp_path / "pipeline" / "toy_step.json").read_text())["step"] == 2
    tiny = load_pipeline(path=tmp_path / "pipeline")
    images = generate(tiny, ["a red circle"], [0], steps=2)
    assert images.shape == (1, 3, 32, 32)


def test_load_pipeline_names_a_missing_directory(tmp_path):
    with pytest.raises(GoldenNoiseError, match="model_index.json"):
        load_pipeline(path=tmp_path)


def test_thread_tuner_keeps_the_faster_count():
    from golden_noise.toy.train import ThreadTuner

    tuner = ThreadTuner(None, every=10, window=3)
    used = []
    for step in range(40):
        used.append(tuner.current)
        two_threads = 7.0 if step < 25 else 0.5  # contended first, idle later
        tuner.step_done(step, 1.0 if tuner.current == 1 else two_threads)
    torch.set_num_threads(1)
    assert used[:10] == [1] * 10
    assert used[10:12] == [2, 1]  # a slow trial is abandoned after one step
    assert used[-5:] == [2] * 5  # once two threads are faster, they are kept
