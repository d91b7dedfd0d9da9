"""The NPNet a run trains: shapes from the dataset's manifest, architecture from overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.dataset import DatasetManifest
from golden_noise.npnet import NPNet, NPNetConfig
from golden_noise.npnet.config import BRANCH_FIELDS, OFFSET_NET_FIELDS, default_architecture

SHAPE_FIELDS = ("channels", "height", "width", "text_tokens", "text_dim")

# The prompt-offset teacher's targets are the noise plus a function of the prompt at the
# noise's norm, so for its data, at any shape, the net is exactly that: `OFFSET_NET_FIELDS`.
OFFSET_TEACHERS = ("prompt-offset", "composed-offset")


def fresh_architecture(
    latent_shape: tuple[int, ...],
    overrides: dict[str, Any],
    teacher: str | None = None,
    teacher_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The residual-branch fields a fresh net gets for data made by `teacher`.

    The model layer picks by shape (`npnet.config.default_architecture`); here, where the
    data's teacher is known, the offset teachers' data get the offset net (flags given
    still win) with as many modes as the teacher fitted, sized by `backbone_kwargs` when
    given; naming the prompt-offset branch keeps them. A user who names another branch
    (`BRANCH_FIELDS`) gets what they asked for (`default_architecture`).
    """
    named = {k: overrides[k] for k in BRANCH_FIELDS if k in overrides}
    if teacher in OFFSET_TEACHERS and named in ({}, {"residual_kind": "prompt-offset"}):
        modes = (teacher_options or {}).get("modes", 1)
        sizing = {**({"modes": modes} if modes > 1 else {}), **overrides.get("backbone_kwargs", {})}
        return {**OFFSET_NET_FIELDS, **({"backbone_kwargs": sizing} if sizing else {})}
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
    report: Any = None,
) -> NPNet:
    """A fresh NPNet sized for the dataset, or a loaded one.

    A fresh net's residual branch is `fresh_architecture`'s unless `overrides` name one:
    the offset net for the prompt-offset teacher's datasets, else the released configuration
    for the released latent shape and the UNet branch for other shapes. A loaded net whose
    shapes differ from the dataset's (another family, text width or latent size) is
    transferred (`transfer_npnet`); `report` (e.g. `print`) is told what was kept.
    """
    if init_from is not None:
        net = NPNet.from_pretrained(str(init_from), **overrides)
        if {k: getattr(net.config, k) for k in SHAPE_FIELDS} != shapes_from_manifest(manifest):
            net, note = transfer_npnet(net, manifest, overrides, str(init_from))
            if report is not None:
                report(note)
        net.config.family = manifest.family
        check_fits(net.config, manifest, f"NPNet {init_from}")
        return net.train()
    clash = sorted(set(overrides) & set(SHAPE_FIELDS))
    fresh = fresh_architecture(
        manifest.latent_shape, overrides, manifest.teacher, manifest.teacher_options
    )
    # fresh's backbone_kwargs already hold the user's keys over the default branch's
    given = {k: v for k, v in overrides.items() if not (k == "backbone_kwargs" and k in fresh)}
    config = NPNetConfig.from_dict(
        {**shapes_from_manifest(manifest), "family": manifest.family, **fresh, **given}
    )
    if clash:
        check_fits(config, manifest, "the requested NPNet")
    return NPNet(config)


