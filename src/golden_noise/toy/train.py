"""Train the toy pipeline from a seed: the VAE first, then the UNet and text encoder jointly.

Every batch is fresh procedural data from the training split (prompt types uniform), drawn
from a generator seeded by ``(seed, step)``, so a resumed run sees the same data as an
unbroken one. Diffusion training is Stable Diffusion's: epsilon prediction, uniform
timesteps, the prompt replaced by "" with probability ``cfg_drop`` (for classifier-free
guidance), EMA of the UNet and text encoder weights. A checkpoint is written atomically every
``checkpoint_every`` steps and at the end of each phase, its SHA-256 recorded in
``out/checkpoints_sha256.json`` (a resume refuses a checkpoint that no longer matches, or
that has no digest: nothing could tell it from a damaged one). Each UNet checkpoint records the
SHA-256 of the VAE checkpoint whose latents it was trained on, and a resume whose ``vae.pt`` is
missing or another is refused. A NaN or infinite loss, weight or latent scale stops the run as
diverged before it is saved or exported. The EMA pipeline is exported to
``out/pipeline`` (fp16 safetensors, a standard diffusers directory) at each UNet checkpoint,
with the step, the SHA-256s of the checkpoints it came from and the SHA-256 of each exported
file in ``pipeline/toy_step.json``. A run is done only when that record names its final
checkpoints and its files still match: one killed between the last checkpoint and its export,
or whose pipeline was damaged since, re-exports from that checkpoint when run again.
The settings are recorded in ``out/train_config.json``, its SHA-256 in the same ledger as the
checkpoints', and a resume must give the same ones from an unedited record
(``_claim_run_folder``).
"""

import contextlib
import copy
import hashlib
import io
import json
import math
import random
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
from diffusers.training_utils import EMAModel
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from transformers import CLIPTextModel

from golden_noise.core.atomic import atomic_directory
from golden_noise.core.errors import GoldenNoiseError
from golden_noise.core.file_digests import DigestLedger, file_sha256, folder_sha256s
from golden_noise.core.progress import make_progress
from golden_noise.core.settings_record import RUN_CONFIG, changed_settings
from golden_noise.core.validate import number
from golden_noise.toy import components
from golden_noise.toy.finite import (
    pipeline_weights,
    stop_if_diverged,
    stop_if_weights_diverged,
)
from golden_noise.toy.grammar import PROMPT_TYPES, prompts_of
from golden_noise.toy.recipe import ToyRecipe
from golden_noise.toy.scenes import render
from golden_noise.toy.scorer import score
from golden_noise.toy.tokenizer import build_tokenizer

# What a run leaves in its folder: checkpoints, then the exported pipeline.
RUN_FILES = ("vae.pt", "unet.pt", "pipeline")
# In the pipeline folder: the step it was exported at, the checkpoints' SHA-256s and those of
# the exported files.
PIPELINE_RECORD = "toy_step.json"
# The SHA-256s of the checkpoints and of train_config.json, checked before a resume reads them.
CHECKPOINT_DIGESTS = "checkpoints_sha256.json"
# Settings that leave the weights alone (the thread count, how often a checkpoint is written);
# every other recorded one must match to resume.
FREE_SETTINGS = frozenset({"threads", "checkpoint_every"})
# Settings that set the length of a phase's cosine learning-rate schedule.
SCHEDULE_SETTINGS = ("vae_steps", "unet_steps", "warmup_steps")


def scene_batch(seed: int, step: int, n: int) -> tuple[torch.Tensor, list[str]]:
    """``n`` training scenes as ``[n, 3, 32, 32]`` in [-1, 1] with their prompts."""
    rng = random.Random(seed * 1_000_003 + step)
    prompts = [rng.choice(prompts_of("train", rng.choice(PROMPT_TYPES))) for _ in range(n)]
    images = np.stack([render(p, rng.getrandbits(32)) for p in prompts])
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1, prompts


