"""Stage I core: re-denoise sampling, a batch of noises x_T -> prompt-carrying targets x_T'.

One DDIM step from x_T at the schedule's first timestep with classifier-free guidance `w_l`,
then one DDIM-inversion step back to that timestep with guidance `w_w`; since w_l > w_w, the
round trip leaves the prompt's direction in the noise (the paper's Stage I).

The guided noise prediction comes from the pipeline itself: for one call we swap in a
scheduler that yields exactly the timestep we want and records the `model_output` handed to
its `step()`. That output is the pipeline's own guided prediction (CFG combine, guidance
rescale, learned-variance split all done by the pipeline), so the same code serves SD 1.x/2.x,
SDXL and Hunyuan-DiT without per-model forward code. Prompt embeddings are precomputed by
the caller and passed as pipeline keyword arguments, so text encoders run once per prompt.

Scheduler settings and why:
- Both DDIM schedulers are built from the pipeline's scheduler config, so `beta_schedule`,
  `prediction_type`, `steps_offset` and `timestep_spacing` are the model's own.
- `timestep_spacing` decides the first timestep and can be overridden: SDXL's "leading" with
  `steps_offset=1` gives 981 at 50 steps, 901 at 10 and 751 at 4; few-step models want
  "trailing" (999).
- `clip_sample` and `thresholding` are forced off: clipping the x0 prediction to [-1, 1]
  at t ~ T destroys latents (they are not images) and cannot be inverted.
- `set_alpha_to_one` only changes the final denoising step, never the first: irrelevant here.
- DDIM is stateless, so stepping at the same timestep twice is safe (Euler/DPM are not).

Inversion variants (`inversion=`):
- "exact" (default): the inverse scheduler is told the timestep it inverts to (the first
  timestep t) and infers its source t - 1000 // N; with the same prediction it undoes the
  step to float32 round-off.
- "authors": as in the authors' collector, the inverse scheduler is told the schedule's
  second timestep instead, so it maps between the wrong pair of noise levels and does not undo
  its own step (round-trip error ~1.6e-2 at 50 steps, ~1.5 at 4).
In both, the model is evaluated at x_{t-1} with the first timestep t, as the authors do.

Guidance (`w_l`, `w_w`) is `uncond + w (text - uncond)` at any w, as the authors combine it.
Above 1 that is the pipeline's own CFG; at 1 it is the text branch alone (one evaluation);
below 1, where pipelines run no CFG, both branches run in one batch, unconditional rows first
as in the pipeline's CFG batch (`adapter.unconditional_kwargs`), and are combined here. So
w_w = 0 is Z-Sampling's unconditional inversion. Families whose guidance is not that
combination (FLUX-dev's embedded guidance) refuse w < 1 (`adapter.no_unconditional_branch`).

Flow-matching families (SD3, FLUX; `adapter.flow_matching`): one Euler step from sigma_0 to
sigma_1 with guidance `w_l`, `x1 = x0 + (s1 - s0) v`, then its exact inverse with guidance
`w_w`, `x0' = x1 - (s1 - s0) v'`, the velocity `v'` evaluated at x1 with the first timestep
(the DDIM convention above). The sigmas are the pipeline's own for an N-step call: the
capture scheduler runs the real `set_timesteps` with whatever the pipeline passes (SD3's
shift, FLUX's `sigmas` and resolution-dependent `mu`) and keeps its first two sigmas. Flow
schedules always start at sigma 1, so `timestep_spacing` and the authors' inversion do not
apply; N sets sigma_1. "Guidance" is what the adapter says it is (`guidance_kwargs`): CFG for
SD3, the distilled guidance embedding for FLUX-dev, true CFG against the empty prompt for
FLUX-schnell. Latents stay `[B, C, H, W]`; the adapter packs them for the pipeline (FLUX).

Few-step models: the step must be taken where the few-step sampler starts. DDIM with SDXL's
"leading" spacing starts at 751 for N=4 while SDXL-Turbo/Lightning, LCM and PCM sample from
999; pass `timestep_spacing="trailing"` (999 for any N) with N = the sampler's step count.
For FLUX-schnell, N = its step count (4) gives its sigma_1.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import DDIMInverseScheduler, DDIMScheduler, FlowMatchEulerDiscreteScheduler
from diffusers.schedulers.scheduling_ddim import DDIMSchedulerOutput
from diffusers.schedulers.scheduling_flow_match_euler_discrete import (
    FlowMatchEulerDiscreteSchedulerOutput,
)

from golden_noise.adapters import PipelineAdapter, adapter_for
from golden_noise.adapters.loading import scheduler_swapped
from golden_noise.core.errors import GoldenNoiseError
from golden_noise.teachers.settings import InversionMode, RedenoiseSettings, TimestepSpacing


class DDIMStepPair:
    """One DDIM step at the first timestep of an N-step schedule, and its inversion."""

    def __init__(
        self,
        scheduler_config: Mapping[str, Any],
        steps: int,
        timestep_spacing: TimestepSpacing | None = None,
    ) -> None:
        overrides: dict[str, Any] = {"clip_sample": False, "thresholding": False}
        if timestep_spacing is not None:
            overrides["timestep_spacing"] = timestep_spacing
        self.forward = DDIMScheduler.from_config(dict(scheduler_config), **overrides)
        self.forward.set_timesteps(steps)
        # The inverse's step() math depends only on N, not on the spacing, and it rejects
        # "linspace"; we always hand it the target timestep explicitly.
        inverse_config = {
            key: value
            for key, value in self.forward.config.items()
            if key in inspect.signature(DDIMInverseScheduler.__init__).parameters
        }
        if inverse_config["timestep_spacing"] == "linspace":
            inverse_config["timestep_spacing"] = "leading"
        self.inverse = DDIMInverseScheduler.from_config(inverse_config)
        self.inverse.set_timesteps(steps)
        self.first_timestep = int(self.forward.timesteps[0])
        self.second_timestep = int(self.forward.timesteps[1])

    def step(self, prediction: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """x_T -> x_{T-1} with the given (guided) model prediction at the first timestep."""
        return self.forward.step(prediction, self.first_timestep, latents).prev_sample

    def invert(
        self, prediction: torch.Tensor, latents: torch.Tensor, mode: InversionMode = "exact"
    ) -> torch.Tensor:
        """x_{T-1} -> x_T; see the module docstring for the two modes."""
        target = self.first_timestep if mode == "exact" else self.second_timestep
        return self.inverse.step(prediction, target, latents).prev_sample


def own_timestep_spacing(scheduler_config: Mapping[str, Any]) -> str:
    """The spacing `DDIMStepPair` takes when none is given: the pipeline's, or DDIM's default
    where its config names none."""
    return DDIMScheduler.from_config(dict(scheduler_config)).config["timestep_spacing"]


class _CapturePrediction(DDIMScheduler):
    """Scheduler stand-in for one pipeline call: one chosen timestep; step() records the
    guided prediction and returns the latents unchanged, so the call ends at once."""

    capture_timestep: int = 0
    captured: torch.Tensor | None = None

    def set_timesteps(self, num_inference_steps: int | None = None, device: Any = None, **_: Any):
        self.num_inference_steps = 1
        self.timesteps = torch.tensor([self.capture_timestep], dtype=torch.long, device=device)

    def step(
        self,
        model_output: torch.Tensor,
        timestep: Any,
        sample: torch.Tensor,
        *_: Any,
        return_dict: bool = True,
        **__: Any,
    ) -> DDIMSchedulerOutput | tuple:
        self.captured = model_output
        if not return_dict:
            return (sample,)
        return DDIMSchedulerOutput(prev_sample=sample, pred_original_sample=None)


@dataclass(frozen=True)
class FlowStep:
    """One Euler step of a flow-matching schedule, sigma_0 -> sigma_1, and its exact inverse."""

    sigma_0: float
    sigma_1: float

    def step(self, velocity: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        return latents + (self.sigma_1 - self.sigma_0) * velocity

    def invert(self, velocity: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        return latents - (self.sigma_1 - self.sigma_0) * velocity


class _CaptureFlowPrediction(FlowMatchEulerDiscreteScheduler):
    """Flow-matching stand-in for one pipeline call: `set_timesteps` runs the real schedule
    with the pipeline's own arguments, records its first step and keeps only its first
    timestep; step() records the guided velocity and returns the latents unchanged."""

    captured: torch.Tensor | None = None
    first_step: FlowStep | None = None

    def set_timesteps(
        self,
        num_inference_steps: int | None = None,
        device: Any = None,
        sigmas: Any = None,
        mu: float | None = None,
        timesteps: Any = None,
    ) -> None:
        super().set_timesteps(
            num_inference_steps, device, sigmas=sigmas, mu=mu, timesteps=timesteps
        )
        self.first_step = FlowStep(float(self.sigmas[0]), float(self.sigmas[1]))
        self.timesteps = self.timesteps[:1]

    def step(
        self,
        model_output: torch.Tensor,
        timestep: Any,
        sample: torch.Tensor,
        *_: Any,
        return_dict: bool = True,
        **__: Any,
    ) -> Any:
        self.captured = model_output
        return (
            FlowMatchEulerDiscreteSchedulerOutput(prev_sample=sample) if return_dict else (sample,)
        )


@torch.no_grad()
def guided_prediction(
    pipe: Any,
    latents: torch.Tensor,
    timestep: int,
    guidance_scale: float,
    call_kwargs: Mapping[str, Any],
    *,
    adapter: PipelineAdapter | None = None,
) -> torch.Tensor:
    """The pipeline's own guided model output at (`latents`, `timestep`), in float32.

    `call_kwargs`: precomputed prompt embeddings and whatever else the pipeline needs (height,
    width, ...), batched like `latents`. `adapter`: `pipe`'s adapter, if the caller has it.
    """
    capture = _CapturePrediction.from_config(pipe.scheduler.config)
    capture.capture_timestep = int(timestep)
    return _guided(adapter or adapter_for(pipe), capture, latents, 1, guidance_scale, call_kwargs)


@torch.no_grad()
def flow_prediction(
    pipe: Any,
    latents: torch.Tensor,
    steps: int,
    guidance_scale: float,
    call_kwargs: Mapping[str, Any],
    *,
    adapter: PipelineAdapter | None = None,
) -> tuple[torch.Tensor, FlowStep]:
    """A flow-matching pipeline's own guided velocity at its first timestep of an N-step
    call (float32, `[B, C, H, W]`), and that call's first Euler step sigma_0 -> sigma_1."""
    capture = _CaptureFlowPrediction.from_config(pipe.scheduler.config)
    adapter = adapter or adapter_for(pipe)
    velocity = _guided(adapter, capture, latents, steps, guidance_scale, call_kwargs)
    return velocity, capture.first_step


