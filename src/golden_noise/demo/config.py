"""The demo's experiment settings: one frozen record per preset, every choice written down.

Seeds never overlap between stages: training rows use seeds from 0, the teacher choice on
the validation split from `VALIDATION_SEED_OFFSET`, the held-out evaluation from
`EVAL_SEED_OFFSET`; prompts come from the toy world's train, validation and held-out splits.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from golden_noise.toy.pipeline import DEFAULT_GUIDANCE, DEFAULT_STEPS

VALIDATION_SEED_OFFSET = 1_000_000
EVAL_SEED_OFFSET = 2_000_000
CONFIG_NAME = "demo_config.json"  # the run's DemoConfig, in its output folder
# demo_config.json's digest of the pipeline's weights, recorded beside the DemoConfig's fields
PIPELINE_KEY = "pipeline_sha256"

# A residual backbone sized for 8x8x4 latents: a 2-block ViT on a 16x16 resize (16 tokens),
# a narrower SVD branch (the folded 16x16 noise matrix has 16 singular values).
TOY_NPNET: dict[str, Any] = {
    "backbone": "vit_tiny_patch16_224",
    "backbone_kwargs": {
        "img_size": 16,
        "patch_size": 4,
        "embed_dim": 64,
        "depth": 2,
        "num_heads": 2,
    },
    "backbone_input_size": 16,
    "svd_hidden": 32,
    "svd_mlp_hidden": 128,
    "svd_heads": 4,
}
# The shipped toy NPNet's recipe (toy/npnet.py): the cheap fit, a ridge-1 table, a 4 x 128 net.
OFFSET_FIT: dict[str, Any] = {"iters": 20, "fit_steps": 4, "lr": 0.15}
OFFSET_NET: dict[str, Any] = {"width": 128, "layers": 4, "heads": 4}


@dataclass(frozen=True)
class DemoConfig:
    """What one demo run does; saved as `demo_config.json` in its output folder.

    The demo's NPNet comes from the learned-offset recipe: fit `fit_prompts` train prompts'
    offsets (the prompt-offset teacher, `offset_fit`), compose them into an object-and-role
    table (`offset_ridge`) that gives `composed_prompts` train prompts their offsets, and
    regress a prompt-offset net (`offset_net`, `net_epochs`, `net_batch_size`, `net_lr`) on
    those; None takes every train prompt (the full-scale preset: the shipped net's recipe).
    `recipe_steps`: the sampler steps that score the recipe's rows (the shipped recipe's 10;
    its targets do not depend on them).

    `teachers`: the candidate noise-pair teachers of the paper's route (registry name,
    options); the one whose target scores best on the validation split is the evaluation's
    teacher arm, and the study trains the paper's NPNet on each one's pairs. `redenoise`: the
    re-denoise teacher's settings (the paper's w_l 5.5, w_w 1.0). `margin`: keep a pair when
    soft(x_T) + margin < soft(x_T'). `collect_rows`, `epochs`, `batch_size`, `lr`, `npnet`:
    the study's pairs and nets. `steps`/`guidance`: the sampler for collection and evaluation
    alike: the toy pipeline's defaults (CFG chosen on the validation split).
    `study_samples`/`sampler_samples`: how many of the held-out samples the study's
    teacher/ablation and per-sampler evaluations use.
    """

    name: str
    validation_rows: int
    collect_rows: int
    eval_samples: int
    epochs: int
    steps: int = DEFAULT_STEPS
    guidance: float = DEFAULT_GUIDANCE
    margin: float = 0.02
    batch_size: int = 64
    lr: float = 1e-3
    generation_batch_size: int = 64
    teachers: tuple[tuple[str, dict[str, Any]], ...] = (
        ("redenoise", {}),
        ("local-search", {"candidates": 3, "angle": 0.5}),
    )
    redenoise: dict[str, Any] = field(
        default_factory=lambda: {"w_l": 5.5, "w_w": 1.0, "inversion": "exact"}
    )
    npnet: dict[str, Any] = field(default_factory=lambda: dict(TOY_NPNET))
    prompt_seed: int = 0
    study_samples: int = 512
    sampler_samples: int = 256
    fit_prompts: int | None = 16
    composed_prompts: int | None = 512
    offset_fit: dict[str, Any] = field(default_factory=lambda: dict(OFFSET_FIT))
    offset_ridge: float = 1.0
    offset_net: dict[str, Any] = field(default_factory=lambda: dict(OFFSET_NET))
    net_epochs: int = 30
    net_batch_size: int = 32
    net_lr: float = 2e-3
    recipe_steps: int = 10

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DemoConfig:
        """The config `to_dict` wrote (JSON turns the teachers' tuples into lists), read from
        `demo_config.json` too, whose pipeline digest belongs to the run, not the config."""
        teachers = tuple((name, dict(options)) for name, options in data["teachers"])
        fields = {key: value for key, value in data.items() if key != PIPELINE_KEY}
        return cls(**{**fields, "teachers": teachers})


FULL = DemoConfig(
    name="full",
    validation_rows=96,
    collect_rows=512,
    eval_samples=1024,
    epochs=60,
    study_samples=1024,
    sampler_samples=1024,
)

QUICK = DemoConfig(
    name="quick",
    validation_rows=8,
    collect_rows=64,
    eval_samples=16,
    epochs=3,
    batch_size=4,
    study_samples=8,
    sampler_samples=4,
    generation_batch_size=32,
    fit_prompts=4,
    composed_prompts=16,
    offset_fit={"iters": 2, "fit_steps": 2, "lr": 0.15},
    net_epochs=2,
    recipe_steps=4,
)

# The shipped toy NPNet from scratch: every train prompt fitted (~1.5 h on 2 cores, resumable)
# and composed, the net trained 150 epochs; evaluated like FULL.
FULL_SCALE = dataclasses.replace(
    FULL, name="full-scale", fit_prompts=None, composed_prompts=None, net_epochs=150
)
PRESETS = {config.name: config for config in (FULL, QUICK, FULL_SCALE)}
