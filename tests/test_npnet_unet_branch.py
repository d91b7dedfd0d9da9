"""The 'unet' residual branch: shapes, save/load, where the prompt acts, and the default choice."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from npnet_reference import tiny_config
from spatial_fixtures import (
    BUMP_HEIGHT,
    COLOURS,
    LATENT,
    SIDES,
    bump,
    word_vectors,
    write_spatial_dataset,
)

from golden_noise import NPNet
from golden_noise.core.errors import GoldenNoiseError
from golden_noise.dataset import DatasetManifest
from golden_noise.demo.config import TOY_NPNET
from golden_noise.npnet.config import NEW_SHAPE_UNET
from golden_noise.npnet.unet_branch import UNetResidualBranch
from golden_noise.train import TrainConfig, train
from golden_noise.train.model import build_npnet, fresh_architecture, load_backbone_weights

# A few-thousand-parameter UNet: two resolutions, cross-attention at both.
TINY_UNET = {"block_out_channels": [8, 16], "norm_num_groups": 4, "attention_head_dim": 4}


# The spatial training check: 192 prompts x 2 seeds (the val split holds 48 unseen prompts).
SPATIAL_PROMPTS = 192
# Measured (this CPU, 2 cores shared): the default UNet ends at 0.007x the better baseline
# (val MSE 0.0007 vs 0.100), the timm branch at 0.92x; the bounds leave a 14x and a 1.15x
# margin for other CPUs and torch versions. lr 3e-3 and batch 32 so 8 epochs take ~30 s.
SPATIAL_TRAINING = {"batch_size": 32, "epochs": 8, "lr": 3e-3, "val_fraction": 0.25}
UNET_FRACTION = 0.1
TIMM_FRACTION = 0.8
# The released residual code path with the demo's two-block ViT (TOY_NPNET) instead of Swin-T
# at 224, which takes minutes here.
SMALL_TIMM = {
    "residual_kind": "timm",
    **{k: TOY_NPNET[k] for k in ("backbone", "backbone_kwargs", "backbone_input_size")},
}


def unet_config(**changes: object):
    return tiny_config(residual_kind="unet", backbone_kwargs=dict(TINY_UNET), **changes)


def _randomize(module: torch.nn.Module) -> None:
    """Random weights everywhere (a fresh branch's zeroed output layer would hide everything)."""
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=gen) * 0.2)


@pytest.fixture
def branch() -> UNetResidualBranch:
    module = UNetResidualBranch(4, 8, 8, 16, TINY_UNET).eval()
    _randomize(module)
    return module


def test_branch_keeps_the_latent_shape_and_accepts_one_prompt_for_a_batch(branch) -> None:
    x, prompt = torch.randn(3, 4, 8, 8), torch.randn(1, 5, 16)
    with torch.no_grad():
        out = branch(x, prompt)
        each = torch.cat([branch(x[i : i + 1], prompt) for i in range(3)])
    assert out.shape == (3, 4, 8, 8)
    # batch 3 vs batch 1 moves float32 results by round-off (~1e-6); a wrong pairing is O(1)
    torch.testing.assert_close(out, each, rtol=0, atol=1e-4)


def test_the_prompt_acts_through_cross_attention_differently_at_each_position(branch) -> None:
    """Two prompts give outputs that differ by a spatial pattern, not a per-channel constant
    (all the released text injection can do); with the cross-attention outputs zeroed, the
    prompt has no effect at all, so that is the only way in."""
    x = torch.randn(2, 4, 8, 8)
    first, second = torch.randn(2, 5, 16), torch.randn(2, 5, 16)
    with torch.no_grad():
        change = branch(x, first) - branch(x, second)
        spatial = change - change.mean(dim=(2, 3), keepdim=True)
        assert spatial.abs().amax(dim=(2, 3)).min() > 1e-2  # every sample and channel
        cross = [m for name, m in branch.named_modules() if name.endswith("attn2")]
        assert cross  # the blocks really are cross-attention blocks
        for attention in cross:
            attention.to_out[0].weight.zero_()
            attention.to_out[0].bias.zero_()
        # zero weights and bias make every attn2 output exactly 0, so the rest of the network
        # sees identical tensors in the same batch: exact on any CPU
        torch.testing.assert_close(branch(x, first), branch(x, second), rtol=0, atol=0)


def test_npnet_with_the_unet_branch_round_trips_exactly(tmp_path) -> None:
    net = NPNet(unet_config()).eval()
    _randomize(net)
    net.save_pretrained(tmp_path / "net")
    loaded = NPNet.from_pretrained(tmp_path / "net")
    assert loaded.config == net.config and loaded.config.residual_kind == "unet"
    assert isinstance(loaded.residual, UNetResidualBranch)
    x, prompt = torch.randn(2, 4, 8, 8), torch.randn(2, 5, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, prompt), net(x, prompt), rtol=0, atol=0)


