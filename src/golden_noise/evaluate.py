"""Did golden noise help? Standard vs golden (vs teacher) images on a prompt set, scored.

For every prompt and seed each arm starts from the same seeded generator: "standard" lets
the pipeline draw its noise, "golden" passes NPNet's edit of exactly that noise, and an
optional "teacher" arm passes the re-denoised x_T' (what NPNet learns from). Images are
written once under `images/` (atomically; existing files are kept, so an interrupted run
resumes) and listed in `index.jsonl`, so they can be re-scored later without the pipeline.
Scores feed `golden_noise.stats.compare_arms` and the report. With `accelerate launch`,
samples are split across processes and the main process writes one report.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from golden_noise.atomic import atomic_write_json, atomic_write_png, atomic_write_text
from golden_noise.errors import GoldenNoiseError
from golden_noise.report import ImageRow, MetricInfo, write_report
from golden_noise.seeds import seeded_generator
from golden_noise.stats import BOOTSTRAP_RESAMPLES, compare_arms

if TYPE_CHECKING:
    from accelerate import Accelerator

    from golden_noise.generate import GoldenNoise
    from golden_noise.redenoise import RedenoiseSettings
    from golden_noise.scorers import Scorer

IMAGES_DIR = "images"
INDEX_NAME = "index.jsonl"
RUN_NAME = "run.json"
SCORE_CHUNK = 64  # images held in memory at once while scoring

# An arm makes the image for (prompt, seed); every arm seeds its own CPU generator.
Arm = Callable[[str, int], Image.Image]


@dataclass(frozen=True)
class Sample:
    """One prompt with one seed: the unit that is paired across arms."""

    prompt_index: int
    prompt: str
    seed: int
    group: str | None = None

    def file(self, arm: str) -> str:
        return f"{IMAGES_DIR}/{self.prompt_index:05d}-seed{self.seed}-{arm}.png"


def prompt_group(prompt: str) -> str | None:
    """The toy world's prompt type (single, pair, counting, position) when it parses."""
    from golden_noise.toy.grammar import parse, parse_ok

    return parse(prompt).prompt_type if parse_ok(prompt) else None


def make_samples(prompts: Sequence[str], seeds: Sequence[int]) -> list[Sample]:
    """Prompt-major (prompt, seed) samples, grouped by prompt type where one is known."""
    return [
        Sample(index, prompt, seed, prompt_group(prompt))
        for index, prompt in enumerate(prompts)
        for seed in seeds
    ]


def standard_arm(pipe: Any, **pipe_kwargs: Any) -> Arm:
    """The pipeline's own noise for the seed."""

    def image(prompt: str, seed: int) -> Image.Image:
        return pipe(prompt, generator=seeded_generator(seed), **pipe_kwargs).images[0]

    return image


def golden_arm(golden: GoldenNoise, **pipe_kwargs: Any) -> Arm:
    """NPNet's golden version of the very noise the standard arm starts from."""
    return lambda prompt, seed: golden.image(prompt, seed, **pipe_kwargs)


def redenoise_arm(
    golden: GoldenNoise, settings: RedenoiseSettings | None = None, **pipe_kwargs: Any
) -> Arm:
    """The teacher: the re-denoised x_T' of the seed's noise (Stage I's target), generated."""
    from golden_noise.redenoise import pipeline_dtype, redenoise

    adapter, pipe = golden.adapter, golden.pipe
    size = pipe_kwargs.get("height"), pipe_kwargs.get("width")
    dtype = pipeline_dtype(pipe)

    def image(prompt: str, seed: int) -> Image.Image:
        generator = seeded_generator(seed)
        noise = adapter.initial_noise(1, *size, generator, dtype=dtype)
        target = redenoise(pipe, noise, adapter.call_kwargs([prompt], *size), settings)
        latents = adapter.pipeline_latents(target.to(noise.device, dtype))
        return pipe(prompt, latents=latents, generator=generator, **pipe_kwargs).images[0]

    return image


