"""The authors' released checkpoints: every published layout loads strictly and reproduces the
authors' forward (an independent re-implementation on the raw tensors) bit for bit."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from npnet_reference import SWIN, npnet_reference, released_checkpoint
from safetensors.torch import save_file

from golden_noise import GoldenNoiseError, NPNet

RELEASED = {"sdxl": 2048, "hunyuan": 1024}  # sdxl.pth / dreamshaper.pth, dit.pth


@pytest.fixture(scope="module", params=sorted(RELEASED))
def released(request, tmp_path_factory) -> tuple[str, dict, Path]:
    torch.manual_seed(1)
    family = request.param
    checkpoint = released_checkpoint(RELEASED[family])
    path = tmp_path_factory.mktemp(family) / f"{family}.pth"
    torch.save(checkpoint, path)
    return family, checkpoint, path


@pytest.fixture(scope="module")
def inputs(released) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(noise, prompt_embeds, the authors' golden noise for them), batch 2."""
    family, checkpoint, _ = released
    generator = torch.Generator().manual_seed(2)
    noise = torch.randn(2, 4, 128, 128, generator=generator)
    prompt = torch.randn(2, 77, RELEASED[family], generator=generator)
    with torch.no_grad():
        return noise, prompt, npnet_reference(checkpoint, noise, prompt)


@pytest.fixture(scope="module")
def loaded(released) -> NPNet:
    return NPNet.from_pretrained(released[2])


def _flat(checkpoint: dict, text_prefix: str) -> dict[str, torch.Tensor]:
    flat = {}
    for key in ("unet_svd", "unet_embedding", "embeeding"):
        prefix = text_prefix if key == "embeeding" else key
        flat.update({f"{prefix}.{sub}": t for sub, t in checkpoint[key].items()})
    return {**flat, "alpha": checkpoint["alpha"], "beta": checkpoint["beta"]}


def test_released_pth_infers_config_and_matches_authors_forward(released, inputs, loaded) -> None:
    family = released[0]
    net, (noise, prompt, reference) = loaded, inputs
    config = net.config
    assert (config.channels, config.height, config.width) == (4, 128, 128)
    assert (config.text_tokens, config.text_dim) == (77, RELEASED[family])
    assert (config.family, config.svd_variant, config.backbone) == (family, "attention", SWIN)
    assert net.residual.upconv.in_channels == 7  # Swin's 7 NHWC rows read as channels
    with torch.no_grad():
        ours = net(noise, prompt)
    assert torch.equal(ours, reference)
    assert (ours - noise).abs().mean() > 0.05  # every branch contributed something


def test_svd_variant_mean_follows_the_authors_trainer(released, inputs) -> None:
    _, checkpoint, path = released
    noise, prompt, attention = inputs
    net = NPNet.from_pretrained(path, svd_variant="mean")
    with torch.no_grad():
        ours = net(noise, prompt)
        reference = npnet_reference(checkpoint, noise, prompt, variant="mean")
    assert torch.equal(ours, reference)
    assert not torch.allclose(ours, attention)


def test_old_timm_swin_buffers_load(released, inputs, tmp_path) -> None:
    """Checkpoints saved with older timm carry relative_position_index and attn_mask."""
    _, checkpoint, _ = released
    swin = timm.create_model(SWIN, pretrained=False)
    old_buffers = {
        f"swin.{name}": buffer
        for name, buffer in swin.named_buffers()
        if name.endswith(("relative_position_index", "attn_mask"))
    }
    assert len(old_buffers) >= 12
    old = {**checkpoint, "unet_embedding": {**checkpoint["unet_embedding"], **old_buffers}}
    torch.save(old, tmp_path / "old.pth")
    noise, prompt, reference = inputs
    with torch.no_grad():
        assert torch.equal(NPNet.from_pretrained(tmp_path / "old.pth")(noise, prompt), reference)


@pytest.mark.parametrize("text_prefix", ["embeeding", "text_embedding"])  # Lucipher, asagi4
def test_flat_safetensors_conversions(released, loaded, tmp_path, text_prefix) -> None:
    save_file(_flat(released[1], text_prefix), tmp_path / "npnet.safetensors")
    converted, original = NPNet.from_pretrained(tmp_path / "npnet.safetensors"), loaded
    assert converted.config == original.config
    for key, tensor in original.state_dict().items():
        assert torch.equal(converted.state_dict()[key], tensor), key


def test_unexpected_and_missing_keys_are_listed(released, tmp_path) -> None:
    _, checkpoint, _ = released
    broken = {**checkpoint, "unet_svd": dict(checkpoint["unet_svd"])}
    del broken["unet_svd"]["mlp3.0.bias"]
    broken["unet_svd"]["extra.weight"] = torch.zeros(1)
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(GoldenNoiseError, match=r"missing keys: svd\.mlp3\.0\.bias") as error:
        NPNet.from_pretrained(tmp_path / "broken.pth")
    assert "unexpected keys: svd.extra.weight" in str(error.value)


def _hub_snapshot(cache: Path, repo: str, files: dict[str, Path]) -> None:
    """Lay out `files` as huggingface_hub's cache holds a downloaded snapshot of `repo`."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = cache / f"models--{repo.replace('/', '--')}"
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name, source in files.items():
        (snapshot / name).symlink_to(source)  # the cache links snapshots to blobs too
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)


def test_hub_id_loads_offline_from_the_cache(released, inputs, tmp_path, monkeypatch) -> None:
    family, _, path = released
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _hub_snapshot(tmp_path, "Klayand/GoldenNoiseModel", {f"{family}.pth": path})
    net = NPNet.from_pretrained(
        "Klayand/GoldenNoiseModel",
        filename=f"{family}.pth",
        cache_dir=tmp_path,
        local_files_only=True,
    )
    noise, prompt, reference = inputs
    with torch.no_grad():
        assert torch.equal(net(noise, prompt), reference)
    with pytest.raises(GoldenNoiseError, match="hub lookup failed"):
        NPNet.from_pretrained("Klayand/GoldenNoiseModel", filename="nope.pth", cache_dir=tmp_path)