class ThreadTuner:
    """Keeps the faster of 1 and 2 torch threads, re-measured as the machine's load changes.

    On a shared 2-core machine two threads are ~1.7x faster when idle but up to 10x slower
    when another process holds a core; a fixed choice loses either way. Every ``every`` steps
    the other count is tried for up to ``window`` steps; a trial step slower than 1.5x the
    incumbent's median ends the trial at once, so a bad trial costs one step.
    """

    def __init__(self, fixed: int | None, every: int = 100, window: int = 6) -> None:
        self.fixed, self.every, self.window = fixed, every, window
        self.best = self.current = fixed or 1
        self.recent: list[float] = []
        self.trial: list[float] = []
        torch.set_num_threads(self.current)

    def step_done(self, step: int, seconds: float) -> None:
        """Record one step's time; start, continue, end or abandon a trial of the other count."""
        if self.fixed is not None:
            return
        if self.current == self.best:
            self.recent = [*self.recent[-self.window + 1 :], seconds]
            if step % self.every == self.every - 1 and len(self.recent) == self.window:
                self.current = 3 - self.best
                self.trial = []
        else:
            self.trial.append(seconds)
            incumbent = float(np.median(self.recent))
            if seconds > 1.5 * incumbent or len(self.trial) == self.window:
                if len(self.trial) == self.window and float(np.median(self.trial)) < incumbent:
                    self.best, self.recent = self.current, self.trial
                self.current = self.best
        torch.set_num_threads(self.current)


def _ledger(
    out: Path, guards: str = "a resume from a damaged checkpoint would silently train other weights"
) -> DigestLedger:
    """The SHA-256 of each checkpoint and the step it holds, and of the settings record,
    recorded as each is written; `guards`: what a refused reader is spared."""
    return DigestLedger(
        out / CHECKPOINT_DIGESTS, f"Restore it, or train into a new --out ({guards})"
    )


def _config_ledger(out: Path) -> DigestLedger:
    """`_ledger`, for the settings record."""
    return _ledger(out, "a resume under settings other than the run's would mix two runs")


