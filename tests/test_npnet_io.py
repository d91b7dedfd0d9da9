"""NPNet's public surface: save/load, dtypes, batching, and a clear error for every bad input."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from npnet_reference import tiny_config
from safetensors.torch import save_file

from golden_noise import GoldenNoiseError, NPNet, NPNetConfig


@pytest.fixture(scope="module")
def net() -> NPNet:
    torch.manual_seed(0)
    net = NPNet(tiny_config()).eval()
    with torch.no_grad():
        net.alpha.fill_(0.5)
        net.beta.fill_(0.2)
    return net


def _inputs(batch: int = 2, prompt_batch: int | None = None):
    noise = torch.randn(batch, 4, 8, 8)
    return noise, torch.randn(prompt_batch or batch, 5, 16)


def test_save_pretrained_round_trip_is_exact(net, tmp_path) -> None:
    net.save_pretrained(tmp_path / "saved")
    assert {"config.json", "model.safetensors"} <= {p.name for p in (tmp_path / "saved").iterdir()}
    assert json.loads((tmp_path / "saved" / "config.json").read_text()) == net.config.to_dict()
    loaded = NPNet.from_pretrained(tmp_path / "saved")
    assert loaded.config == net.config
    assert not loaded.training
    state = loaded.state_dict()
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
    noise, prompt = _inputs()
    with torch.no_grad():
        assert torch.equal(loaded(noise, prompt), net(noise, prompt))
    # the weights file itself, with its config beside it, is the same checkpoint
    again = NPNet.from_pretrained(tmp_path / "saved" / "model.safetensors")
    assert again.config == net.config


def test_push_to_hub_uploads_a_folder_that_loads_back(net, monkeypatch) -> None:
    """The hub calls are replaced (no network; a real upload is untested): what push_to_hub
    hands to `upload_folder` must be a save_pretrained folder that loads to the same net."""
    from huggingface_hub import HfApi

    uploaded = {}

    def create_repo(self, repo_id, **kwargs):
        return type("RepoUrl", (), {"repo_id": repo_id})()

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        uploaded["repo"] = repo_id
        uploaded["files"] = sorted(p.name for p in Path(folder_path).iterdir())
        uploaded["net"] = NPNet.from_pretrained(folder_path)
        return "https://huggingface.co/someone/tiny-npnet/commit/0"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    net.push_to_hub("someone/tiny-npnet")
    assert uploaded["repo"] == "someone/tiny-npnet"
    assert {"config.json", "model.safetensors"} <= set(uploaded["files"])
    assert uploaded["net"].config == net.config
    state = uploaded["net"].state_dict()
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())


def test_hub_repo_in_save_pretrained_layout_loads_offline(net, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    commit = "89abcdef0123456789abcdef0123456789abcdef"
    repo_dir = tmp_path / "cache" / "models--someone--tiny-npnet"
    net.save_pretrained(repo_dir / "snapshots" / commit)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)
    loaded = NPNet.from_pretrained("someone/tiny-npnet", cache_dir=tmp_path / "cache")
    assert loaded.config == net.config


def test_from_pretrained_overrides_config_fields(net, tmp_path) -> None:
    net.save_pretrained(tmp_path)
    assert NPNet.from_pretrained(tmp_path, family="sd2").config.family == "sd2"


def test_a_config_edited_after_its_weights_were_saved_is_refused(net, tmp_path) -> None:
    """Before: svd_heads edited in config.json (the weight shapes still fit) loaded another
    net, and generate, evaluate and train used it, exit 0."""
    net.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["svd_heads"] != 1
    heads = config["svd_heads"]
    (tmp_path / "config.json").write_text(json.dumps({**config, "svd_heads": 1}))
    with pytest.raises(GoldenNoiseError, match=f"svd_heads: saved {heads}, now 1"):
        NPNet.from_pretrained(tmp_path)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_returns_the_input_dtype_computing_in_float32(net, dtype) -> None:
    noise, prompt = _inputs()
    with torch.no_grad():
        reference = net(noise.to(dtype).float(), prompt.to(dtype).float())
        golden = net(noise.to(dtype), prompt.to(dtype))
    assert golden.dtype == dtype and golden.device == noise.device
    assert torch.equal(golden, reference.to(dtype))


def test_one_prompt_serves_a_batch_of_noises(net) -> None:
    noise, prompt = _inputs(batch=3, prompt_batch=1)
    with torch.no_grad():
        together = net(noise, prompt)
        apart = torch.cat([net(noise[i : i + 1], prompt) for i in range(3)])
    # Batch 3 vs 1 runs different kernels (sums in another order): outputs of size ~5 differ
    # by ~5e-7 here; 1e-4 leaves room for other CPUs, a row mixed up with another is off by ~1.
    torch.testing.assert_close(together, apart, rtol=0, atol=1e-4)


def _bad(noise=None, prompt=None):
    good_noise, good_prompt = _inputs()
    return (good_noise if noise is None else noise, good_prompt if prompt is None else prompt)


BAD_INPUTS = {
    "channels": (_bad(noise=torch.randn(2, 16, 8, 8)), r"noise must be \[B, 4, 8, 8\].*sd15"),
    "size": (_bad(noise=torch.randn(2, 4, 16, 16)), r"got \[2, 4, 16, 16\]"),
    "rank": (_bad(noise=torch.randn(4, 8, 8)), r"noise must be \[B, 4, 8, 8\]"),
    "integer": (_bad(noise=torch.ones(2, 4, 8, 8, dtype=torch.int64)), "floating-point"),
    "not-tensor": (_bad(noise=[[0.0]]), "floating-point tensor; got list"),
    "nan": (_bad(noise=torch.full((2, 4, 8, 8), float("nan"))), "noise contains NaN"),
    "tokens": (_bad(prompt=torch.randn(2, 77, 16)), r"\[B, 5, 16\].*sd15 5x16.*got \[2, 77, 16\]"),
    "dim": (_bad(prompt=torch.randn(2, 5, 768)), r"got \[2, 5, 768\]"),
    "batch": (_bad(prompt=torch.randn(3, 5, 16)), "batch must be 1 or match the noise batch 2"),
    "inf": (_bad(prompt=torch.full((2, 5, 16), float("inf"))), "prompt_embeds contains NaN"),
    "missing": ((torch.randn(2, 4, 8, 8), None), "prompt_embeds .* is required"),
}


@pytest.mark.parametrize("args, message", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_inputs_raise_clear_errors(net, args, message) -> None:
    with pytest.raises(GoldenNoiseError, match=message):
        net(*args)


def test_a_net_without_text_takes_no_prompt() -> None:
    net = NPNet(tiny_config(use_text=False))
    noise = torch.randn(1, 4, 8, 8)
    assert net(noise, None).shape == noise.shape


class _Payload:
    pass


def _write_bad_file(kind: str, tmp_path, net) -> object:
    path = tmp_path / "npnet.pth"
    if kind == "text":
        path.write_text("this is not a checkpoint")
    elif kind == "truncated":
        torch.save({"unet_svd": {"w": torch.zeros(1000)}}, path)
        path.write_bytes(path.read_bytes()[:300])
    elif kind == "pickled-object":
        path.write_bytes(pickle.dumps({"unet_svd": _Payload()}, protocol=2))
    elif kind == "tensor":
        torch.save(torch.zeros(3), path)
    elif kind == "other-model":
        torch.save({"conv.weight": torch.zeros(3), "conv.bias": torch.zeros(3)}, path)
    elif kind == "corrupt-safetensors":
        path = tmp_path / "npnet.safetensors"
        path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    elif kind == "bad-config":
        net.save_pretrained(tmp_path)
        (tmp_path / "config.json").write_text("{")
        path = tmp_path
    elif kind == "wrong-config":
        net.save_pretrained(tmp_path)
        config = {**net.config.to_dict(), "height": 16}
        (tmp_path / "config.json").write_text(json.dumps(config))
        path = tmp_path
    elif kind == "unknown-config-key":
        net.save_pretrained(tmp_path)
        (tmp_path / "config.json").write_text(json.dumps({"hidden": 3}))
        path = tmp_path
    elif kind == "nan-weights":  # what a diverged training run wrote before the NaN check
        poisoned = NPNet(net.config)
        poisoned.load_state_dict(net.state_dict())
        with torch.no_grad():
            poisoned.alpha.fill_(float("nan"))
        poisoned.save_pretrained(tmp_path)
        path = tmp_path
    elif kind == "empty-dir":
        path = tmp_path
    elif kind == "our-keys-without-config":
        path = tmp_path / "weights.safetensors"
        save_file(net.state_dict(), path)
    return path


BAD_FILES = {
    "text": "cannot read",
    "truncated": "cannot read",
    "pickled-object": "cannot read",
    "tensor": "holds a Tensor, expected a dict",
    "other-model": "not an NPNet checkpoint",
    "corrupt-safetensors": "cannot read",
    "bad-config": "not valid JSON",
    "wrong-config": r"shape mismatches: svd\.mlp1\.0\.weight \(expected \[16, 32\], found \[16, 16",
    "unknown-config-key": "unknown NPNet config keys",
    "nan-weights": r"NaN or infinite weights in alpha",
    "empty-dir": "expected config.json and model.safetensors",
    "our-keys-without-config": "not an NPNet checkpoint.*no config.json beside it",
}


@pytest.mark.parametrize("kind, message", BAD_FILES.items(), ids=BAD_FILES.keys())
def test_bad_files_raise_clear_errors(kind, message, net, tmp_path) -> None:
    path = _write_bad_file(kind, tmp_path, net)
    with pytest.raises(GoldenNoiseError, match=message):
        NPNet.from_pretrained(path)


def test_unknown_source_is_neither_path_nor_hub_repo(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(GoldenNoiseError, match="no such file or folder: .*missing.pth"):
        NPNet.from_pretrained(tmp_path / "missing.pth")  # a local name: never sent to the hub
    with pytest.raises(GoldenNoiseError, match="no local path"):
        NPNet.from_pretrained("nobody/no-such-npnet", cache_dir=tmp_path)
    with pytest.raises(GoldenNoiseError, match="expected a file 'x.pth'"):
        NPNet.from_pretrained(tmp_path, filename="x.pth")


CONFIG_ERRORS = {
    "channels": ({"channels": 3}, "square number"),
    "reduction-dim": ({"text_reduction": "projection"}, "text_reduction_dim must be positive"),
    "stray-dim": ({"text_reduction_dim": 8}, "text_reduction_dim must be positive"),
    "heads": ({"svd_heads": 7}, "svd_heads must divide"),
    "backbone": ({"backbone": "no_such_timm_model"}, "cannot build timm backbone"),
    "backbone-size": ({"backbone_input_size": 40}, "does not accept a 40x40 input"),
}


@pytest.mark.parametrize("changes, message", CONFIG_ERRORS.values(), ids=CONFIG_ERRORS.keys())
def test_bad_configs_raise_clear_errors(changes, message) -> None:
    with pytest.raises(GoldenNoiseError, match=message):
        NPNet(tiny_config(**changes))


def test_svd_heads_are_checked_only_when_there_is_an_svd_branch() -> None:
    """A 6x6 latent's SVD rank (12) is not a multiple of the default 8 heads; without the
    SVD branch the heads are unused and must not stop an offset or UNet net."""
    common = {"channels": 4, "height": 6, "width": 6, "text_tokens": 4, "text_dim": 8}
    with pytest.raises(GoldenNoiseError, match="svd_heads must divide the SVD rank"):
        NPNetConfig(**common, residual_kind="prompt-offset")
    config = NPNetConfig(**common, residual_kind="prompt-offset", use_svd=False, use_text=False)
    assert NPNet(config).config.svd_heads == 8


def test_config_round_trips_through_a_dict() -> None:
    config = tiny_config(text_reduction="mean", svd_variant="mean", use_residual=False)
    assert NPNetConfig.from_dict(config.to_dict()) == config


def test_load_strict_lists_every_problem_in_one_error_and_a_bad_shape_only_as_such() -> None:
    from torch import nn

    from golden_noise.core.weights import load_strict

    module = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    state = {k: v.clone() for k, v in module.state_dict().items()}
    state["0.weight"] = torch.zeros(3, 5)  # mis-shaped
    del state["1.bias"]  # missing
    state["2.weight"] = torch.zeros(1)  # unexpected
    with pytest.raises(GoldenNoiseError) as error:
        load_strict(module, state, "bad.pth")
    message = str(error.value)
    assert message.startswith("checkpoint bad.pth does not fit this Sequential; ")
    assert "missing keys: 1.bias; unexpected keys: 2.weight; " in message
    assert message.endswith("shape mismatches: 0.weight (expected [3, 2], found [3, 5])")
    load_strict(module, module.state_dict(), "good.pth")  # a fitting one loads