def _guided(
    adapter: PipelineAdapter,
    capture: Any,
    latents: torch.Tensor,
    steps: int,
    guidance_scale: float,
    call_kwargs: Mapping[str, Any],
) -> torch.Tensor:
    """`uncond + w (text - uncond)`: the pipeline's CFG for w >= 1; both branches in one
    batch `[uncond; text]`, combined here, below 1 (where the pipeline runs the text alone)."""
    if guidance_scale >= 1.0:
        return _captured(adapter, capture, latents, steps, guidance_scale, call_kwargs)
    both_kwargs = _stacked(adapter.unconditional_kwargs(call_kwargs), call_kwargs)
    both = _captured(adapter, capture, torch.cat([latents, latents]), steps, 1.0, both_kwargs)
    uncond, text = both.chunk(2)
    return uncond + guidance_scale * (text - uncond)


def _stacked(first: Mapping[str, Any], second: Mapping[str, Any]) -> dict[str, Any]:
    """Two batches of pipeline kwargs as one: tensors concatenated on the batch axis."""
    return {
        key: torch.cat([value, second[key]]) if isinstance(value, torch.Tensor) else value
        for key, value in first.items()
    }


def check_guidance(adapter: PipelineAdapter, settings: RedenoiseSettings) -> None:
    """Refuse a guidance below 1 on a family without an unconditional branch, up front."""
    reason = adapter.no_unconditional_branch()
    for name in ("w_l", "w_w"):
        value = getattr(settings, name)
        if reason is not None and value < 1.0:
            raise GoldenNoiseError(
                f"{name}={value} needs an unconditional branch to weight "
                f"(uncond + w (text - uncond)), and {type(adapter.pipe).__name__} here has none: "
                f"{reason}. Use {name} >= 1"
            )