def generate_images(
    folder: Path, samples: Sequence[Sample], arms: Mapping[str, Arm], show_progress: bool = True
) -> int:
    """Write every missing image of `samples` x `arms`; returns how many were generated."""
    from rich.progress import track

    (folder / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
    jobs = [(s, arm) for s in samples for arm in arms if not (folder / s.file(arm)).is_file()]
    for sample, arm in track(jobs, "generating", disable=not show_progress):
        atomic_write_png(folder / sample.file(arm), arms[arm](sample.prompt, sample.seed))
    return len(jobs)


def score_images(
    folder: Path,
    samples: Sequence[Sample],
    arms: Sequence[str],
    scorers: Sequence[Scorer],
    show_progress: bool = True,
) -> list[ImageRow]:
    """Every image of `samples` x `arms` scored by every scorer, read from disk in chunks."""
    from rich.progress import track

    rows = [
        ImageRow(s.prompt_index, s.prompt, s.seed, arm, s.file(arm), s.group)
        for s in samples
        for arm in arms
    ]
    missing = [r.file for r in rows if not (folder / r.file).is_file()]
    if missing:
        raise GoldenNoiseError(
            f"expected {len(rows)} images under {folder}, {len(missing)} are missing (first: "
            f"{missing[0]}); generate them first (evaluate without --rescore)"
        )
    starts = range(0, len(rows), SCORE_CHUNK)
    for start in track(starts, "scoring", disable=not show_progress):
        chunk = rows[start : start + SCORE_CHUNK]
        images = [Image.open(folder / r.file).convert("RGB") for r in chunk]
        prompts = [r.prompt for r in chunk]
        for scorer in scorers:
            for row, value in zip(chunk, scorer.score(images, prompts).tolist(), strict=True):
                row.scores[scorer.name] = value
    return rows


def write_index(folder: Path, samples: Sequence[Sample], arms: Sequence[str]) -> None:
    """`index.jsonl`: one line per sample with its arms, what re-scoring reads back."""
    lines = [json.dumps({**asdict(s), "arms": list(arms)}, ensure_ascii=False) for s in samples]
    atomic_write_text(folder / INDEX_NAME, "\n".join(lines) + "\n")


def read_index(folder: Path) -> tuple[list[Sample], list[str]]:
    """The samples and arms a previous run generated into `folder`."""
    path = folder / INDEX_NAME
    if not path.is_file():
        raise GoldenNoiseError(f"expected {INDEX_NAME} from an earlier evaluate run in {folder}")
    samples, arms = [], None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            data = json.loads(line)
            arms = arms or data.pop("arms")
            data.pop("arms", None)
            samples.append(Sample(**data))
        except (json.JSONDecodeError, TypeError, KeyError) as error:
            raise GoldenNoiseError(
                f"{path} line {number} is not an index entry: {error}"
            ) from error
    if not samples:
        raise GoldenNoiseError(f"{path} lists no samples")
    return samples, arms


def summarize(
    rows: Sequence[ImageRow], scorers: Sequence[Scorer], resamples: int = BOOTSTRAP_RESAMPLES
) -> dict[str, Any]:
    """Paired statistics of every arm against "standard", overall and per prompt group."""
    return compare_arms(
        [{"sample": r.sample, "arm": r.arm, "group": r.group, **r.scores} for r in rows],
        {s.name: s.higher_is_better for s in scorers},
        baseline="standard",
        resamples=resamples,
    )


def evaluate(
    folder: Path,
    scorers: Sequence[Scorer],
    *,
    samples: Sequence[Sample] | None = None,
    arms: Mapping[str, Arm] | None = None,
    run: Mapping[str, Any] | None = None,
    accelerator: Accelerator | None = None,
    show_progress: bool = True,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> dict[str, Any] | None:
    """Load the scorers, generate what is missing, score, and (main process) write the report.

    With `samples` and `arms` (which must include "standard"), images are generated first;
    without them the folder's `index.jsonl` is re-scored. Returns the statistics on the
    main process, None on the others.
    """
    folder = Path(folder)
    main = accelerator is None or accelerator.is_main_process
    if (samples is None) != (arms is None):
        raise GoldenNoiseError("pass both samples and arms to generate, or neither to re-score")
    if samples is None:
        samples, arm_names = read_index(folder)
    else:
        arm_names = list(arms)
        if "standard" not in arm_names:
            raise GoldenNoiseError(f"expected a 'standard' arm to compare against, got {arm_names}")
        if main:
            folder.mkdir(parents=True, exist_ok=True)
            write_index(folder, samples, arm_names)
    if main:  # what generated the images, kept across resumes and re-scores
        stored = folder / RUN_NAME
        run = {**(json.loads(stored.read_text()) if stored.is_file() else {}), **(run or {})}
        atomic_write_json(stored, run)
    for scorer in scorers:  # a missing checkpoint should stop us before hours of generation
        scorer.load()
    mine = _my_share(list(samples), accelerator)
    if arms is not None:
        generate_images(folder, mine, arms, show_progress and main)
    rows = score_images(folder, mine, arm_names, scorers, show_progress and main)
    if accelerator is not None:
        from accelerate.utils import gather_object

        rows = gather_object(rows)
    if not main:
        return None
    order = {(s.prompt_index, s.seed): i for i, s in enumerate(samples)}
    rows = sorted(rows, key=lambda r: (order[r.sample], arm_names.index(r.arm)))
    summary = summarize(rows, scorers, resamples)
    metrics = [MetricInfo(s.name, s.scale, s.higher_is_better) for s in scorers]
    write_report(folder, rows, metrics, summary, run)
    return summary


def _my_share(samples: list[Sample], accelerator: Accelerator | None) -> list[Sample]:
    if accelerator is None or accelerator.num_processes == 1:
        return samples
    with accelerator.split_between_processes(samples) as share:
        return list(share)
