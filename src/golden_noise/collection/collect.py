"""Stage I driver: prompts x seeds -> scored (x_T, x_T') pairs in one Noise Prompt Dataset.

Rows are keyed by (prompt_index, seed) and the plan is a pure function of the prompts and the
seed settings, so any process can work out what is left: a restart (after a kill -9 at any
moment) does exactly the missing rows, and N accelerate processes split the missing rows
by position (row i goes to rank i mod N) into the same directory, with no offsets and no merge.
Every row is stored with both scores, kept or not, so the margin filter can be redone later.
A prompt whose rows are on disk but whose cached text embedding is not (its shard deleted)
is encoded again on resume: the embedding depends only on the prompt and the pipeline.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from rich.progress import BarColumn, TextColumn, TimeElapsedColumn

from golden_noise.adapters import adapter_for
from golden_noise.adapters.loading import local_pipeline_record
from golden_noise.collection.plan import MAX_ROWS, Key, SeedPlan
from golden_noise.core.errors import GoldenNoiseError
from golden_noise.core.progress import make_progress
from golden_noise.core.seeds import seeded_generator
from golden_noise.core.validate import MAX_BATCH, integer, number, pipeline_call
from golden_noise.dataset import DatasetManifest, DatasetWriter, PromptRecord, RowTable
from golden_noise.dataset.integrity import verify_rows
from golden_noise.dataset.manifest import FINISHED_PROMPTS, MANIFEST_NAME
from golden_noise.dataset.shards import EMBEDDINGS_DIR, PROMPT_INDEX, ROWS_DIR, SEED, list_shards
from golden_noise.scorers.base import Scorer
from golden_noise.teachers import (
    CollectionSampler,
    RedenoiseTeacher,
    Rows,
    SamplerSettings,
    Teacher,
)
from golden_noise.teachers.redenoise_step import own_timestep_spacing

if TYPE_CHECKING:
    from accelerate import Accelerator


@dataclass
class CollectSummary:
    """What a run did (this process and the whole dataset)."""

    rows_planned: int
    rows_in_dataset: int
    rows_written_here: int
    kept_in_dataset: int
    seconds: float
    model_calls_per_row: int
    out: Path

    @property
    def pairs_per_second(self) -> float:
        return self.rows_written_here / self.seconds if self.seconds > 0 else 0.0

    @property
    def kept_ratio(self) -> float:
        return self.kept_in_dataset / self.rows_in_dataset if self.rows_in_dataset else 0.0


def _batches(keys: Sequence[Key], size: int) -> Iterator[list[Key]]:
    for start in range(0, len(keys), size):
        yield list(keys[start : start + size])


def _check_prompts(adapter: Any, scorer: Scorer, teacher: Teacher, prompts: Sequence[str]) -> None:
    """Before the first write: a prompt refused mid-run would leave a dataset (prompts.jsonl,
    manifest, embeddings) that the corrected command could no longer resume."""
    if not prompts:
        raise GoldenNoiseError("no prompts to collect: expected at least one")
    overlong = adapter.overlong_prompts(list(prompts))
    if overlong:
        limit = adapter.prompt_token_limit
        examples = "; ".join(f"#{i}: {prompts[i][:60]!r}" for i in overlong[:3])
        raise GoldenNoiseError(
            f"{len(overlong)} prompts are longer than the text encoder takes ({limit} tokens) "
            f"and would be silently truncated, e.g. {examples}; shorten or drop them"
        )
    scorer.check_prompts(prompts)
    teacher.check_prompts(prompts)


def _progress(enabled: bool) -> Any:
    """A bar on a terminal; a line every 30 s in a log (`golden_noise.core.progress`)."""
    return make_progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} pairs"),
        TextColumn("{task.fields[rate]:.2f} pairs/s"),
        TextColumn("kept {task.fields[kept]:.0%}"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[stage]}"),
        disable=not enabled,
        extra=lambda fields: ", ".join(
            part for part in (f"kept {fields['kept']:.0%}", fields["stage"]) if part
        ),
    )


def build_manifest(
    adapter: Any,
    teacher: Teacher,
    scorer: Scorer,
    sampler: SamplerSettings,
    *,
    model: str | None,
    margin: float,
    height: int | None,
    width: int | None,
    seeds: SeedPlan,
    notes: dict[str, Any] | None = None,
    pipeline_record: dict[str, str] | None = None,
) -> DatasetManifest:
    """The manifest this collection writes (and checks an existing dataset against);
    `pipeline_record` (a local folder's digest) goes with the sampler, so a resume on other
    weights under the same path is refused."""
    height, width = adapter.resolve_size(height, width)
    redenoise = teacher.settings if isinstance(teacher, RedenoiseTeacher) else None
    return DatasetManifest(
        family=adapter.family,
        model=model,
        latent_shape=adapter.latent_shape(1, height, width)[1:],
        text_shape=adapter.text_shape(),
        sampler={
            **sampler.to_dict(),
            "height": height,
            "width": width,
            "dtype": str(adapter.denoiser.dtype).removeprefix("torch."),
            **(pipeline_record or {}),
        },
        teacher=teacher.name,
        teacher_options=teacher.options(),
        w_l=redenoise.w_l if redenoise else None,
        w_w=redenoise.w_w if redenoise else None,
        scorer=scorer.name,
        margin=margin,
        notes={"seeds": seeds.to_dict(), **(notes or {})},
    )


def _check_same_seed_plan(out: Path, seeds: SeedPlan, manifest: DatasetManifest) -> None:
    """Refuse to add another seed plan's rows to a dataset: the seed of row j of prompt i
    depends on the plan, so two plans mix (11 rows of 8 planned, from per_prompt 1 then 2).
    A merged dataset follows no plan (it reported 16 of 8 planned rows done): refused too.

    The pipeline dtype changes every number (bf16 targets differ from fp32 ones by up to
    0.15), so a dataset that does not record it cannot be resumed: nothing could tell its
    rows from this run's."""
    if not (out / MANIFEST_NAME).is_file():
        return
    existing = DatasetManifest.load(out)
    if "merged_from" in existing.notes:  # its prompt indices and seeds are no collect's plan
        raise GoldenNoiseError(
            f"{out} was made by merge; collect into a new directory, then merge again"
        )
    if "dtype" not in existing.sampler:
        raise GoldenNoiseError(
            f"{out / MANIFEST_NAME} does not record the pipeline dtype its rows were made with, "
            f"so they cannot be checked against this run's {manifest.sampler['dtype']}; collect "
            f'into a new folder, or, if you know it, add "dtype": '
            f'"{manifest.sampler["dtype"]}" to its "sampler" entry'
        )
    recorded = existing.notes.get("seeds")
    if recorded is not None and recorded != seeds.to_dict():
        raise GoldenNoiseError(
            f"{out} was collected with seeds {recorded}; this run asks for {seeds.to_dict()}. "
            "Pass the same --seeds-per-prompt/--seed-offset to continue it, or collect into a "
            "new folder"
        )


def _spacing_as_recorded(out: Path, manifest: DatasetManifest, adapter: Any) -> DatasetManifest:
    """`manifest` with the re-denoise timestep spacing spelled as `out` records it when both
    make the same DDIM step: an omitted --timestep-spacing is recorded as None, "the
    pipeline's own", so naming that spacing on resume (or omitting it after naming it)
    changes no target, as the sampler's omitted settings are compared by their values.
    Manifests keep what was given, so older ones read as before."""
    if (
        manifest.teacher != "redenoise"
        or adapter.flow_matching  # no spacing applies; a named one is refused
        or not (out / MANIFEST_NAME).is_file()
    ):
        return manifest
    existing = DatasetManifest.load(out)
    if existing.teacher != "redenoise" or "timestep_spacing" not in existing.teacher_options:
        return manifest
    recorded = existing.teacher_options["timestep_spacing"]
    given = manifest.teacher_options["timestep_spacing"]
    if recorded == given or None not in (recorded, given):
        return manifest  # the same spelling, or two named spacings the writer compares
    own = own_timestep_spacing(adapter.pipe.scheduler.config)
    if (recorded or own) == (given or own):
        options = {**manifest.teacher_options, "timestep_spacing": recorded}
        return dataclasses.replace(manifest, teacher_options=options)
    if recorded is None:
        raise GoldenNoiseError(
            f"{out} was collected without --timestep-spacing (recorded: None, the pipeline's "
            f"default, {own}); this run asks for {given!r}, which moves the re-denoise step. "
            "Re-run without --timestep-spacing to resume it, or collect into a new folder"
        )
    raise GoldenNoiseError(
        f"{out} was collected with --timestep-spacing {recorded}; this run leaves it to the "
        f"pipeline's default ({own}), which moves the re-denoise step. Re-run with "
        f"--timestep-spacing {recorded} to resume it, or collect into a new folder"
    )


def _record_finished(
    out: Path, manifest: DatasetManifest, plan: Sequence[Key], table: RowTable, n_prompts: int
) -> None:
    """Once every planned row is on disk, record it in the manifest (`finished_prompts`):
    from then on a row lost with its shard's ledger entry is named by every reader."""
    if manifest.notes.get(FINISHED_PROMPTS, 0) >= n_prompts or not len(table):
        return
    present = set(
        zip(table.columns[PROMPT_INDEX].tolist(), table.columns[SEED].tolist(), strict=True)
    )
    if all(key in present for key in plan):
        notes = {**manifest.notes, FINISHED_PROMPTS: n_prompts}
        dataclasses.replace(manifest, notes=notes).save(out)


@torch.no_grad()
def collect(
    pipe: Any,
    prompts: Sequence[str],
    out: Path | str,
    scorer: Scorer,
    *,
    teacher: Teacher | None = None,
    sampler: SamplerSettings | None = None,
    seeds: SeedPlan | None = None,
    margin: float = 0.0,
    batch_size: int = 32,
    generation_batch_size: int = 64,
    rows_per_shard: int = 256,
    height: int | None = None,
    width: int | None = None,
    model: str | None = None,
    notes: dict[str, Any] | None = None,
    accelerator: Accelerator | None = None,
    progress: bool = True,
    max_rows: int | None = None,
) -> CollectSummary:
    """Collect every missing (prompt, seed) row of the plan into the dataset at `out`.

    `accelerator`: pass one (from `golden_noise.core.distributed.make_accelerator`) to split the
    rows between its processes; `notes` go into the manifest (e.g. the recipe); `max_rows`
    stops this process after that many rows (a budgeted run; re-running continues).
    """
    out = Path(out)
    teacher = teacher or RedenoiseTeacher()
    sampler_settings = sampler or SamplerSettings()
    seeds = seeds or SeedPlan()
    if isinstance(batch_size, int) and batch_size < 1:
        raise GoldenNoiseError(f"batch_size must be >= 1; got {batch_size}")
    integer("batch_size", batch_size, 1, MAX_BATCH)
    integer("generation_batch_size", generation_batch_size, 1, MAX_BATCH)
    integer("rows_per_shard", rows_per_shard, 1, MAX_ROWS)
    if max_rows is not None:
        integer("max_rows", max_rows, 1, MAX_ROWS)
    number("margin", margin)
    pipeline_call(None, None, height, width)  # 0 is no size: not "the default size"
    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator else (0, 1)
    is_main = rank == 0
    if accelerator is not None:
        pipe.to(accelerator.device)
    adapter = adapter_for(pipe)
    collection = CollectionSampler(  # refuses a sampler the pipeline cannot take: before writing
        pipe, scorer, sampler_settings, generation_batch_size, adapter=adapter
    )
    _check_prompts(adapter, scorer, teacher, prompts)
    height, width = adapter.resolve_size(height, width)
    manifest = build_manifest(
        adapter,
        teacher,
        scorer,
        sampler_settings,
        model=model,
        margin=margin,
        height=height,
        width=width,
        seeds=seeds,
        notes=notes,
        pipeline_record=local_pipeline_record(model, pipe),
    )
    records = [PromptRecord(index=i, text=t) for i, t in enumerate(prompts)]
    plan = seeds.keys(len(prompts))  # a plan past int64's seeds is refused before writing
    _check_same_seed_plan(out, seeds, manifest)
    manifest = _spacing_as_recorded(Path(out), manifest, adapter)

    def barrier() -> None:
        if accelerator is not None:
            accelerator.wait_for_everyone()

    # A resume counts the rows on disk as done: a shard changed after it was written (every
    # tensor against its digest, the check train makes) is refused, not taken as done.
    verify_rows(
        [*list_shards(Path(out) / ROWS_DIR), *list_shards(Path(out) / EMBEDDINGS_DIR)], {}, ()
    )
    # Every rank opens its writer (each checks the directory's manifest, so a foreign dataset
    # fails on all ranks at once; only the main rank writes the prompt file) and reads the
    # rows already present *before anyone writes*, so all agree on what is left.
    writer = DatasetWriter(
        out,
        manifest,
        rank=rank,
        rows_per_shard=rows_per_shard,
        prompts=records if is_main else None,
    )
    todo = [key for key in plan if not writer.has(*key)][rank::world]
    if max_rows is not None:
        todo = todo[:max_rows]
    barrier()

    dtype = adapter.denoiser.dtype
    written = kept = 0
    start = time.perf_counter()
    label = f"collecting ({teacher.name})" + (f" rank {rank}/{world}" if world > 1 else "")
    with writer, _progress(progress and is_main) as bar:
        if is_main:  # rows whose prompt's embedding shard is gone: encoded again
            writer.embed_missing(lambda t: adapter.encode_prompt(t).tokens.float(), batch_size)
        task = bar.add_task(label, total=len(todo), rate=0.0, kept=0.0, stage="")
        for batch in _batches(todo, batch_size):
            index = [p for p, _ in batch]
            seed_list = [s for _, s in batch]
            texts = [prompts[p] for p in index]
            new = sorted({p for p in index if not writer.has_embedding(p)})
            if new:
                tokens = adapter.encode_prompt([prompts[p] for p in new]).tokens
                writer.add_embeddings(new, tokens.float())
            source = adapter.initial_noise(
                len(batch),
                height,
                width,
                [seeded_generator(s) for s in seed_list],
                dtype,
            ).float()
            rows = Rows(
                texts, index, seed_list, source, adapter.call_kwargs(texts, height, width),
                status=lambda text: bar.update(task, stage=text),
            )  # fmt: skip
            taught = teacher.teach(rows, collection)
            writer.add(
                source=source,
                target=taught.target,
                prompt_index=index,
                seed=seed_list,
                score_source=taught.score_source,
                score_target=taught.score_target,
            )
            written += len(batch)
            kept += int((taught.score_source + margin < taught.score_target).sum())
            elapsed = time.perf_counter() - start
            rate, share = written / elapsed, kept / written
            bar.update(task, advance=len(batch), rate=rate, kept=share, stage="")
    seconds = time.perf_counter() - start
    barrier()
    table = RowTable.load(out, writer.manifest)
    if is_main:
        _record_finished(out, writer.manifest, plan, table, len(prompts))
    in_dataset = len(table)
    kept_total = int(table.keep_mask(margin, None).sum()) if in_dataset else 0
    return CollectSummary(
        rows_planned=len(plan),
        rows_in_dataset=in_dataset,
        rows_written_here=written,
        kept_in_dataset=kept_total,
        seconds=seconds,
        model_calls_per_row=teacher.model_calls_per_row(collection),
        out=out,
    )