def _captured(
    adapter: PipelineAdapter,
    capture: Any,
    latents: torch.Tensor,
    steps: int,
    guidance_scale: float,
    call_kwargs: Mapping[str, Any],
) -> torch.Tensor:
    """Run one pipeline call with the `capture` scheduler; its recorded output, unpacked."""
    pipe = adapter.pipe
    with scheduler_swapped(pipe, capture):
        pipe(
            **call_kwargs,
            latents=adapter.pipeline_latents(latents.to(adapter.denoiser.dtype)),
            num_inference_steps=steps,
            **adapter.guidance_kwargs(guidance_scale),
            output_type="latent",
            return_dict=False,
        )
    if capture.captured is None:
        raise GoldenNoiseError(
            f"{type(pipe).__name__} never called its scheduler's step(); expected a pipeline "
            "with a standard denoising loop"
        )
    size = adapter.resolve_size(call_kwargs.get("height"), call_kwargs.get("width"))
    return adapter.unit_latents(capture.captured, *size).float()


@torch.no_grad()
def redenoise(
    pipe: Any,
    latents: torch.Tensor,
    call_kwargs: Mapping[str, Any],
    settings: RedenoiseSettings | None = None,
    *,
    adapter: PipelineAdapter | None = None,
) -> torch.Tensor:
    """Re-denoise a batch: x_T [B, C, H, W] -> x_T' (float32, same device).

    Row i is conditioned on row i of `call_kwargs` (precomputed embeddings). `adapter`:
    `pipe`'s adapter when the caller has one (else it is made here, once per call).
    """
    settings = settings or RedenoiseSettings()
    adapter = adapter or adapter_for(pipe)
    check_guidance(adapter, settings)
    if adapter.flow_matching:
        x = _flow_redenoise(adapter, latents.float(), call_kwargs, settings)
    else:
        x = _ddim_redenoise(adapter, latents.float(), call_kwargs, settings)
    if not torch.isfinite(x).all():
        raise GoldenNoiseError(
            "re-denoise produced non-finite latents; expected finite values (check the "
            "pipeline dtype and the scheduler config)"
        )
    return x


