"""The 'prompt-offset' residual branch and `keep_norm`: what the offset depends on, the norm it
keeps, save/load, the identity start, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from npnet_reference import tiny_config

from golden_noise import NPNet
from golden_noise.core.errors import GoldenNoiseError

OFFSET = {"width": 16, "layers": 1, "heads": 2}


def offset_net(modes: int = 1, reading: str = "positions", **changes: object) -> NPNet:
    """The offset alone (no SVD, no text injection), weights randomised so it is not zero."""
    config = tiny_config(
        residual_kind="prompt-offset",
        backbone_kwargs={**OFFSET, "modes": modes, "reading": reading},
        use_svd=False,
        use_text=False,
        **changes,
    )
    torch.manual_seed(0)
    net = NPNet(config).eval()
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for parameter in net.residual.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=gen) * 0.3)
    return net


def inputs(batch: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 4, 8, 8, generator=gen), torch.randn(batch, 5, 16, generator=gen)


@pytest.mark.parametrize("reading", ["positions", "tokens"])
def test_the_offset_depends_on_the_prompt_and_not_on_the_noise(reading: str) -> None:
    net = offset_net(reading=reading)
    x, c = inputs()
    other_x, other_c = inputs(seed=1)
    with torch.no_grad():
        offset = net(x, c) - x
        same_prompt = net(other_x, c) - other_x
        other_prompt = net(x, other_c) - x
    # g - x recovers the offset up to float32 round-off of the addition (|x| ~ 3): 1e-5
    assert torch.allclose(offset, same_prompt, atol=1e-5)
    assert (offset - other_prompt).abs().max() > 0.1
    # the offset differs across latent positions
    assert offset[0].std(dim=(1, 2)).min() > 0.01


def test_read_by_tokens_the_offset_is_the_sum_of_the_tokens_offsets() -> None:
    """A prompt given twice over ([c; c]) leaves each token's attention as it was (every key
    doubled), so a sum over tokens doubles while attention's weighted mean over them, the
    positions reading, stays: the sum is what lets known words compose."""
    x, c = inputs()
    twice = torch.cat([c, c], dim=1)
    tokens, positions = offset_net(reading="tokens").residual, offset_net().residual
    with torch.no_grad():  # the branch itself: the net takes its prompts' length only
        by_tokens, by_tokens_twice = tokens.offsets(x, c), tokens.offsets(x, twice)
        by_positions, by_positions_twice = positions.offsets(x, c), positions.offsets(x, twice)
    assert by_tokens.abs().mean() > 0.1
    # float32 softmax over 5 or 10 keys and sums of 5 or 10 terms round differently by
    # ~1e-6 of values ~1-10 on any CPU; 1e-4 leaves margin, and a wrong form is off by ~1
    torch.testing.assert_close(by_tokens_twice, 2 * by_tokens, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(by_positions_twice, by_positions, rtol=1e-4, atol=1e-4)


def test_keep_norm_rescales_each_sample_to_the_noise_norm() -> None:
    net = offset_net(keep_norm=True)
    x, c = inputs()
    with torch.no_grad():
        golden = net(x, c)
        free = offset_net()(x, c)
    norms = x.flatten(1).norm(dim=1)
    # float32 norms of 256 numbers agree to ~1e-6 relative on any CPU; 1e-5 leaves margin
    assert torch.allclose(golden.flatten(1).norm(dim=1), norms, rtol=1e-5)
    assert not torch.allclose(free.flatten(1).norm(dim=1), norms, rtol=1e-2)
    expected = free * (norms / free.flatten(1).norm(dim=1)).view(-1, 1, 1, 1)
    assert torch.allclose(golden, expected, atol=1e-5)


@pytest.mark.parametrize("reading", ["positions", "tokens"])
def test_a_fresh_offset_net_is_the_identity_and_its_head_learns_at_once(reading: str) -> None:
    torch.manual_seed(0)
    config = tiny_config(residual_kind="prompt-offset",
                         backbone_kwargs={**OFFSET, "reading": reading},
                         use_svd=False, use_text=False, keep_norm=True)  # fmt: skip
    net = NPNet(config)
    x, c = inputs()
    golden = net(x, c)
    assert torch.equal(golden, x)
    golden.square().sum().backward()
    assert net.residual.head.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("reading", ["positions", "tokens"])
def test_each_noise_takes_the_mode_it_leans_toward(reading: str) -> None:
    net = offset_net(modes=3, reading=reading)
    x, c = inputs(batch=64)
    with torch.no_grad():
        modes = net.prompt_offsets(c)
        shift = net(x, c) - x
    assert modes.shape == (64, 3, 4, 8, 8)
    # by hand, row by row: the mode with the largest x . m / |m|
    chosen = [
        max(range(3), key=lambda k, i=i: float((x[i] * modes[i, k]).sum() / modes[i, k].norm()))
        for i in range(64)
    ]
    assert set(chosen) == {0, 1, 2}  # every mode serves some of the noises
    # g - x recovers the offset up to float32 round-off of the addition (|x| ~ 3): 1e-5
    assert torch.allclose(shift, modes[torch.arange(64), chosen], atol=1e-5)


@pytest.mark.parametrize(("modes", "reading"), [(1, "positions"), (3, "positions"), (3, "tokens")])
def test_the_offset_net_round_trips_exactly(tmp_path: Path, modes: int, reading: str) -> None:
    net = offset_net(modes=modes, reading=reading, keep_norm=True)
    net.save_pretrained(tmp_path)
    loaded = NPNet.from_pretrained(tmp_path).eval()
    assert loaded.config.residual_kind == "prompt-offset" and loaded.config.keep_norm
    assert loaded.residual.reading == reading
    x, c = inputs()
    with torch.no_grad():
        assert torch.equal(loaded(x, c), net(x, c))


def test_the_offset_needs_the_prompt_and_valid_sizes() -> None:
    x, _ = inputs()
    with pytest.raises(GoldenNoiseError, match="prompt-offset residual"):
        offset_net()(x, None)
    with pytest.raises(GoldenNoiseError, match="unknown \\['depth'\\]"):
        NPNet(tiny_config(residual_kind="prompt-offset", backbone_kwargs={"depth": 2}))
    with pytest.raises(GoldenNoiseError, match="heads dividing width"):
        NPNet(tiny_config(residual_kind="prompt-offset", backbone_kwargs={"width": 6}))
    with pytest.raises(GoldenNoiseError, match="heads and modes, with heads dividing width"):
        NPNet(tiny_config(residual_kind="prompt-offset", backbone_kwargs={"modes": 0}))
    with pytest.raises(
        GoldenNoiseError, match="one of \\['positions', 'tokens'\\]; got reading 'words'"
    ):
        NPNet(tiny_config(residual_kind="prompt-offset", backbone_kwargs={"reading": "words"}))
    with pytest.raises(GoldenNoiseError, match="keep_norm"):
        tiny_config(keep_norm="yes")
