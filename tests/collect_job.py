"""A small collection job run as its own process by tests/test_collect.py (kill -9, accelerate).

Usage: python tests/collect_job.py OUT [N_PROMPTS] [SEEDS_PER_PROMPT]
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

import tiny_pipelines  # noqa: E402

from golden_noise.collection.collect import SeedPlan, collect  # noqa: E402
from golden_noise.core.distributed import make_accelerator  # noqa: E402
from golden_noise.prompts.sources import read_prompt_source  # noqa: E402
from golden_noise.scorers.registry import get_scorer  # noqa: E402
from golden_noise.teachers import SamplerSettings  # noqa: E402

SAMPLER = SamplerSettings(steps=2)
BATCH = 2
ROWS_PER_SHARD = 2


def job_prompts(n: int) -> list[str]:
    return read_prompt_source(f"toy:train:{n}")


def run(out: str, n_prompts: int, seeds_per_prompt: int, accelerator=None) -> object:
    return collect(
        tiny_pipelines.build_sd(),
        job_prompts(n_prompts),
        out,
        get_scorer("toy-soft"),
        sampler=SAMPLER,
        seeds=SeedPlan(per_prompt=seeds_per_prompt),
        batch_size=BATCH,
        rows_per_shard=ROWS_PER_SHARD,
        model="tiny-sd",
        accelerator=accelerator,
        progress=False,
    )


if __name__ == "__main__":
    torch.set_num_threads(1)
    out_dir = sys.argv[1]
    prompts_n = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    seeds_n = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    run(out_dir, prompts_n, seeds_n, make_accelerator())