def test_without_text_the_unet_branch_ignores_the_prompt() -> None:
    net = NPNet(unet_config(use_text=False)).eval()
    _randomize(net)
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        plain = net(x, None)
        for prompt in (torch.randn(2, 5, 16), torch.randn(1, 5, 16)):
            torch.testing.assert_close(net(x, prompt), plain, rtol=0, atol=0)
        assert (plain - x).abs().max() > 1e-2  # the branch does act on the noise


def test_a_fresh_unet_net_starts_as_svd_plus_text_and_every_branch_gets_a_gradient() -> None:
    """The UNet's output layer starts at zero and beta at 1: the residual adds nothing at
    first, yet the loss reaches its weights at once (with beta at 0, as the released net
    starts, none of them would get a gradient until beta moved)."""
    net = NPNet(unet_config())
    x, prompt = torch.randn(2, 4, 8, 8), torch.randn(2, 5, 16)
    assert net.beta.item() == 1.0
    without = NPNet(unet_config(use_residual=False))
    without.load_state_dict(
        {k: v for k, v in net.state_dict().items() if not k.startswith("residual.")}
    )
    out = net(x, prompt)
    torch.testing.assert_close(out, without(x, prompt), rtol=0, atol=0)
    out.square().mean().backward()
    conv_out = net.residual.unet.conv_out
    assert conv_out.weight.grad.abs().max() > 0 and net.beta.grad is not None


def test_the_released_timm_net_still_starts_with_beta_zero() -> None:
    assert NPNet(tiny_config()).beta.item() == 0.0


OFFSET_NET = {
    "residual_kind": "prompt-offset", "keep_norm": True, "use_svd": False, "use_text": False,
}  # fmt: skip


@pytest.mark.parametrize(
    ("shape", "overrides", "teacher", "expected"),
    [
        ((4, 128, 128), {}, "redenoise", {}),
        (
            (4, 8, 8),
            {},
            ("prompt-offset", {"modes": 4}),
            {**OFFSET_NET, "backbone_kwargs": {"modes": 4}},
        ),
        ((4, 8, 8), {}, ("prompt-offset", {"modes": 1}), OFFSET_NET),
        ((4, 8, 8), {}, None, {"residual_kind": "unet", "backbone_kwargs": NEW_SHAPE_UNET}),
        ((16, 128, 128), {"use_svd": False}, "local-search", {"residual_kind": "unet"}),
        ((4, 8, 8), {"backbone": "vit_tiny_patch16_224"}, None, {}),
        ((4, 8, 8), {"residual_kind": "timm"}, None, {}),
        (
            (4, 64, 64),
            {"backbone_kwargs": {"block_out_channels": [16, 32]}},
            None,
            {
                "residual_kind": "unet",
                "backbone_kwargs": {**NEW_SHAPE_UNET, "block_out_channels": [16, 32]},
            },
        ),
        ((4, 64, 64), {"backbone_kwargs": {"depth": 1}, "residual_kind": "timm"}, None, {}),
        ((4, 8, 8), {}, "prompt-offset", OFFSET_NET),
        ((4, 128, 128), {}, "prompt-offset", OFFSET_NET),
        ((4, 8, 8), {"residual_kind": "unet"}, "prompt-offset", {}),
        ((4, 8, 8), {"residual_kind": "prompt-offset"}, None, OFFSET_NET),
        ((4, 128, 128), {"residual_kind": "prompt-offset"}, "local-search", OFFSET_NET),
        (
            (4, 8, 8),
            {"residual_kind": "prompt-offset"},
            ("composed-offset", {"modes": 4}),
            {**OFFSET_NET, "backbone_kwargs": {"modes": 4}},
        ),
        ((4, 8, 8), {"backbone": "vit_tiny_patch16_224"}, "composed-offset", {}),
        (
            (4, 8, 8),
            {"backbone_kwargs": {"width": 128}},
            ("prompt-offset", {"modes": 4}),
            {**OFFSET_NET, "backbone_kwargs": {"modes": 4, "width": 128}},
        ),
    ],
)
def test_fresh_architecture_by_shape_and_teacher(shape, overrides, teacher, expected) -> None:
    """Released shape: released config; other shapes: the UNet unless the branch is named;
    the prompt-offset teacher's data: the offset net (with the teacher's modes), unless
    another branch is named; the prompt-offset branch named on any data brings its companion
    fields (norm kept, no SVD or text injection); backbone_kwargs alone size the default
    branch."""
    teacher, options = teacher if isinstance(teacher, tuple) else (teacher, None)
    found = fresh_architecture(shape, overrides, teacher, options)
    assert {k: found[k] for k in expected} == expected and (found == {}) == (expected == {})


