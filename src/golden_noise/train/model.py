"""The NPNet a run trains: shapes from the dataset's manifest, architecture from overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.dataset import DatasetManifest
from golden_noise.npnet import NPNet, NPNetConfig
from golden_noise.npnet.config import RESIDUAL_FIELDS, default_architecture

SHAPE_FIELDS = ("channels", "height", "width", "text_tokens", "text_dim")

# The prompt-offset teacher's targets are the noise plus a function of the prompt at the
# noise's norm, so for its data, at any shape, the net is exactly that: the prompt-offset
# branch with `keep_norm`, without the SVD and text-injection branches.
OFFSET_NET = {"residual_kind": "prompt-offset", "keep_norm": True, "use_svd": False,
              "use_text": False}  # fmt: skip


def fresh_architecture(
    latent_shape: tuple[int, ...],
    overrides: dict[str, Any],
    teacher: str | None = None,
    teacher_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The residual-branch fields a fresh net gets for data made by `teacher`.

    The model layer picks by shape (`npnet.config.default_architecture`); here, where the
    data's teacher is known, the prompt-offset teacher's data get the offset net (flags given
    still win) with as many modes as the teacher fitted. A user who names any residual field
    gets exactly what they asked for.
    """
    if teacher == "prompt-offset" and not set(overrides) & set(RESIDUAL_FIELDS):
        modes = (teacher_options or {}).get("modes", 1)
        return {**OFFSET_NET, "backbone_kwargs": {"modes": modes}} if modes > 1 else OFFSET_NET
    return default_architecture(latent_shape, overrides)


def shapes_from_manifest(manifest: DatasetManifest) -> dict[str, int]:
    channels, height, width = manifest.latent_shape
    tokens, dim = manifest.text_shape
    return dict(channels=channels, height=height, width=width, text_tokens=tokens, text_dim=dim)


def check_fits(config: NPNetConfig, manifest: DatasetManifest, what: str) -> None:
    """Refuse an NPNet whose latent or text shape differs from the dataset's."""
    expected = shapes_from_manifest(manifest)
    found = {k: getattr(config, k) for k in SHAPE_FIELDS}
    if found != expected:
        diff = ", ".join(
            f"{k}: dataset {expected[k]}, {what} {found[k]}"
            for k in SHAPE_FIELDS
            if found[k] != expected[k]
        )
        raise GoldenNoiseError(
            f"{what} does not fit the dataset ({manifest.family}, latents "
            f"{list(manifest.latent_shape)}, text {list(manifest.text_shape)}): {diff}"
        )


def build_npnet(
    manifest: DatasetManifest,
    overrides: dict[str, Any],
    init_from: str | Path | None = None,
) -> NPNet:
    """A fresh NPNet sized for the dataset, or a loaded one.

    A fresh net's residual branch is `fresh_architecture`'s unless `overrides` name one:
    the offset net for the prompt-offset teacher's datasets, else the released configuration
    for the released latent shape and the UNet branch for other shapes.
    """
    if init_from is not None:
        net = NPNet.from_pretrained(str(init_from), **overrides)
        check_fits(net.config, manifest, f"NPNet {init_from}")
        return net.train()
    clash = sorted(set(overrides) & set(SHAPE_FIELDS))
    config = NPNetConfig.from_dict(
        {
            **shapes_from_manifest(manifest),
            "family": manifest.family,
            **fresh_architecture(
                manifest.latent_shape, overrides, manifest.teacher, manifest.teacher_options
            ),
            **overrides,
        }
    )
    if clash:
        check_fits(config, manifest, "the requested NPNet")
    return NPNet(config)


def _cached_timm_file(name: str) -> str | None:
    """Path of timm's pretrained weights for `name` if already in the local HF cache."""
    import timm
    from huggingface_hub import try_to_load_from_cache

    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except (RuntimeError, ValueError):
        return None
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not hub_id:
        return None
    for filename in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(hub_id, filename)
        if isinstance(found, str):
            return found
    return None


def load_backbone_weights(net: NPNet, source: bool | str) -> str:
    """Load pretrained timm weights into the residual backbone; say what happened.

    `source=True` looks in the local Hugging Face cache only (no download); a string is a
    weights file. Without local weights the backbone stays randomly initialised.
    """
    import timm

    if not source:
        return "residual backbone: random initialisation"
    if net.residual is None:
        raise GoldenNoiseError(
            "backbone_pretrained needs the residual branch; the net has use_residual=False"
        )
    if net.config.residual_kind != "timm":
        raise GoldenNoiseError(
            f"backbone_pretrained loads timm weights, but the net's residual branch is "
            f"{net.config.residual_kind!r} (the default for latents other than 4x128x128); "
            "name a timm backbone (--residual-kind timm --backbone NAME) or drop it"
        )
    name = net.config.backbone
    path = source if isinstance(source, str) else _cached_timm_file(name)
    if path is None:
        return (
            f"residual backbone: random initialisation (no local pretrained weights for timm "
            f"{name!r} in the Hugging Face cache, and golden-noise never downloads them; pass a "
            f"weights file to use your own)"
        )
    if not Path(path).is_file():
        raise GoldenNoiseError(f"backbone weights file {path} does not exist")
    try:
        pretrained = timm.create_model(
            name,
            pretrained=True,
            pretrained_cfg_overlay={"file": str(path)},
            **net.config.backbone_kwargs,
        )
    except (RuntimeError, ValueError, OSError) as exc:
        raise GoldenNoiseError(f"cannot load timm weights {path} into {name!r}: {exc}") from exc
    with torch.no_grad():
        net.residual.backbone.load_state_dict(pretrained.state_dict())
    return f"residual backbone: pretrained timm weights from {path}"
