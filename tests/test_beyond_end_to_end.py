"""collect -> train -> generate and the teacher arm on tiny SD3, FLUX and PixArt-Sigma pipelines."""

import numpy as np
import pytest
import torch
from tiny_pipelines import BEYOND_BUILDERS, CALL_KWARGS

from golden_noise import GoldenNoise
from golden_noise.adapters import adapter_for
from golden_noise.collection.collect import SeedPlan, collect
from golden_noise.core.errors import GoldenNoiseError
from golden_noise.dataset import DatasetManifest
from golden_noise.generation import arms
from golden_noise.npnet import NPNet
from golden_noise.prompts.sources import read_prompt_source
from golden_noise.scorers.registry import get_scorer
from golden_noise.teachers import RedenoiseTeacher, SamplerSettings
from golden_noise.teachers.redenoise_step import RedenoiseSettings
from golden_noise.train import TrainConfig, train

# Long T5 embeddings (256-512 tokens) go through the masked-mean text reduction.
SMALL_NET = {
    "backbone": "vit_tiny_patch16_224",
    "backbone_kwargs": {
        "img_size": 16,
        "patch_size": 8,
        "depth": 1,
        "embed_dim": 16,
        "num_heads": 2,
    },
    "backbone_input_size": 16,
    "svd_hidden": 8,
    "svd_mlp_hidden": 16,
    "text_reduction": "mean",
}

# The toy scorer judges 32x32 images.
SIZE = 32


def _sampler(adapter) -> SamplerSettings:
    # Flow-matching pipelines sample with their own (deterministic Euler) scheduler.
    return SamplerSettings(steps=2, scheduler="pipeline" if adapter.flow_matching else "ddim")


@pytest.mark.parametrize("name", list(BEYOND_BUILDERS))
def test_collect_train_generate(name, tmp_path):
    pipe = BEYOND_BUILDERS[name]()
    pipe.set_progress_bar_config(disable=True)
    adapter = adapter_for(pipe)
    prompts = read_prompt_source("toy:train:4")
    summary = collect(
        pipe,
        prompts,
        tmp_path / "npd",
        get_scorer("toy-soft"),
        teacher=RedenoiseTeacher(RedenoiseSettings(steps=4)),
        sampler=_sampler(adapter),
        seeds=SeedPlan(per_prompt=2),
        batch_size=4,
        height=SIZE,
        width=SIZE,
        progress=False,
    )
    assert summary.rows_in_dataset == 8
    manifest = DatasetManifest.load(tmp_path / "npd")
    assert manifest.family == name
    assert tuple(manifest.latent_shape) == adapter.latent_shape(1, SIZE, SIZE)[1:]
    assert tuple(manifest.text_shape) == adapter.text_shape()

    result = train(
        TrainConfig(
            dataset=tmp_path / "npd",
            out=tmp_path / "run",
            batch_size=4,
            epochs=1,
            margin=None,
            val_fraction=0.25,
            npnet=dict(SMALL_NET),
            log_with="none",
            progress=False,
        )
    )
    assert result.train_rows == 6 and result.val_rows == 2
    assert torch.isfinite(torch.tensor(result.best_val_loss))

    net = NPNet.from_pretrained(tmp_path / "run" / "best")
    assert net.config.family == name and net.config.channels == adapter.latent_channels
    golden = GoldenNoise(net, pipe)
    call = {"height": SIZE, "width": SIZE, "num_inference_steps": 2, **CALL_KWARGS[name]}
    assert golden.image(prompts[0], seed=3, **call).size == (SIZE, SIZE)
    made = {"teacher": arms.teacher(RedenoiseTeacher(RedenoiseSettings(steps=4)))}
    (batch,) = arms.generate_arms(pipe, arms.make_samples(prompts[:1], [3]), made, **call)
    assert batch.images["teacher"][0].size == (SIZE, SIZE)
    # Golden latents: the trained net's edit of the seed's own [B, C, H, W] draw, packed by
    # hand for FLUX (2x2 patches -> [B, (H/2)(W/2), 4C]); the same forward on the same
    # inputs, so bit-identical.
    draw = torch.randn(
        adapter.latent_shape(1, SIZE, SIZE), generator=torch.Generator().manual_seed(3)
    )
    with torch.no_grad():
        edited = net(draw, adapter.encode_prompt(prompts[0]).tokens)
    if name.startswith("flux"):
        b, c, h, w = edited.shape
        edited = edited.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
        edited = edited.reshape(b, (h // 2) * (w // 2), 4 * c)
    latents = golden.latents(prompts[0], torch.Generator().manual_seed(3), SIZE, SIZE)
    assert torch.equal(latents, edited)
    assert (edited - adapter.pipeline_latents(draw)).abs().max() > 1e-3  # the net edits
    # and the golden image is a plain pipeline call from those latents, pixel for pixel
    plain = pipe(
        prompts[0], latents=latents, generator=torch.Generator().manual_seed(3), **call
    ).images[0]
    assert np.array_equal(np.asarray(golden.image(prompts[0], seed=3, **call)), np.asarray(plain))


def test_flow_pipelines_refuse_the_ddim_collection_sampler(tmp_path):
    pipe = BEYOND_BUILDERS["sd3"]()
    with pytest.raises(GoldenNoiseError, match="flow-matching.*scheduler='pipeline'"):
        collect(pipe, ["a red cube"], tmp_path / "npd", get_scorer("toy-soft"), progress=False)
    assert not (tmp_path / "npd").exists()  # refused before anything was written
