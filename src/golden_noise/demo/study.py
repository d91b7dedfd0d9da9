"""The paper's claims checked on the toy world, on top of a finished demo run.

- teachers: the paper's route: every candidate teacher collects its own pairs (same prompts
  and seeds) and trains its own residual NPNet; arms `golden-<teacher>` and
  `teacher-<teacher>` (its own target).
- ablations: the chosen teacher's pairs, one architecture or data change each (w/o SVD, w/o
  residual, w/o text injection, w/o the margin filter), trained and evaluated like the full
  net, beside the norm-matched control (the seed's noise rescaled to the golden noise's norm).
- samplers: the chosen teacher's NPNet (trained on DDIM data) under seven samplers.

Each part evaluates on the first `study_samples` held-out samples of the demo (same prompts,
same seeds) and copies the images the demo or an earlier part already made for an identical
arm instead of regenerating them. Every part resumes: collect, train and evaluate all continue.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.demo.config import DemoConfig
from golden_noise.demo.run import SUMMARY, claim_demo_folder, publish_npnet
from golden_noise.demo.stages import (
    build_teacher,
    collect_training_pairs,
    evaluate_arms,
    heldout_samples,
    load_json,
    teacher_arm,
    train_npnet,
)
from golden_noise.generation import arms
from golden_noise.generation.arms import Arm, Sample

ABLATIONS: dict[str, dict[str, Any]] = {
    "no-svd": {"npnet": {"use_svd": False}},
    "no-residual": {"npnet": {"use_residual": False}},
    "no-text": {"npnet": {"use_text": False}},
    "no-filter": {"margin": None},
}
# diffusers class and overrides; PNDM as Stable Diffusion ships it (PLMS, no Runge-Kutta warm-up).
SAMPLERS: dict[str, tuple[str, dict[str, Any]]] = {
    "ddim": ("DDIMScheduler", {}),
    "dpm-solver++": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler-ancestral": ("EulerAncestralDiscreteScheduler", {}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "pndm": ("PNDMScheduler", {"skip_prk_steps": True}),
    "ddpm": ("DDPMScheduler", {}),
}


def _demo_summary(out: Path) -> dict[str, Any]:
    summary = load_json(out / SUMMARY)
    if summary is None:
        raise GoldenNoiseError(f"expected a finished demo run in {out} ({SUMMARY}); run it first")
    return summary


def _chosen(out: Path) -> str:
    return _demo_summary(out)["teacher_choice"]["chosen"]


def _chosen_npnet(out: Path) -> tuple[str, Path]:
    """The chosen teacher and the paper-route NPNet the teachers part trained on its pairs."""
    chosen = _chosen(out)
    net = out / "study" / f"npnet-{chosen}"
    if not (net / "config.json").is_file():
        raise GoldenNoiseError(
            f"expected the study's {chosen} NPNet in {net}; run the teachers part first"
        )
    return chosen, net


def _samples(config: DemoConfig, n: int) -> list[Sample]:
    return heldout_samples(config)[:n]


def _golden(pipe: Any, folder: Path) -> Any:
    from golden_noise.generation.generate import GoldenNoise
    from golden_noise.npnet import NPNet

    return GoldenNoise(NPNet.from_pretrained(folder), pipe)


def _trained(
    config: DemoConfig, dataset: Path, runs: Path, name: str, progress: bool, **options: Any
) -> tuple[Path, dict[str, Any]]:
    result = train_npnet(config, dataset, runs / f"train-{name}", progress, **options)
    publish_npnet(runs / f"train-{name}" / "best", runs / f"npnet-{name}")
    return runs / f"npnet-{name}", result


def study_teachers(
    out: Path, config: DemoConfig, pipe: Any, n: int, progress: bool = True
) -> dict[str, Any]:
    """Each candidate teacher with its own NPNet, in one report (`study/teachers`)."""
    chosen = _chosen(out)
    runs, folder, samples = out / "study", out / "study" / "teachers", _samples(config, n)
    same = {"standard": "standard", "teacher": f"teacher-{chosen}"}
    made: dict[str, Arm] = {"standard": arms.standard()}
    details: dict[str, Any] = {}
    for name, options in config.teachers:
        teacher = build_teacher(name, options, config)
        dataset = runs / f"npd-{name}"
        details[name] = {
            "collected": collect_training_pairs(pipe, config, teacher, dataset, progress)
        }
        net, details[name]["trained"] = _trained(config, dataset, runs, name, progress)
        made[f"golden-{name}"] = arms.golden(_golden(pipe, net))
        made[f"teacher-{name}"] = teacher_arm(pipe, teacher, config)
    stats = evaluate_arms(folder, samples, pipe, made, config, {"study": "teachers"}, progress,
                          reuse=(out / "report", same))  # fmt: skip
    return {"details": details, "evaluation": stats}


def study_ablations(
    out: Path, config: DemoConfig, pipe: Any, n: int, progress: bool = True
) -> dict[str, Any]:
    """The chosen teacher's NPNet (from the teachers part) beside one-change variants trained
    on the same pairs (`study/ablations`)."""
    chosen, full_net = _chosen_npnet(out)
    runs, samples = out / "study", _samples(config, n)
    full = _golden(pipe, full_net)
    made = {
        "standard": arms.standard(),
        "golden": arms.golden(full),
        "norm-matched": arms.norm_matched(full),
    }
    details = {}
    for name, options in ABLATIONS.items():
        net, details[name] = _trained(config, runs / f"npd-{chosen}", runs, name, progress,
                                      **options)  # fmt: skip
        made[f"golden-{name}"] = arms.golden(_golden(pipe, net))
    reuse = (runs / "teachers", {"standard": "standard", "golden": f"golden-{chosen}"})
    stats = evaluate_arms(runs / "ablations", samples, pipe, made, config,
                          {"study": "ablations"}, progress, reuse=reuse)  # fmt: skip
    return {"details": details, "evaluation": stats}


def study_samplers(
    out: Path, config: DemoConfig, pipe: Any, n: int, progress: bool = True
) -> dict[str, Any]:
    """The chosen teacher's NPNet (trained on DDIM data) under each sampler, standard vs golden
    (`study/samplers/<name>`)."""
    import diffusers

    chosen, net = _chosen_npnet(out)
    samples = _samples(config, n)
    golden = _golden(pipe, net)
    made = {"standard": arms.standard(), "golden": arms.golden(golden)}
    original = pipe.scheduler
    results = {}
    try:
        for name, (cls, overrides) in SAMPLERS.items():
            folder = out / "study" / "samplers" / name
            pipe.scheduler = getattr(diffusers, cls).from_config(original.config, **overrides)
            same = {"standard": "standard", "golden": f"golden-{chosen}"}
            ddim = type(pipe.scheduler) is type(original)
            reuse = (out / "study" / "teachers", same) if ddim else None
            results[name] = evaluate_arms(folder, samples, pipe, made, config,
                                          {"study": "samplers", "sampler": cls}, progress,
                                          reuse=reuse)  # fmt: skip
    finally:
        pipe.scheduler = original
    return results


STUDY = "study.json"


def run_study(
    out: Path | str, config: DemoConfig, pipe: Any, progress: bool = True, console: Any = None
) -> dict[str, Any]:
    """All three parts after a finished demo in `out`; writes `study.json` and returns it.
    Refused, before anything is written, unless `config` and `pipe` are the demo run's own."""
    from golden_noise.core.atomic import atomic_write_json
    from golden_noise.demo.run import StageClock

    out = Path(out)
    _demo_summary(out)  # a finished run, so the claim below checks its record, never writes one
    claim_demo_folder(out, config, pipe)
    say = console.print if console is not None else None
    clock = StageClock()
    result: dict[str, Any] = {}
    with clock.stage("study: teachers", say):
        result["teachers"] = study_teachers(out, config, pipe, config.study_samples, progress)
    with clock.stage("study: ablations", say):
        result["ablations"] = study_ablations(out, config, pipe, config.study_samples, progress)
    with clock.stage("study: samplers", say):
        result["samplers"] = study_samplers(out, config, pipe, config.sampler_samples, progress)
    result["seconds"] = clock.seconds
    atomic_write_json(out / STUDY, result)
    return result
