"""Each NPNet branch against an independent computation of its formula, on tiny nets."""

from __future__ import annotations

import pytest
import torch
from npnet_reference import svd_reference, tiny_config
from torch.nn import functional as F

from golden_noise import NPNet, NPNetConfig
from golden_noise.npnet.residual_branch import ResidualBranch
from golden_noise.npnet.svd_branch import SVDBranch
from golden_noise.npnet.text_injection import TextInjection

SVD_CASES = {
    "square-attention": {},
    "square-mean": {"svd_variant": "mean"},
    "non-square": {"height": 8, "width": 12},
    "tall": {"height": 12, "width": 8},
    "16-channels": {"channels": 16},
}


def _randomize(module: torch.nn.Module) -> None:
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn_like(parameter) * 0.1)


@pytest.mark.parametrize("changes", SVD_CASES.values(), ids=SVD_CASES.keys())
def test_svd_branch_matches_formula(changes) -> None:
    config = tiny_config(**changes)
    branch = SVDBranch(config)
    _randomize(branch)
    x = torch.randn(3, config.channels, config.height, config.width)
    with torch.no_grad():
        ours = branch(x)
        expected = svd_reference(x, branch.state_dict(), config.svd_variant, config.svd_heads)
    torch.testing.assert_close(ours, expected)
    assert (ours - x).abs().max() > 1e-2  # the singular values really moved