def transfer_npnet(
    source: NPNet, manifest: DatasetManifest, overrides: dict[str, Any], name: str = "NPNet"
) -> tuple[NPNet, str]:
    """`source`'s architecture at the dataset's shapes, with every source tensor whose name and
    shape fit; the rest (the text injection's Linear for another text width, the SVD MLPs for
    another latent size, cross-attention to another text width) keep their fresh
    initialisation. Returns the net and a note naming what was re-initialised.

    The paper's transfer claim (an SDXL NPNet fine-tuned for Hunyuan-DiT on ~600 pairs) rests
    on this: the noise-side weights carry over, the prompt-side ones are learned anew.
    """
    config = NPNetConfig.from_dict(
        {
            **source.config.to_dict(),
            **shapes_from_manifest(manifest),
            "family": manifest.family,
            **overrides,
        }
    )
    net = NPNet(config)
    own, theirs = net.state_dict(), source.state_dict()
    kept = {k: v for k, v in theirs.items() if k in own and own[k].shape == v.shape}
    net.load_state_dict(kept, strict=False)
    fresh = [
        f"{key} {list(own[key].shape)}"
        + (f" (source {list(theirs[key].shape)})" if key in theirs else " (not in source)")
        for key in own
        if key not in kept
    ]
    was = source.config.text_description
    note = (
        f"fine-tuning {name} ({was}, latents {source.config.channels}x{source.config.height}x"
        f"{source.config.width}) on {config.text_description} data (latents "
        f"{config.channels}x{config.height}x{config.width}): kept {len(kept)} of {len(own)} "
        f"tensors; re-initialised {len(fresh)}: " + ("; ".join(fresh) or "none")
    )
    return net, note


# `backbone_init` values besides a weights file's path.
BACKBONE_INITS = ("auto", "imagenet", "random")


def resolve_backbone_init(net: NPNet, choice: str, fine_tuning: bool) -> str:
    """What `choice` means for this net: "imagenet", "random", "init_from" or a file path.

    "auto" starts a timm Swin residual branch from ImageNet, as the authors' trainer does
    (timm `pretrained=True`); every other branch (the UNet, prompt-offset, small ViTs sized
    for toy latents, which have no pretrained weights) starts random, and a fine-tuned net
    keeps its source's backbone.
    """
    if choice != "auto":
        return choice
    if fine_tuning:
        return "init_from"
    config = net.config
    swin = net.residual is not None and config.residual_kind == "timm"
    return "imagenet" if swin and config.backbone.startswith("swin") else "random"


def load_backbone_weights(net: NPNet, init: str) -> str:
    """Start the residual backbone as `init` (resolved) says; a line saying what it did.

    "imagenet" and a file both go through timm's own pretrained loading
    (`timm.create_model(name, pretrained=True)`, with `pretrained_cfg_overlay={"file": ...}`
    for a file), which downloads from the Hugging Face hub when the weights are not cached.
    """
    import timm

    if init == "random":
        return "residual backbone: random initialisation (backbone_init random)"
    if init == "init_from":
        return "residual backbone: from the fine-tuned NPNet"
    if net.residual is None:
        raise GoldenNoiseError(
            f"backbone_init {init!r} needs the residual branch; the net has use_residual=False"
        )
    if net.config.residual_kind != "timm":
        raise GoldenNoiseError(
            f"backbone_init {init!r} loads timm weights, but the net's residual branch is "
            f"{net.config.residual_kind!r} (the default for latents other than 4x128x128); "
            "name a timm backbone (--residual-kind timm --backbone NAME) or drop it"
        )
    name = net.config.backbone
    overlay: dict[str, Any] = {}
    if init != "imagenet":
        if not Path(init).is_file():
            raise GoldenNoiseError(f"backbone weights file {init} does not exist")
        overlay = {"pretrained_cfg_overlay": {"file": str(init)}}
    try:
        pretrained = timm.create_model(
            name, pretrained=True, **overlay, **net.config.backbone_kwargs
        )
    except Exception as exc:  # offline, hub errors, bad files: timm raises many kinds
        reason = f"{type(exc).__name__}: {str(exc)[:200]}"
        if init == "imagenet":
            raise GoldenNoiseError(
                f"cannot get ImageNet weights for the residual backbone (timm {name!r}): "
                f"timm fetches them from the Hugging Face hub, which cannot be reached here, "
                f"and they are not in its cache ({reason}). Train from a random start with "
                "--backbone-init random, or give a weights file: --backbone-init PATH"
            ) from exc
        raise GoldenNoiseError(f"cannot load timm weights {init} into {name!r}: {reason}") from exc
    with torch.no_grad():
        net.residual.backbone.load_state_dict(pretrained.state_dict())
    source = "ImageNet" if init == "imagenet" else str(init)
    return f"residual backbone: pretrained timm weights ({source})"