@contextlib.contextmanager
def _made_here(path: Path) -> Iterator[None]:
    """Turn a failure to load verified checkpoint `path` into the models into one error."""
    try:
        yield
    except (RuntimeError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GoldenNoiseError(
            f"{path} does not fit this run's models: it was made with other model settings "
            f"({first}). Train into a new --out"
        ) from exc


def _save_checkpoint(state: dict[str, Any], out: Path, name: str) -> str:
    """Write checkpoint `name` in `out` atomically, with its digest in the ledger; returns
    that digest."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return _ledger(out).write(out / name, buffer.getvalue(), state["step"])


def _load_checkpoint(out: Path, name: str) -> tuple[dict[str, Any], str] | None:
    """Checkpoint `name` in `out` and its SHA-256 (None before the first), refused unless
    that digest is the one recorded when it was written."""
    path = out / name
    if not path.exists():
        return None
    data = _ledger(out).read(path)
    return torch.load(io.BytesIO(data), weights_only=True), hashlib.sha256(data).hexdigest()


def _diverged_advice(out: Path, option: str, lr: float) -> str:
    """What a diverged phase leaves and what to do: its weights are never saved or exported."""
    return (
        f"Nothing from this point was saved or exported; {out} keeps the last finite "
        f"checkpoint. Lower {option} (it was {lr}) and train into a new --out"
    )


def _cosine_lr(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def train_toy_pipeline(
    out: Path, config: ToyRecipe, minutes: float | None = None, progress: bool = True
) -> Path:
    """Train (or resume) into ``out``; returns the exported pipeline directory.

    ``minutes`` caps the UNet phase's wall time (the result then depends on machine speed;
    reproducible runs leave it unset and fix the step counts). ``progress``: a bar on a
    terminal, a line every 30 s in a log (``golden_noise.core.progress``); False shows neither.
    """
    if minutes is not None:  # -1 stopped after one step, NaN never: both exited 0
        number("minutes", minutes, above=0)
    _claim_run_folder(out, config)
    threads_before = torch.get_num_threads()
    try:
        return _train(out, config, minutes, progress)
    finally:
        torch.set_num_threads(threads_before)


def _claim_run_folder(out: Path, config: ToyRecipe) -> None:
    """Refuse to resume a run in ``out`` with settings other than its own; record them for a
    fresh one.

    A resume loads the run's weights, optimizer and EMA state and trains on with the settings
    given, so one that differs (seed, a learning rate, the EMA decay, ``tiny``'s shapes, the
    step counts) would silently mix two runs. Checkpoints or a pipeline without a readable
    record are refused too: nothing could vouch for them. The record is written only once the
    folder is this run's, so a refused run leaves it as it was.
    """
    found = [name for name in RUN_FILES if (out / name).exists()]
    path = out / RUN_CONFIG
    if not found:
        out.mkdir(parents=True, exist_ok=True)
        record = json.dumps(asdict(config), indent=2) + "\n"
        _config_ledger(out).write(path, record.encode("utf-8"))
        return
    if not path.is_file():
        raise GoldenNoiseError(
            f"{out} holds {', '.join(found)} but no {RUN_CONFIG}, the record of the settings "
            "that made them; resuming could silently mix two runs. Restore that file, or train "
            "into a new --out"
        )
    changed = changed_settings(path, asdict(config), FREE_SETTINGS)
    if not changed:
        _config_ledger(out).read(path)  # an edited record vouches for nothing
        return
    why = ""
    if any(line.split(":")[0] in SCHEDULE_SETTINGS for line in changed):
        why = (
            " (each phase's learning rate follows a cosine schedule over its total steps, so "
            "a run of another length is another run, not this one trained longer or shorter)"
        )
    raise GoldenNoiseError(
        f"{out} holds a toy-train run with other settings ({'; '.join(changed)}). Resuming "
        f"would train that run's weights on under these settings, mixing two runs{why}: pass "
        "its settings to resume it, or train into a new --out"
    )


def _progress(enabled: bool) -> Any:
    """A bar on a terminal; a line every 30 s in a log (``golden_noise.core.progress``)."""
    return make_progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}, {task.fields[threads]} threads"),
        TimeElapsedColumn(),
        disable=not enabled,
        extra=lambda fields: f"loss {fields['loss']}, {fields['threads']} threads",
    )


def _resumed(phase: str, start: int, total: int) -> None:
    if start == total:
        print(f"{phase}: done (step {total} of {total})", flush=True)
    elif start:
        print(f"{phase}: resumed at step {start} of {total}", flush=True)


def _train(out: Path, config: ToyRecipe, minutes: float | None, progress: bool) -> Path:
    torch.manual_seed(config.seed)
    vae = components.build_vae(config.tiny)
    found = _load_checkpoint(out, "vae.pt")
    state, vae_sha256 = found if found is not None else (None, "")
    unet_found = _load_checkpoint(out, "unet.pt")
    if unet_found is not None:
        _check_unet_vae(out, unet_found[0], vae_sha256)
    if state is not None and "scaling_factor" in state and state["step"] >= config.vae_steps:
        with _made_here(out / "vae.pt"):
            vae.load_state_dict(state["model"])
        vae.register_to_config(scaling_factor=state["scaling_factor"])
    else:
        vae_sha256 = _train_vae(vae, config, out, state, progress)
    return _train_unet(vae, vae_sha256, unet_found, config, out, minutes, progress)


def _check_unet_vae(out: Path, unet_state: dict[str, Any], vae_sha256: str) -> None:
    """Refuse a UNet checkpoint unless `vae.pt` (SHA-256 `vae_sha256`, "" if absent) is the
    VAE checkpoint it was trained with: a UNet resumed or exported beside another VAE denoises
    latents it never saw, and a retrained VAE differs (other threads, other bits)."""
    recorded = unet_state.get("vae_sha256")
    if recorded == vae_sha256:
        return
    unet = out / "unet.pt"
    if recorded is None:
        raise GoldenNoiseError(
            f"{unet} does not record the VAE checkpoint it was trained with (written by an "
            "older version), so nothing vouches that vae.pt is that one. Delete it to retrain "
            "the UNet on this VAE, or train into a new --out"
        )
    now = f"vae.pt now has SHA-256 {vae_sha256}" if vae_sha256 else "vae.pt is missing"
    raise GoldenNoiseError(
        f"{unet} was trained on the latents of the VAE checkpoint with SHA-256 {recorded}, but "
        f"{now}; a UNet beside another VAE denoises latents it never saw. Restore that vae.pt, "
        "or delete unet.pt to retrain the UNet"
    )


def _train_vae(
    vae: AutoencoderKL,
    config: ToyRecipe,
    out: Path,
    state: dict[str, Any] | None,
    progress: bool,
) -> str:
    """Train (or resume) the VAE; returns the SHA-256 of its final checkpoint."""
    opt = torch.optim.AdamW(vae.parameters(), lr=config.vae_lr, weight_decay=0.0)
    start = 0
    if state is not None:
        with _made_here(out / "vae.pt"):
            vae.load_state_dict(state["model"])
            opt.load_state_dict(state["opt"])
        start = state["step"]
    vae.train()
    advice = _diverged_advice(out, "--vae-lr", config.vae_lr)
    _resumed("vae", start, config.vae_steps)
    tuner = ThreadTuner(config.threads)
    with _progress(progress and start < config.vae_steps) as bar:
        total = config.vae_steps - start
        task = bar.add_task("vae", total=total, loss="-", threads=tuner.current)
        for step in range(start, config.vae_steps):
            tic = time.perf_counter()
            x, _ = scene_batch(config.seed, step, config.batch_size)
            lr = config.vae_lr * _cosine_lr(step, config.vae_steps, config.warmup_steps)
            for group in opt.param_groups:
                group["lr"] = lr
            posterior = vae.encode(x).latent_dist
            recon = vae.decode(posterior.sample()).sample
            loss = F.mse_loss(recon, x) + config.kl_weight * posterior.kl().mean()
            stop_if_diverged(f"VAE loss at step {step + 1}", loss.item(), advice)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bar.update(task, advance=1, loss=f"{loss.item():.4f}", threads=tuner.current)
            tuner.step_done(step, time.perf_counter() - tic)
            if (step + 1) % config.checkpoint_every == 0:
                stop_if_weights_diverged("VAE", vae.state_dict().items(), advice)
                state = {"model": vae.state_dict(), "opt": opt.state_dict(), "step": step + 1}
                _save_checkpoint(state, out, "vae.pt")
    stop_if_weights_diverged("VAE", vae.state_dict().items(), advice)
    state = {"model": vae.state_dict(), "opt": opt.state_dict(), "step": config.vae_steps}
    state["scaling_factor"] = _scaling_factor(vae, config, advice)
    vae.register_to_config(scaling_factor=state["scaling_factor"])
    return _save_checkpoint(state, out, "vae.pt")


@torch.no_grad()
def _scaling_factor(vae: AutoencoderKL, config: ToyRecipe, advice: str) -> float:
    """1 / std of latents (as Stable Diffusion's 0.18215), and the VAE's reconstruction check;
    a NaN or infinite std stops the run (`advice`: what it leaves, what to do)."""
    vae.eval()
    x, prompts = scene_batch(config.seed, -1, 256)
    posterior = vae.encode(x).latent_dist
    recon = vae.decode(posterior.mean).sample
    rate = score((recon + 1) / 2, prompts).correct.float().mean().item()
    std = posterior.sample().std().item()
    print(f"vae: latent std {std:.4f}, reconstructions correct {rate:.3f}", flush=True)
    stop_if_diverged("VAE's latent std", std, advice)
    return 1.0 / std


def _train_unet(
    vae: AutoencoderKL,
    vae_sha256: str,
    found: tuple[dict[str, Any], str] | None,
    config: ToyRecipe,
    out: Path,
    minutes: float | None,
    progress: bool,
) -> Path:
    """Train (or resume from `found`, checked against `vae_sha256`) the UNet and text encoder
    on `vae`'s latents, exporting at each checkpoint; returns the pipeline directory."""
    vae.requires_grad_(False)
    unet = components.build_unet(config.tiny)
    text_encoder = components.build_text_encoder(config.tiny)
    tokenizer = build_tokenizer()
    noise_scheduler = components.build_noise_scheduler()
    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=config.unet_lr, weight_decay=1e-2)
    emas = [
        EMAModel(m.parameters(), decay=config.ema_decay, use_ema_warmup=True, power=2 / 3)
        for m in (unet, text_encoder)
    ]
    start, unet_sha256 = 0, ""
    if found is not None:
        state, unet_sha256 = found
        with _made_here(out / "unet.pt"):
            unet.load_state_dict(state["unet"])
            text_encoder.load_state_dict(state["text_encoder"])
            opt.load_state_dict(state["opt"])
            for ema, s in zip(emas, state["ema"], strict=True):
                ema.load_state_dict(s)
        start = state["step"]
    saved = start  # the step of the last checkpoint, which the models now hold
    unet.train()
    text_encoder.train()
    advice = _diverged_advice(out, "--unet-lr", config.unet_lr)
    empty = tokenizer([""], padding="max_length", return_tensors="pt").input_ids
    t0 = time.monotonic()
    _resumed("unet+text", start, config.unet_steps)
    tuner = ThreadTuner(config.threads)
    with _progress(progress and start < config.unet_steps) as bar:
        total = config.unet_steps - start
        task = bar.add_task("unet+text", total=total, loss="-", threads=tuner.current)
        for step in range(start, config.unet_steps):
            tic = time.perf_counter()
            x, prompts = scene_batch(config.seed, config.vae_steps + step, config.batch_size)
            g = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
            with torch.no_grad():
                latents = vae.encode(x).latent_dist.sample(g) * vae.config.scaling_factor
            ids = tokenizer(prompts, padding="max_length", return_tensors="pt").input_ids
            drop = torch.rand(len(prompts), generator=g) < config.cfg_drop
            ids[drop] = empty
            noise = torch.randn(latents.shape, generator=g)
            t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(x),), generator=g)
            noisy = noise_scheduler.add_noise(latents, noise, t)
            pred = unet(noisy, t, text_encoder(ids)[0]).sample
            loss = F.mse_loss(pred, noise)
            stop_if_diverged(f"UNet loss at step {step + 1}", loss.item(), advice)
            lr = config.unet_lr * _cosine_lr(step, config.unet_steps, config.warmup_steps)
            for group in opt.param_groups:
                group["lr"] = lr
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            emas[0].step(unet.parameters())
            emas[1].step(text_encoder.parameters())
            bar.update(task, advance=1, loss=f"{loss.item():.4f}", threads=tuner.current)
            tuner.step_done(step, time.perf_counter() - tic)
            out_of_time = minutes is not None and time.monotonic() - t0 > 60 * minutes
            done = step + 1 == config.unet_steps or out_of_time
            if done or (step + 1) % config.checkpoint_every == 0:
                weights = [*unet.state_dict().items(), *text_encoder.state_dict().items()]
                weights += [
                    (f"{name} EMA {i}", p)
                    for name, ema in zip(("unet", "text_encoder"), emas, strict=True)
                    for i, p in enumerate(ema.shadow_params)
                ]
                stop_if_weights_diverged("UNet and text encoder", weights, advice)
                state = {
                    "unet": unet.state_dict(),
                    "text_encoder": text_encoder.state_dict(),
                    "opt": opt.state_dict(),
                    "ema": [ema.state_dict() for ema in emas],
                    "step": step + 1,
                    "vae_sha256": vae_sha256,
                }
                unet_sha256 = _save_checkpoint(state, out, "unet.pt")
                saved = step + 1
                record = _pipeline_record(saved, vae_sha256, unet_sha256)
                export_pipeline(vae, unet, text_encoder, emas, out / "pipeline", record)
            if out_of_time:
                break
    # The loop exports at each checkpoint, its last one included. A run that trained no step
    # here may have been killed after its last checkpoint but before that export finished
    # (an older pipeline, or none), or its pipeline damaged since: export it again.
    record = _pipeline_record(saved, vae_sha256, unet_sha256)
    why = _export_mismatch(out / "pipeline", record) if saved == start else None
    if why is not None:
        print(f"pipeline: exporting the step-{saved} checkpoint ({why})")
        export_pipeline(vae, unet, text_encoder, emas, out / "pipeline", record)
    return out / "pipeline"