def _ddim_redenoise(
    adapter: PipelineAdapter,
    x: torch.Tensor,
    call_kwargs: Mapping[str, Any],
    settings: RedenoiseSettings,
) -> torch.Tensor:
    pipe = adapter.pipe
    pair = DDIMStepPair(pipe.scheduler.config, settings.steps, settings.timestep_spacing)
    t = pair.first_timestep
    for _ in range(settings.repeats):
        ahead = guided_prediction(pipe, x, t, settings.w_l, call_kwargs, adapter=adapter)
        denoised = pair.step(ahead, x)
        back = guided_prediction(pipe, denoised, t, settings.w_w, call_kwargs, adapter=adapter)
        x = pair.invert(back, denoised, settings.inversion)
    return x


def _flow_redenoise(
    adapter: PipelineAdapter,
    x: torch.Tensor,
    call_kwargs: Mapping[str, Any],
    settings: RedenoiseSettings,
) -> torch.Tensor:
    pipe, steps = adapter.pipe, settings.steps
    if settings.inversion != "exact" or settings.timestep_spacing is not None:
        raise GoldenNoiseError(
            f"{type(pipe).__name__} is flow-matching: its schedule starts at sigma 1 and the "
            "step count sets sigma_1, so re-denoise takes inversion='exact' and "
            f"timestep_spacing=None; got inversion={settings.inversion!r}, "
            f"timestep_spacing={settings.timestep_spacing!r}"
        )
    for _ in range(settings.repeats):
        velocity, first = flow_prediction(
            pipe, x, steps, settings.w_l, call_kwargs, adapter=adapter
        )
        stepped = first.step(velocity, x)
        back, _ = flow_prediction(pipe, stepped, steps, settings.w_w, call_kwargs, adapter=adapter)
        x = first.invert(back, stepped)
    return x
