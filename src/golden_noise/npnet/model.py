"""NPNet: random Gaussian noise + prompt embedding -> golden noise, in one forward pass."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from golden_noise.errors import GoldenNoiseError
from golden_noise.npnet import released
from golden_noise.npnet.config import NPNetConfig
from golden_noise.npnet.pretrained import (
    load_state_strict,
    read_saved,
    read_tensor_file,
    resolve_source,
    write_saved,
)
from golden_noise.npnet.residual_branch import ResidualBranch
from golden_noise.npnet.svd_branch import SVDBranch
from golden_noise.npnet.text_injection import TextInjection


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
    `r = Residual(x + t)`, exactly the authors' inference forward. Ablations: without the SVD
    branch `SVD(x)` is replaced by `x`; without text `t = 0` (the residual then sees `x`);
    without the residual branch `r = 0`. `alpha` and `beta` always exist (shape `[1]`).

    Runs in float32 whatever the input dtype (the SVD needs it) and returns the noise's dtype
    and device. One prompt (`prompt_embeds` batch 1) may serve a whole batch of noises.
    """

    def __init__(self, config: NPNetConfig) -> None:
        super().__init__()
        self.config = config
        self.svd = SVDBranch(config) if config.use_svd else None
        self.residual = ResidualBranch(config) if config.use_residual else None
        self.text = TextInjection(config) if config.use_text else None
        self.alpha = nn.Parameter(torch.zeros(1))
        self.beta = nn.Parameter(torch.zeros(1))

    def forward(self, noise: torch.Tensor, prompt_embeds: torch.Tensor | None) -> torch.Tensor:
        """`noise` `[B, C, H, W]`, `prompt_embeds` `[B or 1, L, D]` -> golden noise like `noise`.

        `prompt_embeds` is the per-token embedding the pipeline's `encode_prompt` returns; it
        may be None only for a net built with `use_text=False`.
        """
        self._check_inputs(noise, prompt_embeds)
        x = noise.to(device=self.alpha.device, dtype=torch.float32)
        golden = self.svd(x) if self.svd is not None else x
        residual_input = x
        if self.text is not None:
            condition = prompt_embeds.to(device=self.alpha.device, dtype=torch.float32)
            t = self.text(x, condition)
            golden = golden + (2 * torch.sigmoid(self.alpha) - 1) * t
            residual_input = x + t
        if self.residual is not None:
            golden = golden + self.beta * self.residual(residual_input)
        return golden.to(device=noise.device, dtype=noise.dtype)

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
            if self.text is not None:
                raise GoldenNoiseError(
                    f"prompt_embeds [B, {config.text_tokens}, {config.text_dim}] is required "
                    "(the net was built with use_text=True); got None"
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

    def _save_pretrained(self, save_directory: Path) -> None:
        """Hook of `PyTorchModelHubMixin`: `save_pretrained` and `push_to_hub` write this."""
        write_saved(Path(save_directory), self.config.to_dict(), self.state_dict())

    @classmethod
    def from_pretrained(
        cls,
        source: str | os.PathLike[str],
        *,
        filename: str | None = None,
        revision: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        local_files_only: bool | None = None,
        **overrides: Any,
    ) -> NPNet:
        """Load an NPNet from any published form, strictly, on the CPU, in eval mode.

        `source`: a `save_pretrained` folder or hub repo (config.json + model.safetensors); the
        authors' `.pth` (e.g. `("Klayand/GoldenNoiseModel", filename="sdxl.pth")`), read with
        `torch.load(weights_only=True)`, its configuration inferred from tensor shapes; or a
        flat safetensors conversion of it (LucipherDev's and asagi4's key layouts).
        `overrides` set config fields (e.g. `svd_variant="mean"`, `family="sd2"`).
        """
        path = resolve_source(
            source,
            filename=filename,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
        )
        if path.is_dir():
            config_dict, state = read_saved(path)
            config = NPNetConfig.from_dict({**config_dict, **overrides})
        else:
            flat = released.flatten_released(read_tensor_file(path))
            if not released.is_released_layout(flat):
                raise GoldenNoiseError(
                    f"not an NPNet checkpoint: {path} has no 'unet_svd.' weights (released "
                    f"layout) and no config.json beside it; its keys start "
                    f"{sorted(flat)[:5]}"
                )
            config = released.released_config(flat, **overrides)
            state = released.to_model_keys(flat)
        net = cls(config)
        load_state_strict(net, state)
        return net.eval()