def _pipeline_record(step: int, vae_sha256: str, unet_sha256: str) -> dict[str, Any]:
    """What `pipeline/toy_step.json` holds: the step and the checkpoints it was exported from."""
    return {"step": step, "checkpoints_sha256": {"vae.pt": vae_sha256, "unet.pt": unet_sha256}}


def _export_mismatch(pipeline: Path, record: dict[str, Any]) -> str | None:
    """Why the pipeline in `pipeline` is not the export of `record`'s checkpoints, or None if
    it is: its record names them and every file it lists still has its recorded SHA-256."""
    try:
        exported = json.loads((pipeline / PIPELINE_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        exported = None
    if (
        not isinstance(exported, dict)
        or {k: exported.get(k) for k in record} != record
        or not isinstance(exported.get("files_sha256"), dict)
    ):
        return "its export did not finish"
    for name, sha256 in sorted(exported["files_sha256"].items()):
        path = pipeline / name
        if not path.is_file() or file_sha256(path) != sha256:
            return f"{path} no longer has the SHA-256 recorded when it was exported"
    return None


def export_pipeline(
    vae: AutoencoderKL,
    unet: UNet2DConditionModel,
    text_encoder: CLIPTextModel,
    emas: list[EMAModel],
    target: Path,
    record: dict[str, Any],
) -> None:
    """Write the EMA weights as a standard fp16 diffusers pipeline directory, atomically, with
    `record` (`_pipeline_record`) and the SHA-256 of every file written in its `toy_step.json`."""
    ema_unet = UNet2DConditionModel.from_config(unet.config)
    ema_text = CLIPTextModel(text_encoder.config)
    emas[0].copy_to(ema_unet.parameters())
    emas[1].copy_to(ema_text.parameters())
    pipe = StableDiffusionPipeline(
        vae=copy.deepcopy(vae),
        text_encoder=ema_text,
        tokenizer=build_tokenizer(),
        unet=ema_unet,
        scheduler=components.build_sampler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.to(torch.float16)
    stop_if_weights_diverged(
        "fp16 pipeline",
        pipeline_weights(pipe),
        f"Nothing was exported to {target}: lower the learning rates and train into a new --out",
    )
    with atomic_directory(target) as tmp:
        pipe.save_pretrained(tmp)
        digests = folder_sha256s(tmp)
        (tmp / PIPELINE_RECORD).write_text(json.dumps(record | {"files_sha256": digests}))
