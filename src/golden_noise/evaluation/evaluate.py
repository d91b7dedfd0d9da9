"""Did golden noise help? Standard vs golden (vs control, teacher) images on a prompt set, scored.

For every prompt and seed each arm starts from the same seeded noise (`generation.arms`):
"standard" is the seed's own noise, "golden" NPNet's edit of exactly that noise,
"norm-matched" the seed's noise rescaled to the golden noise's norm (the control for a
gain that rescaling alone gives), and an optional "teacher" the target NPNet learns from.
Images are written once under `images/` (atomically; existing files are kept, so an
interrupted run resumes) and listed in `index.jsonl`, so they can be re-scored later without
the pipeline; each image records the arm and sample it was made for, the index its SHA-256
(`image_hashes`), and a re-score checks the index against `run.json`, so a moved or edited
image or an edited index is named, not scored.
Scores feed `stats.compare_arms` and the report, beside each arm's diversity among a
prompt's seeds (`golden_noise.evaluation.diversity`). With
`accelerate launch`, samples are split across processes and the main process writes one
report.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from golden_noise.core.atomic import (
    atomic_write_json,
    atomic_write_png,
    atomic_write_text,
    remove_leftovers_of,
)
from golden_noise.core.errors import GoldenNoiseError, first_few
from golden_noise.core.file_digests import file_sha256
from golden_noise.core.seeds import MAX_SEED
from golden_noise.core.text_lines import text_lines
from golden_noise.core.validate import MAX_BATCH, integer
from golden_noise.evaluation.diversity import compare_diversity, prompt_diversity
from golden_noise.evaluation.image_hashes import HASHES_KEY, check_hashes_entry, check_image
from golden_noise.evaluation.report import ImageRow, MetricInfo, write_report
from golden_noise.evaluation.report.writer import (
    CSV_NAME,
    FOREST_NAME,
    GRID_NAME,
    HTML_NAME,
    METRICS_NAME,
    NORM_RATIO_NAME,
    norm_ratios,
)
from golden_noise.evaluation.stats import BOOTSTRAP_RESAMPLES, compare_arms
from golden_noise.generation.arms import Arm, Sample, generate_arms

if TYPE_CHECKING:
    from accelerate import Accelerator

    from golden_noise.adapters import PipelineAdapter
    from golden_noise.scorers import Scorer

IMAGES_DIR = "images"
INDEX_NAME = "index.jsonl"
RUN_NAME = "run.json"
MADE_BY = "made_by"  # run.json key: what generated the images (see _made_by)
SCORE_CHUNK = 64  # images held in memory at once while scoring
# PNG text key of `||start latents|| / ||seed's noise||` (`arms.ArmImages.norm_ratio`).
NORM_RATIO_KEY = "golden_noise:norm_ratio"
# PNG text key of the arm and sample an image was made for (`made_for`).
MADE_FOR_KEY = "golden_noise:made_for"
# PNG text key of the digest of the settings the image was made with (`settings_sha256`).
MADE_WITH_KEY = "golden_noise:made_with"
# run.json key: true once every image of the run was scored with its `made_for` text, so a
# re-score refuses an image without it (re-saved by an image tool) even if its digest matches.
ALL_MADE_FOR = "images_record_made_for"


@dataclass
class Generation:
    """What makes missing images: a pipeline, its named arms and the settings they share.

    `call` goes to every pipeline call; `batch_size` samples go into one call; `adapter` is
    `pipe`'s, when the caller has made it already (e.g. `GoldenNoise.adapter`). `reuse`:
    another evaluation folder and `{its arm: our arm}` for arms that start from the same
    latents: its images are copied instead of generated, if its record shows the same
    pipeline, dtype and call settings made them for the same samples.
    """

    pipe: Any
    arms: dict[str, Arm]
    call: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 8
    adapter: PipelineAdapter | None = None
    reuse: tuple[Path, dict[str, str]] | None = None

    def __post_init__(self) -> None:
        integer("batch_size", self.batch_size, 1, MAX_BATCH)


def image_file(sample: Sample, arm: str) -> str:
    """Where `sample`'s image under `arm` lives, relative to the evaluation folder."""
    return f"{IMAGES_DIR}/{sample.prompt_index:05d}-seed{sample.seed}-{arm}.png"