def _text_formula(x, c, linear_weight, linear_bias):
    scale, shift = F.linear(c, linear_weight, linear_bias)[:, :, None, None].chunk(2, dim=1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    var = x.var(dim=(1, 2, 3), unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-6) * (1 + scale) + shift


@pytest.mark.parametrize("reduction", ["none", "mean", "projection"])
def test_text_injection_matches_formula(reduction) -> None:
    config = tiny_config(
        text_reduction=reduction, text_reduction_dim=3 if reduction == "projection" else 0
    )
    text = TextInjection(config)
    _randomize(text)
    x, c = torch.randn(2, 4, 8, 8) * 3 + 1, torch.randn(2, 5, 16)
    if reduction == "none":
        condition = c.reshape(2, 80)
    elif reduction == "mean":
        condition = c.sum(1) / 5
    else:
        condition = (c @ text.projection.weight.T + text.projection.bias).reshape(2, 15)
    expected = _text_formula(x, condition, text.norm.linear.weight, text.norm.linear.bias)
    with torch.no_grad():
        torch.testing.assert_close(text(x, c), expected, rtol=1e-5, atol=1e-5)


def test_residual_branch_on_vit_tokens_matches_formula() -> None:
    """Tokens [B, N, F] become one channel of an N x F image, resized nearest to H x W."""
    config = tiny_config(height=8, width=12)
    branch = ResidualBranch(config).eval()
    assert branch.upconv.in_channels == 1
    x = torch.randn(2, 4, 8, 12)
    with torch.no_grad():
        small = F.interpolate(x, size=(16, 16), mode="nearest")
        tokens = branch.backbone.forward_features(
            F.conv2d(small, branch.downconv.weight, branch.downconv.bias)
        )
        assert tokens.shape == (2, 5, 32)  # 1 class token + 2x2 patches
        rows = torch.floor(torch.arange(8) * (5 / 8)).long()
        cols = torch.floor(torch.arange(12) * (32 / 12)).long()
        image = tokens[:, rows][:, :, cols].unsqueeze(1)
        expected = F.conv2d(image, branch.upconv.weight, branch.upconv.bias)
        torch.testing.assert_close(branch(x), expected)


def test_residual_branch_keeps_a_cnn_feature_map_as_channels() -> None:
    config = tiny_config(backbone="test_resnet", backbone_kwargs={}, backbone_input_size=64)
    branch = ResidualBranch(config).eval()
    features = branch.backbone.num_features
    assert branch.upconv.in_channels == features
    with torch.no_grad():
        x = torch.randn(1, 4, 8, 8)
        # Written out: nearest resize = pixel floor(i * in / out) (8 -> 64: each pixel 8x8
        # times), 1x1 convolutions = per-pixel matrix products with the conv weights.
        big = x[:, :, torch.arange(64) // 8][:, :, :, torch.arange(64) // 8]
        down = branch.downconv.weight[:, :, 0, 0]
        image = torch.einsum("oc,bchw->bohw", down, big) + branch.downconv.bias[:, None, None]
        maps = branch.backbone.forward_features(image)  # timm's own network, not ours
        assert maps.shape[:2] == (1, features)
        rows = torch.floor(torch.arange(8) * (maps.shape[2] / 8)).long()
        cols = torch.floor(torch.arange(8) * (maps.shape[3] / 8)).long()
        small = maps[:, :, rows][:, :, :, cols]
        up = branch.upconv.weight[:, :, 0, 0]
        expected = torch.einsum("oc,bchw->bohw", up, small) + branch.upconv.bias[:, None, None]
        # the same products summed in another order: float32 round-off on features ~1
        torch.testing.assert_close(branch(x), expected, rtol=1e-5, atol=1e-5)


ABLATIONS = {
    "full": {},
    "no-svd": {"use_svd": False},
    "no-text": {"use_text": False},
    "no-residual": {"use_residual": False},
}


@pytest.mark.parametrize("changes", ABLATIONS.values(), ids=ABLATIONS.keys())
def test_npnet_composes_its_branches(changes) -> None:
    """golden = SVD(x) + (2 sigmoid(alpha) - 1) t + beta Residual(x + t), absent parts dropped."""
    net = NPNet(tiny_config(**changes)).eval()
    _randomize(net)
    x, c = torch.randn(2, 4, 8, 8), torch.randn(2, 5, 16)
    with torch.no_grad():
        t = net.text(x, c) if net.text is not None else torch.zeros_like(x)
        expected = net.svd(x) if net.svd is not None else x.clone()
        expected = expected + (2 * torch.sigmoid(net.alpha) - 1) * t
        if net.residual is not None:
            expected = expected + net.beta * net.residual(x + t)
        ours = net(x, c if net.text is not None else None)
    torch.testing.assert_close(ours, expected)
    assert (net.svd is None, net.text is None, net.residual is None) == (
        not net.config.use_svd,
        not net.config.use_text,
        not net.config.use_residual,
    )


IDENTITY_CASES = {
    "tiny": {},
    "16-channels": {"channels": 16},
    "non-square": {"width": 12},
    "projection": {"text_reduction": "projection", "text_reduction_dim": 4},
}


@pytest.mark.parametrize("changes", IDENTITY_CASES.values(), ids=IDENTITY_CASES.keys())
def test_zeroed_gates_make_the_identity(changes) -> None:
    net = NPNet(tiny_config(**changes)).eval()
    _randomize(net)
    with torch.no_grad():
        net.alpha.zero_()
        net.beta.zero_()
        net.svd.mlp4[2].weight.zero_()
        net.svd.mlp4[2].bias.zero_()
    config = net.config
    x = torch.randn(2, config.channels, config.height, config.width)
    with torch.no_grad():
        # U diag(s) Vh rebuilds x to LAPACK's round-off, ~n * 1.2e-7 * s_max for an n x n
        # matrix (4.3e-6 measured here; the SVD routine differs between CPUs and BLAS builds);
        # 1e-4 keeps room while any gate left open moves x by ~1e-1.
        torch.testing.assert_close(net(x, torch.randn(2, 5, 16)), x, rtol=0, atol=1e-4)


def test_released_default_config_builds_the_released_shapes() -> None:
    net = NPNet(NPNetConfig())
    shapes = {key: tuple(value.shape) for key, value in net.state_dict().items()}
    assert shapes["svd.mlp1.0.weight"] == (64, 256)
    assert shapes["svd.attention.qkv.weight"] == (768, 256)
    assert shapes["svd.mlp4.0.weight"] == (1024, 256)
    assert shapes["residual.downconv.weight"] == (3, 4, 1, 1)
    assert shapes["residual.upconv.weight"] == (4, 7, 1, 1)
    assert shapes["text.norm.linear.weight"] == (8, 77 * 2048)
    assert shapes["alpha"] == shapes["beta"] == (1,)
