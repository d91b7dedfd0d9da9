"""How a trained NPNet starts: ImageNet Swin by default (timm's own loading, never the network
in tests), a random start on request, and cross-model fine-tuning from another NPNet."""

from __future__ import annotations

import json
from pathlib import Path

import huggingface_hub
import pytest
import timm
import torch
from npd_fixtures import write_synthetic_dataset
from safetensors.torch import save_file
from tiny_pipelines import ALL_BUILDERS, tiny_npnet

from golden_noise.adapters import adapter_for
from golden_noise.core.errors import GoldenNoiseError
from golden_noise.dataset import DatasetManifest, DatasetWriter, PromptRecord
from golden_noise.npnet import NPNet, NPNetConfig
from golden_noise.train import TrainConfig, train
from golden_noise.train.model import load_backbone_weights, resolve_backbone_init

SWIN = "swin_tiny_patch4_window7_224"
# Swin-T's architecture at toy size (52K parameters): a real timm Swin, with the released
# model's name, so timm resolves its ImageNet weights exactly as for the released net.
TINY_SWIN = {
    "residual_kind": "timm",
    "backbone": SWIN,
    "backbone_kwargs": {
        "img_size": 32,
        "window_size": 4,
        "embed_dim": 16,
        "depths": [1, 1],
        "num_heads": [1, 2],
    },
    "backbone_input_size": 32,
    "svd_hidden": 16,
    "svd_mlp_hidden": 64,
}


def config(dataset: Path, out: Path, **overrides) -> TrainConfig:
    settings = dict(
        dataset=dataset, out=out, batch_size=16, epochs=1, lr=3e-3, margin=None,
        val_fraction=0.25, npnet=dict(TINY_SWIN), log_with="none", progress=False,
    )  # fmt: skip
    return TrainConfig(**{**settings, **overrides})


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_dataset(tmp_path_factory.mktemp("npd") / "npd", n_prompts=12)


@pytest.fixture
def no_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An offline machine with an empty Hugging Face cache (read at call time by the hub)."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))


@pytest.fixture
def swin_weights(tmp_path: Path) -> dict[str, torch.Tensor]:
    """A tiny random Swin saved as a file, standing in for ImageNet's (made offline)."""
    torch.manual_seed(7)
    model = timm.create_model(SWIN, pretrained=False, **TINY_SWIN["backbone_kwargs"])
    state = {k: v.clone().contiguous() for k, v in model.state_dict().items()}
    save_file(state, tmp_path / "swin.safetensors")
    return state


def _net() -> NPNet:
    return NPNet(NPNetConfig(height=8, width=8, text_tokens=8, text_dim=16, **TINY_SWIN))


def test_a_swin_net_starts_from_imagenet_by_default_and_others_do_not() -> None:
    assert resolve_backbone_init(_net(), "auto", fine_tuning=False) == "imagenet"
    assert resolve_backbone_init(NPNet(NPNetConfig()), "auto", fine_tuning=False) == "imagenet"
    assert resolve_backbone_init(_net(), "auto", fine_tuning=True) == "init_from"
    toy_vit = tiny_npnet(16, size=8)  # the toy's kind of tiny ViT: no weights to have
    unet = NPNet(NPNetConfig(height=8, width=8, text_tokens=8, text_dim=16, residual_kind="unet"))
    offset = NPNet(NPNetConfig(height=8, width=8, text_tokens=8, text_dim=16,
                               residual_kind="prompt-offset"))  # fmt: skip
    for net in (toy_vit, unet, offset):
        assert resolve_backbone_init(net, "auto", fine_tuning=False) == "random"


def test_offline_without_cache_stops_with_one_error_naming_the_random_option(
    dataset: Path, tmp_path: Path, no_hub: None
) -> None:
    with pytest.raises(GoldenNoiseError) as caught:
        train(config(dataset, tmp_path / "run"))
    message = str(caught.value)
    assert "ImageNet weights" in message and SWIN in message
    assert "--backbone-init random" in message
    assert not (tmp_path / "run" / "last").exists()


def test_random_start_trains_and_is_recorded(dataset: Path, tmp_path: Path, no_hub: None) -> None:
    result = train(config(dataset, tmp_path / "run", backbone_init="random"))
    record = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert record["backbone_init"] == "random" and result.history
    # "auto" on the toy-size default (a UNet residual): recorded as what it resolved to
    train(config(dataset, tmp_path / "unet", npnet={}))
    record = json.loads((tmp_path / "unet" / "train_config.json").read_text())
    assert record["backbone_init"] == "random"


