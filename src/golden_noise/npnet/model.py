"""NPNet: random Gaussian noise + prompt embedding -> golden noise, in one forward pass."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NoReturn

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from golden_noise.core.atomic import atomic_write_json, publish, temp_path_for
from golden_noise.core.errors import GoldenNoiseError
from golden_noise.core.latent_norms import latent_norms, with_norms
from golden_noise.core.weights import (
    check_local_source,
    hub_errors,
    load_strict,
    read_tensors,
    resolve_file,
)
from golden_noise.npnet import released
from golden_noise.npnet.config import NPNetConfig
from golden_noise.npnet.residual_branch import build_residual_branch
from golden_noise.npnet.svd_branch import SVDBranch
from golden_noise.npnet.text_injection import TextInjection

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
# model.safetensors metadata key: the configuration saved with the weights, which config.json
# must match (an edited field whose shapes still fit, e.g. svd_heads, would load another net).
SAVED_CONFIG_KEY = "golden_noise_config"


def _shape(tensor: torch.Tensor) -> str:
    return "[" + ", ".join(str(size) for size in tensor.shape) + "]"


class NPNet(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="golden-noise",
    paper_url="https://arxiv.org/abs/2411.09502",
    tags=["golden-noise", "npnet", "diffusers"],
):
    """Noise Prompt Network (Zhou et al., ICCV 2025).

    `golden = SVD(x) + (2*sigmoid(alpha) - 1) * t + beta * r` with `t = TextInjection(x, c)` and
    `r = Residual(x + t)`, exactly the authors' inference forward (with `residual_kind="unet"`
    the residual also cross-attends to `c`; a "prompt-offset" residual reads `c` alone, with
    or without the text injection). Ablations: without the SVD branch `SVD(x)` is replaced by
    `x`; without text `t = 0` (a "timm" or "unet" residual then sees `x` and no prompt);
    without the residual branch `r = 0`. `alpha` and `beta` always exist (shape `[1]`).
    With `keep_norm` the result is rescaled per sample to `||x||`.

    Runs in float32 whatever the input dtype (the SVD needs it) and returns the noise's dtype
    and device. One prompt (`prompt_embeds` batch 1) may serve a whole batch of noises.
    """

    def __init__(self, config: NPNetConfig) -> None:
        super().__init__()
        self.config = config
        self.svd = SVDBranch(config) if config.use_svd else None
        self.residual = build_residual_branch(config) if config.use_residual else None
        self.text = TextInjection(config) if config.use_text else None
        self.alpha = nn.Parameter(torch.zeros(1))
        # A branch whose output starts at zero (the UNet) is switched on from the start, so
        # its weights learn at once; the released branch keeps the authors' beta = 0.
        starts_at_zero = getattr(self.residual, "starts_at_zero", False)
        self.beta = nn.Parameter(torch.full((1,), 1.0 if starts_at_zero else 0.0))

    def forward(self, noise: torch.Tensor, prompt_embeds: torch.Tensor | None) -> torch.Tensor:
        """`noise` `[B, C, H, W]`, `prompt_embeds` `[B or 1, L, D]` -> golden noise like `noise`.

        `prompt_embeds` is the per-token embedding the pipeline's `encode_prompt` returns; it
        may be None only for a net built with `use_text=False`.
        """
        self._check_inputs(noise, prompt_embeds)
        x = noise.to(device=self.alpha.device, dtype=torch.float32)
        golden = self.svd(x) if self.svd is not None else x
        residual_input, condition = x, None
        if self._reads_prompt:
            condition = prompt_embeds.to(device=self.alpha.device, dtype=torch.float32)
        if self.text is not None:
            t = self.text(x, condition)
            golden = golden + (2 * torch.sigmoid(self.alpha) - 1) * t
            residual_input = x + t
        if self.residual is not None:
            golden = golden + self.beta * self.residual(residual_input, condition)
        if self.config.keep_norm:
            golden = with_norms(golden, latent_norms(x))
        return golden.to(device=noise.device, dtype=noise.dtype)

    def check_prompt_offset_net(self) -> None:
        """Raise unless this net's output is the noise plus an offset read from the prompt
        alone, the only kind whose offsets `prompt_offsets` can give."""
        config = self.config
        offset_only = self.svd is None and self.text is None and self.residual is not None
        if not offset_only or config.residual_kind != "prompt-offset":
            raise GoldenNoiseError(
                "prompt offsets need a net whose output is noise + offset: residual_kind "
                "'prompt-offset', no SVD branch, no text injection; got residual_kind "
                f"{config.residual_kind!r}, use_residual {config.use_residual}, use_svd "
                f"{config.use_svd}, use_text {config.use_text}"
            )

    def prompt_offsets(self, prompt_embeds: torch.Tensor) -> torch.Tensor:
        """`[B, K, C, H, W]`: the offsets a prompt-offset net chooses from for each prompt
        (`K` its modes, 1 unless built with more; before `keep_norm`), so that a teacher can
        start each prompt's fit where this net already is."""
        self.check_prompt_offset_net()
        config = self.config
        shape = (len(prompt_embeds), config.channels, config.height, config.width)
        unused = torch.zeros(shape, device=self.alpha.device)  # the branch reads the prompt only
        self._check_inputs(unused, prompt_embeds)
        condition = prompt_embeds.to(device=self.alpha.device, dtype=torch.float32)
        return self.beta * self.residual.offsets(unused, condition)

    @property
    def _reads_prompt(self) -> bool:
        """The text injection reads the prompt; a prompt-offset residual has nothing else."""
        return self.text is not None or self.config.residual_kind == "prompt-offset"

    def _check_inputs(self, noise: torch.Tensor, prompt_embeds: torch.Tensor | None) -> None:
        config = self.config
        expected = f"[B, {config.channels}, {config.height}, {config.width}]"
        made_for = f" (this NPNet was made for {config.family})" if config.family else ""
        if not isinstance(noise, torch.Tensor) or not noise.is_floating_point():
            found = noise.dtype if isinstance(noise, torch.Tensor) else type(noise).__name__
            raise GoldenNoiseError(f"noise must be a floating-point tensor; got {found}")
        if noise.ndim != 4 or tuple(noise.shape[1:]) != (
            config.channels,
            config.height,
            config.width,
        ):
            raise GoldenNoiseError(f"noise must be {expected}{made_for}; got {_shape(noise)}")
        if not torch.isfinite(noise).all():
            raise GoldenNoiseError("noise contains NaN or Inf values; expected finite values")
        if prompt_embeds is None:
            if self._reads_prompt:
                built = "use_text=True" if self.text is not None else "a prompt-offset residual"
                raise GoldenNoiseError(
                    f"prompt_embeds [B, {config.text_tokens}, {config.text_dim}] is required "
                    f"(the net was built with {built}); got None"
                )
            return
        if not isinstance(prompt_embeds, torch.Tensor) or not prompt_embeds.is_floating_point():
            raise GoldenNoiseError("prompt_embeds must be a floating-point tensor [B, L, D]")
        if prompt_embeds.ndim != 3 or tuple(prompt_embeds.shape[1:]) != (
            config.text_tokens,
            config.text_dim,
        ):
            raise GoldenNoiseError(
                f"prompt_embeds must be [B, {config.text_tokens}, {config.text_dim}] "
                f"(per-token embeddings for {config.text_description}); "
                f"got {_shape(prompt_embeds)}"
            )
        if prompt_embeds.shape[0] not in (1, noise.shape[0]):
            raise GoldenNoiseError(
                f"prompt_embeds batch must be 1 or match the noise batch {noise.shape[0]}; "
                f"got {prompt_embeds.shape[0]}"
            )
        if not torch.isfinite(prompt_embeds).all():
            raise GoldenNoiseError("prompt_embeds contains NaN or Inf values; expected finite")

    # Hub I/O: `save_pretrained`, `push_to_hub` and the folder/hub-repo form of
    # `from_pretrained` are `PyTorchModelHubMixin`'s own; NPNet writes only its two hooks.
    # The authors' single-file checkpoints have their own door, `from_single_file` (as
    # diffusers keeps `from_single_file` apart from `from_pretrained`).

    def _save_pretrained(self, save_directory: Path) -> None:
        """`config.json` + `model.safetensors`, each appearing whole or not at all."""
        from safetensors.torch import save_file

        weights = Path(save_directory) / WEIGHTS_NAME
        temp = temp_path_for(weights)
        try:
            saved = {SAVED_CONFIG_KEY: json.dumps(self.config.to_dict(), sort_keys=True)}
            save_file({k: v.contiguous() for k, v in self.state_dict().items()}, temp, saved)
            publish(temp, weights)
        finally:
            temp.unlink(missing_ok=True)
        atomic_write_json(Path(save_directory) / CONFIG_NAME, self.config.to_dict())

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | os.PathLike[str] | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        config: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> NPNet:
        """Hook of `PyTorchModelHubMixin.from_pretrained`: `config` is the read config.json."""
        if config is None:
            cls._refuse_folder(Path(model_id))
        weights = resolve_file(
            model_id, WEIGHTS_NAME, revision=revision, cache_dir=cache_dir,
            force_download=force_download, token=token, local_files_only=local_files_only or None,
        )  # fmt: skip
        net = cls(NPNetConfig.from_dict({**config, **overrides}))
        load_strict(net, read_tensors(weights), weights)
        _check_saved_config(weights, NPNetConfig.from_dict(config).to_dict())
        return net.eval()

    @staticmethod
    def _refuse_folder(folder: Path) -> NoReturn:
        found = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        raise GoldenNoiseError(
            f"expected {CONFIG_NAME} and {WEIGHTS_NAME} in {folder} (a save_pretrained "
            f"folder or hub repo), or filename= to pick a checkpoint file in it; found {found}"
        )

    @classmethod
    def from_single_file(
        cls,
        source: str | os.PathLike[str],
        *,
        filename: str | None = None,
        revision: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        local_files_only: bool | None = None,
        **overrides: Any,
    ) -> NPNet:
        """The authors' `.pth` or a flat safetensors conversion of it (LucipherDev's and
        asagi4's key layouts): a local file, or `filename` in a folder or hub repo.

        Read with `torch.load(weights_only=True)`; the configuration is inferred from the
        tensor shapes, `overrides` set what shapes cannot show (e.g. `svd_variant="mean"`).
        """
        if filename is None:
            path = Path(source)
        else:
            path = resolve_file(
                source, filename, revision=revision, cache_dir=cache_dir,
                local_files_only=local_files_only,
            )  # fmt: skip
        config, state = released.convert_released(read_tensors(path), path, **overrides)
        net = cls(config)
        load_strict(net, state, path)
        return net.eval()

    @classmethod
    def from_pretrained(
        cls, source: str | os.PathLike[str], *, filename: str | None = None, **kwargs: Any
    ) -> NPNet:
        """Load an NPNet from any published form, strictly, on the CPU, in eval mode.

        Decided once, by what `source` is: a checkpoint file, or `filename` in a folder or
        hub repo (e.g. `("Klayand/GoldenNoiseModel", filename="sdxl.pth")`), is the authors'
        layout (`from_single_file`); anything else is a `save_pretrained` folder or hub repo
        (config.json + model.safetensors), loaded by the hub mixin. A `model.safetensors`
        with its config.json beside it means its folder. `kwargs`: `revision`, `cache_dir`,
        `local_files_only`, and config fields to override (e.g. `family="sd2"`).
        """
        path = Path(source)
        if path.name == WEIGHTS_NAME and (path.parent / CONFIG_NAME).is_file():
            source = path.parent
        elif filename is not None or path.is_file():
            return cls.from_single_file(source, filename=filename, **kwargs)
        if path.is_dir() and not (path / CONFIG_NAME).is_file():
            cls._refuse_folder(path)  # before the hub mixin, which logs its own line first
        check_local_source(source)
        wanted = f"a checkpoint file, a save_pretrained folder or a hub repo with {CONFIG_NAME}"
        try:
            with hub_errors(str(source), CONFIG_NAME, wanted):
                return super().from_pretrained(source, **kwargs)
        except json.JSONDecodeError as error:
            raise GoldenNoiseError(
                f"{CONFIG_NAME} of {source} is not valid JSON: {error}"
            ) from error


def _check_saved_config(weights: Path, config: dict[str, Any]) -> None:
    """Refuse a config.json that differs from the configuration saved inside its weights
    (weights saved before that record pass)."""
    from safetensors import safe_open

    with safe_open(weights, "pt") as handle:
        saved = (handle.metadata() or {}).get(SAVED_CONFIG_KEY)
    if saved is None:
        return
    saved_config = json.loads(saved)
    changed = sorted(
        k for k in set(saved_config) | set(config) if saved_config.get(k) != config.get(k)
    )
    if changed:
        shown = ", ".join(
            f"{k}: saved {saved_config.get(k)!r}, now {config.get(k)!r}" for k in changed
        )
        raise GoldenNoiseError(
            f"{CONFIG_NAME} beside {weights} is not the configuration saved with those weights "
            f"({shown}); it was edited since, and would load another net: restore it"
        )