def made_for(sample: Sample | ImageRow, arm: str) -> str:
    """What an image records of the arm and sample it was made for, so scoring can tell an
    image moved under another name, or an index line edited over it, from the right one."""
    fields = {"arm": arm, "prompt_index": sample.prompt_index, "prompt": sample.prompt,
              "seed": sample.seed}  # fmt: skip
    return json.dumps(fields, ensure_ascii=False, sort_keys=True)


def settings_sha256(made_by: Mapping[str, Any] | None) -> str | None:
    """Digest of what made a run's images (run.json's `made_by`, as resumes compare it), kept
    in each image so an edited run.json cannot pass the images off as other settings'."""
    if made_by is None:
        return None
    return _json_sha256(_compared(made_by), sort_keys=True)


def generate_images(
    folder: Path,
    samples: Sequence[Sample],
    generation: Generation,
    show_progress: bool = True,
    settings: str | None = None,
) -> int:
    """Write every missing image of `samples` x arms; returns how many were written.

    Samples with any missing image are regenerated under the arms that miss one (batched);
    existing files are kept. Each PNG carries its arm's norm ratio for the report, what it
    was made for (`made_for`) and the digest of the `settings` it was made with.
    """
    from golden_noise.core.progress import track

    (folder / IMAGES_DIR).mkdir(parents=True, exist_ok=True)

    def missing(sample: Sample, arm: str) -> bool:
        return not (folder / image_file(sample, arm)).is_file()

    todo = [s for s in samples if any(missing(s, arm) for arm in generation.arms)]
    if not todo:
        return 0
    arms = {n: a for n, a in generation.arms.items() if any(missing(s, n) for s in todo)}
    # a kill mid-write leaves a hidden temp PNG; this process rewrites those images, so it
    # removes their leftovers (and only theirs: other processes own other samples)
    remove_leftovers_of(folder / image_file(s, arm) for s in todo for arm in arms)
    batches = generate_arms(
        generation.pipe,
        todo,
        arms,
        batch_size=generation.batch_size,
        adapter=generation.adapter,
        **generation.call,
    )
    total = -(-len(todo) // generation.batch_size)
    written = 0
    for batch in track(batches, "generating", total=total, disable=not show_progress):
        for arm, images in batch.images.items():
            ratios = batch.norm_ratio[arm]
            for sample, image, ratio in zip(batch.samples, images, ratios, strict=True):
                if missing(sample, arm):
                    text = {NORM_RATIO_KEY: repr(ratio), MADE_FOR_KEY: made_for(sample, arm)}
                    text |= {MADE_WITH_KEY: settings} if settings else {}
                    atomic_write_png(folder / image_file(sample, arm), image, text=text)
                    written += 1
    return written


def score_images(
    folder: Path,
    samples: Sequence[Sample],
    arms: Sequence[str],
    scorers: Sequence[Scorer],
    show_progress: bool = True,
    hashes: Mapping[str, str] | None = None,
    require_made_for: bool = False,
    settings: str | None = None,
) -> list[ImageRow]:
    """Every image of `samples` x `arms` scored by every scorer, read from disk in chunks.

    An image that records what it was made for must be that row's (and must record it, with
    `require_made_for`), one whose SHA-256 `hashes` records (by file) must still have it,
    and one that records the digest of its settings must match `settings`; images from
    before those records are taken as named."""
    from golden_noise.core.progress import track

    rows = [
        ImageRow(s.prompt_index, s.prompt, s.seed, arm, image_file(s, arm), s.group)
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
        images = []
        for row in chunk:
            try:
                with Image.open(folder / row.file) as image:
                    if NORM_RATIO_KEY in image.text:
                        row.norm_ratio = float(image.text[NORM_RATIO_KEY])
                    images.append(image.convert("RGB"))
                    recorded = image.text.get(MADE_FOR_KEY)
                    made_with = image.text.get(MADE_WITH_KEY)
            except (OSError, ValueError, SyntaxError) as error:  # PIL's truncated/bad files
                raise GoldenNoiseError(
                    f"cannot read image {folder / row.file} ({error}); delete it and run the "
                    "same evaluate command again to regenerate it"
                ) from error
            if recorded not in (None, made_for(row, row.arm)):
                raise GoldenNoiseError(
                    f"image {folder / row.file} was made for {recorded}; {INDEX_NAME} lists it "
                    f"as {made_for(row, row.arm)}. Images were moved or renamed, or the index "
                    "edited: restore them, or evaluate into a new --out"
                )
            check_image(folder / row.file, hashes or {}, row.file, folder / INDEX_NAME)
            if recorded is None and require_made_for:
                raise GoldenNoiseError(
                    f"image {folder / row.file} does not record what it was made for, as every "
                    f"image of this run did ({folder / RUN_NAME}: {ALL_MADE_FOR}); it was "
                    "re-saved or replaced since: restore it, or delete it and run the same "
                    "evaluate command again to regenerate it"
                )
            if None not in (made_with, settings) and made_with != settings:
                raise GoldenNoiseError(
                    f"image {folder / row.file} was made with other settings than "
                    f"{folder / RUN_NAME} records ({RUN_NAME} was edited since, or the image "
                    "is another run's): restore it, or evaluate into a new --out"
                )
        prompts = [r.prompt for r in chunk]
        for scorer in scorers:
            for row, value in zip(chunk, scorer.score(images, prompts).tolist(), strict=True):
                row.scores[scorer.name] = value
    return rows


def write_index(
    folder: Path,
    samples: Sequence[Sample],
    arms: Sequence[str],
    hashes: Mapping[str, str] | None = None,
) -> None:
    """`index.jsonl`: one line per sample with its arms and the SHA-256 of each of its images
    that `hashes` records (by file), what re-scoring reads back."""
    lines = []
    for sample in samples:
        entry: dict[str, Any] = {**asdict(sample), "arms": list(arms)}
        known = {a: (hashes or {}).get(image_file(sample, a)) for a in arms}
        if any(known.values()):
            entry[HASHES_KEY] = {a: h for a, h in known.items() if h}
        lines.append(json.dumps(entry, ensure_ascii=False))
    atomic_write_text(folder / INDEX_NAME, "\n".join(lines) + "\n")


def read_index(folder: Path) -> tuple[list[Sample], list[str]]:
    """The samples and arms a previous run generated into `folder`."""
    samples, arms, _ = _read_index(folder)
    return samples, arms


def recorded_hashes(folder: Path) -> dict[str, str]:
    """The SHA-256 the index records for each image on disk now, by file ({} with no index)."""
    if not (folder / INDEX_NAME).is_file():
        return {}
    return {f: h for f, h in _read_index(folder)[2].items() if (folder / f).is_file()}


def _read_index(folder: Path) -> tuple[list[Sample], list[str], dict[str, str]]:
    path = folder / INDEX_NAME
    if not path.is_file():
        raise GoldenNoiseError(f"expected {INDEX_NAME} from an earlier evaluate run in {folder}")
    samples, arms, hashes = [], None, {}
    for number, line in enumerate(text_lines(path.read_text(encoding="utf-8")), start=1):
        try:
            data = json.loads(line)
            arms = arms or data.pop("arms")
            data.pop("arms", None)
            recorded = data.pop(HASHES_KEY, {})
            sample = Sample(**data)
        except (json.JSONDecodeError, TypeError, KeyError, AttributeError) as error:
            raise GoldenNoiseError(
                f"{path} line {number} is not an index entry: {error}"
            ) from error
        _check_entry(path, number, sample, arms, recorded)
        samples.append(sample)
        hashes.update({image_file(sample, arm): h for arm, h in recorded.items()})
    if not samples:
        raise GoldenNoiseError(f"{path} lists no samples")
    return samples, arms, hashes


def _check_entry(path: Path, number: int, sample: Sample, arms: Any, hashes: Any) -> None:
    """An index line names an image file: its numbers must be what the writer wrote."""
    problem = None
    index = sample.prompt_index
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        problem = f"prompt_index must be an integer >= 0; got {index!r}"
    elif isinstance(sample.seed, bool) or not isinstance(sample.seed, int):
        problem = f"seed must be an integer >= 0; got {sample.seed!r}"
    elif not 0 <= sample.seed <= MAX_SEED:
        problem = f"seed must be between 0 and {MAX_SEED}; got {sample.seed!r}"
    elif not isinstance(sample.prompt, str):
        problem = f"prompt must be a string; got {sample.prompt!r}"
    elif not isinstance(arms, list) or not all(isinstance(a, str) for a in arms):
        problem = f"arms must be a list of names; got {arms!r}"
    else:
        problem = check_hashes_entry(hashes)
    if problem:
        raise GoldenNoiseError(f"{path} line {number} is not an index entry: {problem}")


def read_run_record(folder: Path) -> dict[str, Any]:
    """`run.json` of an earlier run in `folder` ({} when there is none), or one clear error."""
    path = Path(folder) / RUN_NAME
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise GoldenNoiseError(
            f"cannot read {path} ({error}); it records what made the images there: restore "
            "it, or evaluate into a new --out"
        ) from error
    if not isinstance(data, dict):
        raise GoldenNoiseError(f"{path} must hold a JSON object; got {type(data).__name__}")
    return data


# What an evaluate run writes beside run.json (its pictures, strip-<group>.png, included).
_OUR_FILES = (INDEX_NAME, METRICS_NAME, CSV_NAME, HTML_NAME, GRID_NAME, FOREST_NAME,
              NORM_RATIO_NAME)  # fmt: skip


def _refuse_files_of_another_kind(folder: Path) -> None:
    """A folder with no run.json is not an evaluate run's: files there that a run would write
    (a user's metrics.json, report.html, ...) are someone else's, never overwritten."""
    if not folder.is_dir():
        return
    taken = sorted(
        p.name
        for p in folder.iterdir()
        if p.name in _OUR_FILES or (p.name.startswith("strip-") and p.name.endswith(".png"))
    )
    if taken:
        shown = first_few(taken, 4)
        raise GoldenNoiseError(
            f"{folder} holds {shown} but no {RUN_NAME}, so it is not an evaluate run folder; "
            "evaluating there would overwrite them. Choose a new --out, or move those files"
        )


def _has_images(folder: Path) -> bool:
    images = folder / IMAGES_DIR
    return images.is_dir() and any(images.glob("*.png"))


def _check_distinct(samples: Sequence[Sample]) -> None:
    """Two samples of one (prompt_index, seed) would share one image file."""
    seen: set[tuple[int, int]] = set()
    for sample in samples:
        key = (sample.prompt_index, sample.seed)
        if key in seen:
            raise GoldenNoiseError(
                f"sample (prompt_index {key[0]}, seed {key[1]}) is listed twice; expected "
                "each prompt and seed once"
            )
        seen.add(key)


CONTROL = "norm-matched"


def summarize(
    rows: Sequence[ImageRow], scorers: Sequence[Scorer], resamples: int = BOOTSTRAP_RESAMPLES
) -> dict[str, Any]:
    """Paired statistics of every arm against "standard", overall and per prompt group, and
    against the norm-matched control where the run has one (`vs_norm-matched`).

    `norm_ratio`: per arm other than standard, each sample's `||start latents|| / ||seed's
    noise||` in row (index.jsonl) order, where its images recorded one.
    """
    table = [{"sample": r.sample, "arm": r.arm, "group": r.group, **r.scores} for r in rows]
    metrics = {s.name: s.higher_is_better for s in scorers}
    summary = compare_arms(table, metrics, baseline="standard", resamples=resamples)
    if CONTROL in summary["arms"]:  # a gain counts only beyond the norm-matched control
        control = compare_arms(table, metrics, baseline=CONTROL, resamples=resamples)
        scopes = [(summary["overall"], control["overall"])]
        scopes += [(summary["groups"][g], control["groups"][g]) for g in summary["groups"]]
        for ours, theirs in scopes:
            for metric, block in ours.items():
                block[f"vs_{CONTROL}"] = theirs[metric][f"vs_{CONTROL}"]
    return {**summary, "norm_ratio": norm_ratios(rows, "standard")}


def evaluate(
    folder: Path,
    scorers: Sequence[Scorer],
    *,
    samples: Sequence[Sample] | None = None,
    generation: Generation | None = None,
    run: Mapping[str, Any] | None = None,
    accelerator: Accelerator | None = None,
    show_progress: bool = True,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> dict[str, Any] | None:
    """Load the scorers, generate what is missing, score, and (main process) write the report.

    With `samples` and `generation` (whose arms must include "standard"), missing images are
    generated first; without them the folder's `index.jsonl` is re-scored. Returns the
    statistics on the main process, None on the others.
    """
    folder = Path(folder)
    main = accelerator is None or accelerator.is_main_process
    if (samples is None) != (generation is None):
        raise GoldenNoiseError(
            "pass both samples and generation to generate, or neither to re-score"
        )
    if not scorers:
        raise GoldenNoiseError("expected at least one scorer; got none")
    if samples is None:
        samples, arm_names = read_index(folder)
    else:
        arm_names = list(generation.arms)
        if "standard" not in arm_names:
            raise GoldenNoiseError(f"expected a 'standard' arm to compare against, got {arm_names}")
        _check_distinct(samples)
    # Everything is checked before anything is written: a refused run leaves the folder (its
    # index, run record and report) exactly as the previous run left it.
    record: dict[str, Any] = {}
    if main:  # what generated the images, kept across resumes and re-scores
        before = read_run_record(folder)
        made_by = before.pop(MADE_BY, None)
        kept = {ALL_MADE_FOR: True} if before.pop(ALL_MADE_FOR, None) is True else {}
        run = {**before, **(run or {})}
        if generation is None:
            _check_rescore_folder(folder, samples, arm_names, made_by)
        else:
            made_by, recorded = _made_by(generation, samples, run), made_by
            _check_resume_folder(folder, recorded, made_by)
            for scorer in scorers:  # not after the images of a prompt it cannot judge
                scorer.check_prompts([s.prompt for s in samples])
            recorded_images = recorded_hashes(folder)
            for name in recorded_images:  # a resume reuses them: checked before any write
                check_image(folder / name, recorded_images, name, folder / INDEX_NAME)
            if not _has_images(folder):  # every image this run writes or copies records it
                kept = {ALL_MADE_FOR: True}
            folder.mkdir(parents=True, exist_ok=True)
            write_index(folder, samples, arm_names, recorded_images)
            if generation.reuse is not None:
                _copy_reused(folder, samples, made_by, *generation.reuse)
        record = {**run, **kept, **({MADE_BY: made_by} if made_by else {})}
        if generation is not None:  # a re-score's record is written once it has scored
            atomic_write_json(folder / RUN_NAME, record)
    for scorer in scorers:  # a missing checkpoint should stop us before hours of generation
        scorer.load()
    mine = _my_share(list(samples), accelerator, generation.batch_size if generation else 1)
    if accelerator is not None:  # every process reads the run record the main one wrote
        accelerator.wait_for_everyone()
    hashes = recorded_hashes(folder)  # before this process writes any of its images
    written = read_run_record(folder)
    require_made_for = written.get(ALL_MADE_FOR) is True
    settings = settings_sha256(written.get(MADE_BY))
    if generation is not None:
        generate_images(folder, mine, generation, show_progress and main, settings)
    rows = score_images(
        folder, mine, arm_names, scorers, show_progress and main, hashes, require_made_for,
        settings,
    )  # fmt: skip
    if accelerator is not None:
        from accelerate.utils import gather_object

        rows = gather_object(rows)
    if not main:
        return None
    if generation is None:
        atomic_write_json(folder / RUN_NAME, record)
    _record_hashes(folder, samples, arm_names)
    if not require_made_for:
        _record_all_made_for(folder, [r.file for r in rows])
    order = {(s.prompt_index, s.seed): i for i, s in enumerate(samples)}
    rows = sorted(rows, key=lambda r: (order[r.sample], arm_names.index(r.arm)))
    summary = summarize(rows, scorers, resamples)
    summary["diversity"] = compare_diversity(prompt_diversity(folder, rows), resamples=resamples)
    metrics = [MetricInfo(s.name, s.scale, s.higher_is_better) for s in scorers]
    write_report(folder, rows, metrics, summary, run)
    return summary


def _record_hashes(folder: Path, samples: Sequence[Sample], arms: Sequence[str]) -> None:
    """Record the SHA-256 of every scored image that has none yet (written by this run, or
    by a run from before the record)."""
    hashes = recorded_hashes(folder)
    files = [image_file(s, a) for s in samples for a in arms]
    new = {f: file_sha256(folder / f) for f in files if f not in hashes}
    if new:
        write_index(folder, samples, arms, {**hashes, **new})


def _record_all_made_for(folder: Path, files: Sequence[str]) -> None:
    """Mark the run in run.json once every image it scored records what it was made for
    (reading PNG text chunks, not pixels)."""
    for name in files:
        with Image.open(folder / name) as image:
            if MADE_FOR_KEY not in image.text:
                return
    atomic_write_json(folder / RUN_NAME, {**read_run_record(folder), ALL_MADE_FOR: True})


def _made_by(generation: Generation, samples: Sequence[Sample], run: Mapping[str, Any]) -> dict:
    """What decides the images: pipeline, call settings, arms, the caller's run description
    (NPNet source and weights digest, teacher...) and the samples, as comparable values."""
    pipe = generation.pipe
    described = {k: v for k, v in run.items() if k != "scorers"}
    return json.loads(
        json.dumps(
            {
                "pipeline": f"{type(pipe).__name__} {getattr(pipe, 'name_or_path', None)}",
                "dtype": str(getattr(pipe, "dtype", None)),
                "call": generation.call,
                "arms": sorted(generation.arms),
                "run": described,
                "samples_sha256": _samples_sha256(samples),
                "groups_sha256": _groups_sha256(samples),
            },
            default=str,
        )
    )


def _samples_sha256(samples: Sequence[Sample]) -> str:
    return _json_sha256([[s.prompt_index, s.prompt, s.seed] for s in samples])


def _groups_sha256(samples: Sequence[Sample]) -> str:
    """The samples' groups, which the report's per-group statistics are made of."""
    return _json_sha256([s.group for s in samples])


def _json_sha256(value: Any, sort_keys: bool = False) -> str:
    """SHA-256 of `value` as JSON text (the form run.json's records are compared in)."""
    return hashlib.sha256(json.dumps(value, sort_keys=sort_keys).encode()).hexdigest()


def _check_resume_folder(folder: Path, recorded: dict | None, made_by: dict) -> None:
    """Images already in `folder` are reused only with the records that check them: what
    made them (run.json) and each one's digest (index.jsonl)."""
    if recorded is None and _has_images(folder):
        raise GoldenNoiseError(
            f"{folder} holds images but no record of what made them ({RUN_NAME} "
            f"without {MADE_BY!r}); they cannot be checked against this run: evaluate "
            "into a new --out, or delete that folder to regenerate"
        )
    if recorded is not None and _has_images(folder) and not (folder / INDEX_NAME).is_file():
        raise GoldenNoiseError(
            f"{folder} holds images and {RUN_NAME} but no {INDEX_NAME}, which records each "
            "image's digest; without it an image changed since cannot be told from the run's: "
            "restore it, or evaluate into a new --out"
        )
    if recorded is None and (folder / RUN_NAME).is_file():
        raise GoldenNoiseError(
            f"{folder / RUN_NAME} has no {MADE_BY!r}, so it is not the record of an evaluate "
            "run (someone's own file, or a run from before records were kept); evaluating "
            "there would overwrite it and the files beside it. Choose a new --out, or move it"
        )
    if recorded is None:
        _refuse_files_of_another_kind(folder)
    _refuse_stale_images(folder, recorded, made_by)


def _check_rescore_folder(
    folder: Path, samples: Sequence[Sample], arms: Sequence[str], made_by: dict | None
) -> None:
    """A re-score trusts `index.jsonl` for each image's prompt and group: without the run's
    record, or with images the index does not list, lines may have been removed and their
    images would silently drop out of the statistics."""
    if made_by is not None:
        _check_index_against_record(folder, samples, arms, made_by)
    if not (folder / RUN_NAME).is_file():
        raise GoldenNoiseError(
            f"{folder} has no {RUN_NAME}, the record an evaluate run writes of what made its "
            f"images; without it an edited {INDEX_NAME} cannot be told from the run's: restore "
            "it, or evaluate again into a new --out"
        )
    listed = {image_file(sample, arm) for sample in samples for arm in arms}
    on_disk = {f"{IMAGES_DIR}/{p.name}" for p in (folder / IMAGES_DIR).glob("*.png")}
    unlisted = sorted(on_disk - listed)
    if unlisted:
        raise GoldenNoiseError(
            f"{folder / INDEX_NAME} does not list {len(unlisted)} images of the run "
            f"({first_few(unlisted)}): a line was removed or edited; restore it, or evaluate "
            "again into a new --out"
        )


def _check_index_against_record(
    folder: Path, samples: Sequence[Sample], arms: Sequence[str], made_by: Mapping[str, Any]
) -> None:
    """Re-scoring takes each image's prompt from `index.jsonl`: it must list the samples and
    arms that `run.json` records the images were made for, in the same order."""
    if made_by.get("samples_sha256") not in (None, _samples_sha256(samples)):
        raise GoldenNoiseError(
            f"{folder / INDEX_NAME} lists {len(samples)} samples that are not the ones "
            f"{folder / RUN_NAME} records its images were made for (a line was edited, moved, "
            "added or removed); restore it, or evaluate again into a new --out"
        )
    if made_by.get("groups_sha256") not in (None, _groups_sha256(samples)):
        raise GoldenNoiseError(
            f"{folder / INDEX_NAME} lists other prompt groups than {folder / RUN_NAME} records "
            "for its samples (a group was edited), so the per-group statistics would be "
            "wrong; restore it, or evaluate again into a new --out"
        )
    if made_by.get("arms") not in (None, sorted(arms)):
        raise GoldenNoiseError(
            f"{folder / INDEX_NAME} lists arms {list(arms)}; {folder / RUN_NAME} records the "
            f"images were made for {made_by['arms']}; restore it, or evaluate again into a "
            "new --out"
        )


def _copy_reused(
    folder: Path, samples: Sequence[Sample], made_by: dict, source: Path, arms: dict[str, str]
) -> None:
    """Copy `source`'s images of `arms` (theirs -> ours) that this folder lacks, when the
    same pipeline, dtype and call made them for these samples; else copy nothing."""
    theirs = read_run_record(source).get(MADE_BY)
    if theirs is None or any(theirs.get(k) != made_by[k] for k in ("pipeline", "dtype", "call")):
        return
    known = {(s.prompt_index, s.prompt, s.seed) for s in read_index(source)[0]}
    settings = settings_sha256(made_by)
    (folder / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
    for sample in samples:
        if (sample.prompt_index, sample.prompt, sample.seed) not in known:
            continue
        for old, new in arms.items():
            src, dst = source / image_file(sample, old), folder / image_file(sample, new)
            if src.is_file() and not dst.is_file():
                _copy_image(src, dst, sample, old, new, settings)


def _copy_image(
    src: Path, dst: Path, sample: Sample, old: str, new: str, settings: str | None
) -> None:
    """Copy a reused image with the records of what it was made for under our arm name and
    our settings' digest (the source's record showed the same pipeline, dtype and call),
    also when an older evaluate wrote none; an image recorded as another sample's keeps that
    record, so it stays detectable."""
    with Image.open(src) as image:
        text = dict(image.text)
        if text.get(MADE_FOR_KEY, made_for(sample, old)) == made_for(sample, old):
            text[MADE_FOR_KEY] = made_for(sample, new)
        text |= {MADE_WITH_KEY: settings} if settings else {}
        atomic_write_png(dst, image, text=text)


# How the caller named its prompts and seeds (a file, a toy split, "0-3"): the samples'
# digest already compares what they are, so the same prompts named another way resume (their
# groups, which a file does not give, only sort the report's statistics).
_NAMES_OF_SAMPLES = ("prompts", "seeds")


def _compared(made_by: Mapping[str, Any]) -> dict:
    """`made_by` without what names the samples rather than decides the images."""
    run = {k: v for k, v in made_by.get("run", {}).items() if k not in _NAMES_OF_SAMPLES}
    return {**{k: v for k, v in made_by.items() if k != "groups_sha256"}, "run": run}


def _refuse_stale_images(folder: Path, recorded: dict | None, now: dict) -> None:
    """Existing images are reused only if the same settings made them: else a second run
    with another NPNet, steps or prompts would report the old images as its own."""
    if recorded is None:
        return
    recorded, now = _compared(recorded), _compared(now)
    if recorded == now:
        return
    changed = [
        {"samples_sha256": "prompts or seeds"}.get(k, k)
        + (f": {recorded.get(k)!r} -> {now[k]!r}" if k == "dtype" else "")
        for k in ("pipeline", "dtype", "arms", "samples_sha256")
        if recorded.get(k) != now[k]
    ]
    for section in ("call", "run"):
        old, new = recorded.get(section, {}), now[section]
        changed += [
            f"{k}: {old.get(k)!r} -> {new.get(k)!r}"
            for k in sorted(set(old) | set(new))
            if old.get(k) != new.get(k)
        ]
    raise GoldenNoiseError(  # the run description repeats call settings: each named once
        f"{folder} holds images made with other settings "
        f"({', '.join(dict.fromkeys(changed))}); evaluate into a new --out, or delete that "
        "folder to regenerate"
    )


def _my_share(
    samples: list[Sample], accelerator: Accelerator | None, batch_size: int
) -> list[Sample]:
    """This process's samples, whole generation batches each, so every image comes from the
    same batch (hence the same floats) whatever the number of processes."""
    if accelerator is None or accelerator.num_processes == 1:
        return samples
    batches = [samples[i : i + batch_size] for i in range(0, len(samples), batch_size)]
    with accelerator.split_between_processes(batches) as share:
        return [sample for batch in share for sample in batch]