def test_backbone_kwargs_alone_size_the_offset_net_a_prompt_offset_dataset_gets() -> None:
    """`train DATA --backbone-kwargs '{"width": 32, "layers": 3}'` on a prompt-offset dataset of
    two modes: the two-mode offset net (norm kept, no SVD or text branch) of that size, not
    the released branch, and not a one-mode net."""
    manifest = DatasetManifest(
        family="sd", latent_shape=(4, 8, 8), text_shape=(16, 64), teacher="prompt-offset",
        teacher_options={"modes": 2},
    )  # fmt: skip
    net = build_npnet(manifest, {"backbone_kwargs": {"width": 32, "layers": 3, "heads": 4}})
    assert net.config.residual_kind == "prompt-offset" and net.config.keep_norm
    assert not net.config.use_svd and not net.config.use_text
    assert net.config.backbone_kwargs == {"modes": 2, "width": 32, "layers": 3, "heads": 4}


def test_naming_the_prompt_offset_branch_brings_its_fields_and_flags_given_still_win() -> None:
    """`train DATA --residual-kind prompt-offset` on data of another teacher: the offset net
    (norm kept, no SVD or text branch, which read the noise and would blur an offset), and
    `--use-text` given beside it turns text injection back on and nothing else."""
    manifest = DatasetManifest(
        family="sd", latent_shape=(4, 8, 8), text_shape=(16, 64), teacher="local-search"
    )
    net = build_npnet(manifest, {"residual_kind": "prompt-offset"})
    assert (net.config.keep_norm, net.config.use_svd, net.config.use_text) == (True, False, False)
    assert net.svd is None and net.text is None
    net = build_npnet(manifest, {"residual_kind": "prompt-offset", "use_text": True})
    assert (net.config.keep_norm, net.config.use_svd, net.config.use_text) == (True, False, True)


@pytest.fixture(scope="module")
def spatial_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_spatial_dataset(
        tmp_path_factory.mktemp("spatial") / "npd", n_prompts=SPATIAL_PROMPTS, seeds_per_prompt=2
    )


def _train(dataset: Path, out: Path, npnet: dict) -> tuple[dict, NPNet]:
    config = TrainConfig(
        dataset=dataset, out=out, npnet=npnet, margin=None, log_with="none", progress=False,
        **SPATIAL_TRAINING,
    )  # fmt: skip
    result = train(config)
    return result.history[-1], NPNet.from_pretrained(out / "best")


def test_train_without_architecture_flags_learns_where_the_prompt_puts_the_bump(
    spatial_dataset: Path, tmp_path: Path
) -> None:
    """No architecture flags on a 4x8x8 dataset: the UNet branch, far below both baselines on
    held-out prompts, with the bump on the side the prompt names; the released timm branch
    (a small ViT here for speed, the same code path) cannot place it."""
    last, net = _train(spatial_dataset, tmp_path / "default", {})
    assert net.config.residual_kind == "unet"
    baseline = min(last["val_identity"], last["val_mean_residual"])
    assert last["val_loss"] < UNET_FRACTION * baseline, last

    vectors = word_vectors()
    x = torch.randn(len(SIDES), *LATENT, generator=torch.Generator().manual_seed(7))
    tokens = [["red", side, "odd", "a"] for side in SIDES]
    prompts = torch.stack([torch.stack([vectors[w] for w in t]) for t in tokens])
    with torch.no_grad():
        added = (net(x, prompts) - x)[:, COLOURS.index("red")]
    for i, side in enumerate(SIDES):
        expected = bump(side)
        inside = expected > 0.5 * BUMP_HEIGHT
        assert added[i][inside].mean() > 0.5 * expected[inside].mean(), (side, added[i])
        assert added[i][~inside].abs().mean() < 0.5 * added[i][inside].mean(), (side, added[i])

    timm_last, _ = _train(spatial_dataset, tmp_path / "timm", dict(SMALL_TIMM))
    timm_baseline = min(timm_last["val_identity"], timm_last["val_mean_residual"])
    assert timm_last["val_loss"] > TIMM_FRACTION * timm_baseline, timm_last


def test_pretrained_timm_weights_are_refused_for_the_unet_branch_by_name() -> None:
    with pytest.raises(GoldenNoiseError, match="residual branch is 'unet'.*--residual-kind timm"):
        load_backbone_weights(NPNet(unet_config()), "imagenet")