def test_imagenet_goes_through_timms_own_pretrained_loading(
    swin_weights, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """timm is pointed at the local file (pretrained_cfg_overlay) instead of the hub: its own
    pretrained loading then puts those weights in the backbone."""
    net, calls, create = _net(), [], timm.create_model

    def local_hub(name, pretrained=False, **kwargs):
        calls.append((name, pretrained))
        if pretrained:
            kwargs["pretrained_cfg_overlay"] = {"file": str(tmp_path / "swin.safetensors")}
        return create(name, pretrained=pretrained, **kwargs)

    monkeypatch.setattr(timm, "create_model", local_hub)
    note = load_backbone_weights(net, "imagenet")
    assert calls == [(SWIN, True)] and "ImageNet" in note
    loaded = net.residual.backbone.state_dict()
    for key, value in swin_weights.items():
        if key in loaded:  # timm rebuilds buffers such as relative_position_index itself
            assert torch.equal(loaded[key], value), key


def test_a_weights_file_is_loaded_by_timm(swin_weights, tmp_path: Path, dataset: Path) -> None:
    net = _net()
    load_backbone_weights(net, str(tmp_path / "swin.safetensors"))
    weight = "layers.0.blocks.0.attn.qkv.weight"
    assert torch.equal(net.residual.backbone.state_dict()[weight], swin_weights[weight])
    with pytest.raises(GoldenNoiseError, match="backbone_init must be 'auto', 'imagenet'"):
        config(dataset, tmp_path / "x", backbone_init=str(tmp_path / "missing.pth"))


# --- cross-model fine-tuning ------------------------------------------------------------------
def _family_dataset(root: Path, family: str, rows: int = 32) -> Path:
    """Random pairs shaped like the tiny `family` pipeline's latents and prompt embeddings."""
    adapter = adapter_for(ALL_BUILDERS[family]())
    latent, text = adapter.latent_shape(1)[1:], adapter.text_shape()
    manifest = DatasetManifest(family=family, latent_shape=latent, text_shape=text,
                               scorer="synthetic", margin=0.0)  # fmt: skip
    prompts = [PromptRecord(index=p, text=f"prompt {p}") for p in range(8)]
    gen = torch.Generator().manual_seed(0)
    with DatasetWriter(root, manifest, prompts=prompts) as writer:
        writer.add_embeddings(list(range(8)), torch.randn(8, *text, generator=gen))
        source = torch.randn(rows, *latent, generator=gen)
        index = [i % 8 for i in range(rows)]
        writer.add(source, 0.9 * source, index, list(range(rows)), [0.0] * rows, [1.0] * rows)
    return root


def test_an_sdxl_npnet_fine_tunes_on_hunyuan_dit_data(tmp_path: Path, capsys) -> None:
    sdxl = adapter_for(ALL_BUILDERS["sdxl"]())
    tokens, width = sdxl.text_shape()
    source = tiny_npnet(width, size=sdxl.latent_shape(1)[2], family="sdxl", text_tokens=tokens)
    source.save_pretrained(tmp_path / "sdxl-net")
    data = _family_dataset(tmp_path / "hunyuan", "hunyuan-dit")
    run = TrainConfig(
        dataset=data, out=tmp_path / "run", init_from=str(tmp_path / "sdxl-net"), batch_size=8,
        epochs=1, margin=None, val_fraction=0.25, log_with="none", progress=False,
    )  # fmt: skip
    result = train(run)
    printed = capsys.readouterr().out
    assert result.history and "re-initialised" in printed
    assert "text.norm.linear.weight" in printed  # the text injection: another text width
    tuned = NPNet.from_pretrained(str(tmp_path / "run" / "last"))
    manifest = DatasetManifest.load(data)
    assert (tuned.config.text_tokens, tuned.config.text_dim) == manifest.text_shape
    assert tuned.config.family == "hunyuan-dit"
    assert tuned.config.backbone_kwargs == source.config.backbone_kwargs  # its architecture


def test_transfer_keeps_every_tensor_that_fits(tmp_path: Path) -> None:
    from golden_noise.train.model import transfer_npnet

    source = tiny_npnet(48, size=16, family="sdxl")
    manifest = DatasetManifest(family="hunyuan-dit", latent_shape=(4, 16, 16),
                               text_shape=(77, 32))  # fmt: skip
    net, note = transfer_npnet(source, manifest, {})
    own, theirs = net.state_dict(), source.state_dict()
    fresh = [
        k for k in own if not torch.equal(own[k], theirs[k]) or own[k].shape != theirs[k].shape
    ]
    kept = [k for k in own if k not in fresh]
    assert [k for k in own if own[k].shape != theirs[k].shape] == fresh  # only misfits re-made
    assert "residual.downconv.weight" in kept and "svd.mlp4.0.weight" in kept and "alpha" in kept
    assert all(k.startswith("text.") for k in fresh) and fresh
    assert f"re-initialised {len(fresh)}: " in note and "(source [8, 3696])" in note


def test_a_net_of_the_same_shapes_from_another_family_takes_the_datas_family(tmp_path) -> None:
    """SD 2.x and Hunyuan-DiT both give 77x1024 prompt embeddings: nothing to re-initialise,
    but the fine-tuned net is the new family's."""
    from golden_noise.train.model import build_npnet

    tiny_npnet(32, size=8, family="sd2").save_pretrained(tmp_path / "sd2-net")
    manifest = DatasetManifest(family="hunyuan-dit", latent_shape=(4, 8, 8), text_shape=(77, 32))
    net = build_npnet(manifest, {}, init_from=tmp_path / "sd2-net")
    assert net.config.family == "hunyuan-dit" and net.training
