"""Mutation check: does the test suite catch these single-line bugs?

Each mutant replaces one code snippet (matched as text, not by line number, so it survives
edits elsewhere in the file) in a temporary copy of the repository, runs only the test files
that cover that code (`pytest -x`, one torch thread, niced), and counts the mutant as caught
when they fail. A snippet that is not found exactly once aborts the run: the list must be
updated, never silently skipped. The unmutated copy is run first on every test set, so a
failure is the mutant's and not the suite's.

    .venv/bin/python benchmarks/mutants.py              # every mutant, table at the end
    .venv/bin/python benchmarks/mutants.py --only stats_wilcoxon_zsplit collect_resume_seed
    .venv/bin/python benchmarks/mutants.py --list

Exit status 0 only when every mutant is caught. On demand, not in CI (~15-25 min on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
PKG = "src/golden_noise"


@dataclass(frozen=True)
class Mutant:
    """One single-line bug: `old` (exactly once in `file`) becomes `new`."""

    name: str
    file: str
    old: str
    new: str
    breaks: str
    tests: tuple[str, ...]


NPNET = ("tests/test_npnet_branches.py",)
ADAPTERS = ("tests/test_adapters.py",)
REDENOISE = ("tests/test_redenoise.py",)
DATASET = ("tests/test_dataset.py",)
COLLECT = ("tests/test_collect.py",)
TRAIN = ("tests/test_train.py",)
STATS = ("tests/test_stats.py",)
TOY = ("tests/test_toy_world.py", "tests/test_scorers.py")
TEACHERS = ("tests/test_teachers_learnable.py",)

MUTANTS = [
    # The two bugs an audit planted that the suite missed.
    Mutant(
        "collect_resume_seed",
        f"{PKG}/collection/collect.py",
        "[seeded_generator(s) for s in seed_list]",
        "[seeded_generator(s + (len(todo) < len(plan[rank::world]))) for s in seed_list]",
        "rows written after a resume draw their source noise from seed + 1",
        COLLECT,
    ),
    Mutant(
        "stats_wilcoxon_zsplit",
        f"{PKG}/evaluation/stats.py",
        "scipy_stats.wilcoxon(differences).pvalue",
        'scipy_stats.wilcoxon(differences, zero_method="zsplit").pvalue',
        "Wilcoxon counts tied pairs (zsplit) instead of dropping them",
        STATS,
    ),
    # the prompt-offset teacher
    Mutant(
        "offset_fit_noise_by_position",
        f"{PKG}/teachers/prompt_offset.py",
        "candidate_noise(rows.source[0], step, text_key(prompts[i * k]), k, *seed_key)",
        "candidate_noise(rows.source[0], step, i, k, *seed_key)",
        "a prompt's fit noise depends on its place in the batch, so its offset does too",
        TEACHERS,
    ),
    Mutant(
        "offset_init_ignored",
        f"{PKG}/teachers/prompt_offset.py",
        "        if self._init_net is None and self.modes == 1:\n            return torch.zeros",
        "        if self.modes == 1:\n            return torch.zeros",
        "--offset-init is recorded but every fit starts from zero again",
        TEACHERS,
    ),
    Mutant(
        "offset_init_digest_of_path",
        f"{PKG}/teachers/prompt_offset.py",
        '"init_sha256": weights_digest(self._init_net)}',
        '"init_sha256": self.init}',
        "a net retrained in place under the same path resumes a dataset from other offsets",
        TEACHERS,
    ),
    Mutant(
        "diversity_pools_prompts",
        f"{PKG}/evaluation/diversity.py",
        "rows[prompt].append(index)",
        'rows[""].append(index)',
        "diversity compares images of different prompts, so any prompt mix looks diverse",
        ("tests/test_diversity.py",),
    ),
    Mutant(
        "offset_route_least_aligned",
        f"{PKG}/npnet/offset_branch.py",
        "x.flatten(1).to(unit.dtype)).argmax(dim=1)",
        "x.flatten(1).to(unit.dtype)).argmin(dim=1)",
        "each noise is shifted by the offset mode it leans away from",
        ("tests/test_npnet_offset_branch.py", *TEACHERS),
    ),
    Mutant(
        "offset_tokens_mean",
        f"{PKG}/npnet/offset_branch.py",
        "summed = self.head(self.encoder(tokens)).sum(dim=1)",
        "summed = self.head(self.encoder(tokens)).mean(dim=1)",
        "the tokens reading averages its tokens' offsets instead of summing them",
        ("tests/test_npnet_offset_branch.py",),
    ),
    Mutant(
        "offset_branch_named_bare",
        f"{PKG}/npnet/config.py",
        'if overrides.get("residual_kind") == "prompt-offset":',
        'if overrides.get("residual_kind") == "prompt-offset-named":',
        "naming the prompt-offset branch no longer brings keep_norm, no SVD and no text",
        ("tests/test_npnet_unet_branch.py",),
    ),
    Mutant(
        "offset_teacher_first_mode",
        f"{PKG}/teachers/prompt_offset.py",
        "source + route(source, self.offsets(rows, sampler).to(source.device))",
        "source + self.offsets(rows, sampler).to(source.device)[:, 0]",
        "the teacher fits several modes but shifts every row by the first",
        TEACHERS,
    ),
    Mutant(
        "train_ignores_teacher_modes",
        f"{PKG}/train/model.py",
        'modes = (teacher_options or {}).get("modes", 1)',
        "modes = 1",
        "train builds a one-mode net for a dataset whose teacher fitted several",
        ("tests/test_npnet_unet_branch.py", "tests/test_prompt_offset_recipe.py"),
    ),
    Mutant(
        "svd_heads_without_svd",
        f"{PKG}/npnet/config.py",
        "if self.use_svd and self.svd_rank % self.svd_heads:",
        "if self.svd_rank % self.svd_heads:",
        "an offset or UNet net for a 6x6 latent is refused over an SVD branch it does not have",
        ("tests/test_npnet_io.py",),
    ),
    Mutant(
        "offset_target_norm",
        f"{PKG}/teachers/prompt_offset.py",
        "score_source_and_target(rows, with_norms(shifted, latent_norms(source)), sampler)",
        "score_source_and_target(rows, shifted, sampler)",
        "targets keep the offset's extra norm: part of the gain becomes a temperature change",
        TEACHERS,
    ),
    # npnet
    Mutant(
        "npnet_gate",
        f"{PKG}/npnet/model.py",
        "golden = golden + (2 * torch.sigmoid(self.alpha) - 1) * t",
        "golden = golden + torch.sigmoid(self.alpha) * t",
        "text gate sigmoid(alpha) instead of 2 sigmoid(alpha) - 1",
        NPNET,
    ),
    Mutant(
        "npnet_residual_input",
        f"{PKG}/npnet/model.py",
        "residual_input = x + t",
        "residual_input = x",
        "residual branch reads x instead of x + t",
        NPNET,
    ),
    Mutant(
        "npnet_svd_drops_s",
        f"{PKG}/npnet/svd_branch.py",
        "new_s = self.mlp4(self.attention(tokens).mean(1)) + s",
        "new_s = self.mlp4(self.attention(tokens).mean(1))",
        "SVD branch predicts singular values from scratch (no + s)",
        NPNET,
    ),
    Mutant(
        "npnet_svd_fold",
        f"{PKG}/npnet/svd_branch.py",
        'matrix = einops.rearrange(x, "b (a c) h w -> b (a h) (c w)"',
        'matrix = einops.rearrange(x, "b (c a) h w -> b (a h) (c w)"',
        "channels folded into the SVD matrix in the wrong order",
        NPNET,
    ),
    Mutant(
        "npnet_text_shift_scale",
        f"{PKG}/npnet/text_injection.py",
        "self.norm = AdaGroupNorm(width, config.channels, 1, eps=1e-6)",
        "self.norm = AdaGroupNorm(width, config.channels, config.channels, eps=1e-6)",
        "text injection normalises per channel (C groups) instead of one group",
        NPNET,
    ),
    Mutant(
        "npnet_residual_upconv",
        f"{PKG}/npnet/residual_branch.py",
        "return self.upconv(F.interpolate(_as_feature_map(features), self.output_size))",
        'return self.upconv(F.interpolate(_as_feature_map(features), self.output_size, mode="bilinear"))',  # noqa: E501
        "features resized bilinearly instead of nearest (not what the weights were trained on)",
        NPNET,
    ),
    # adapters
    Mutant(
        "adapter_noise_scaled",
        f"{PKG}/adapters/base.py",
        "return randn_tensor(shape, generator=generator, device=self.device, dtype=dtype)",
        "return randn_tensor(shape, generator=generator, device=self.device, dtype=dtype) * self.pipe.scheduler.init_noise_sigma",  # noqa: E501
        "initial noise pre-scaled by init_noise_sigma (the pipeline scales it again)",
        ADAPTERS,
    ),
    Mutant(
        "adapter_latent_hw",
        f"{PKG}/adapters/base.py",
        "return (batch_size, self.latent_channels, height // step, width // step)",
        "return (batch_size, self.latent_channels, width // step, height // step)",
        "latent height and width swapped",
        ADAPTERS,
    ),
    Mutant(
        "adapter_sdxl_penultimate",
        f"{PKG}/adapters/sdxl.py",
        "tokens, *_ = self.pipe.encode_prompt(",
        "tokens, *_ = self.pipe.encode_prompt(clip_skip=1,",
        "SDXL prompt embedding from a skipped CLIP layer (not the pipeline's own)",
        ADAPTERS,
    ),
    # redenoise
    Mutant(
        "redenoise_inversion_target",
        f"{PKG}/teachers/redenoise_step.py",
        'target = self.first_timestep if mode == "exact" else self.second_timestep',
        'target = self.second_timestep if mode == "exact" else self.first_timestep',
        "exact inversion told the wrong timestep",
        REDENOISE,
    ),
    Mutant(
        "redenoise_clip_sample",
        f"{PKG}/teachers/redenoise_step.py",
        'overrides: dict[str, Any] = {"clip_sample": False, "thresholding": False}',
        'overrides: dict[str, Any] = {"thresholding": False}',
        "x0 clipping left on (the step is no longer invertible)",
        REDENOISE,
    ),
    Mutant(
        "redenoise_back_guidance",
        f"{PKG}/teachers/redenoise_step.py",
        "back = guided_prediction(pipe, denoised, t, settings.w_w, call_kwargs, adapter=adapter)",
        "back = guided_prediction(pipe, denoised, t, settings.w_l, call_kwargs, adapter=adapter)",
        "inversion uses guidance w_l instead of w_w",
        REDENOISE,
    ),
    Mutant(
        "redenoise_back_timestep",
        f"{PKG}/teachers/redenoise_step.py",
        "back = guided_prediction(pipe, denoised, t, settings.w_w, call_kwargs, adapter=adapter)",
        "back = guided_prediction(pipe, denoised, pair.second_timestep, settings.w_w, call_kwargs, adapter=adapter)",  # noqa: E501
        "inversion's prediction evaluated at the second timestep",
        REDENOISE,
    ),
    # dataset
    Mutant(
        "dataset_forgets_keys",
        f"{PKG}/dataset/writer.py",
        "self._keys = present_keys(self.root)",
        "self._keys = set()",
        "a reopened writer forgets the rows on disk (resume writes them again)",
        DATASET,
    ),
    Mutant(
        "dataset_pending_shard_missing",
        f"{PKG}/dataset/integrity.py",
        "if not entry.get(PENDING) and not (root / name).is_file()",
        "if not (root / name).is_file()",
        "a shard a kill left listed but never published is taken for a deleted one",
        DATASET,
    ),
    Mutant(
        "dataset_target_column",
        f"{PKG}/dataset/reader.py",
        "target = handle.get_slice(TARGET)[offset].float()",
        "target = handle.get_slice(SOURCE)[offset].float()",
        "reader returns the source as the target",
        DATASET,
    ),
    Mutant(
        "dataset_margin_sign",
        f"{PKG}/dataset/reader.py",
        "self.columns[col_src] + margin < self.columns[col_tgt]",
        "self.columns[col_src] - margin < self.columns[col_tgt]",
        "margin filter subtracts the margin",
        DATASET,
    ),
    Mutant(
        "dataset_embedding_shard",
        f"{PKG}/dataset/reader.py",
        "where.setdefault(prompt, (number, offset))",
        "where.setdefault(prompt, (0, offset))",
        "embedding looked up in the first embedding shard only",
        DATASET,
    ),
    # collect
    Mutant(
        "collect_scores_swapped",
        f"{PKG}/collection/collect.py",
        "score_source=taught.score_source,",
        "score_source=taught.score_target,",
        "the target's score stored as the source's",
        COLLECT,
    ),
    Mutant(
        "collect_seeds_not_distinct",
        f"{PKG}/collection/plan.py",
        "step = self.per_prompt if self.distinct else 0",
        "step = 0 if self.distinct else self.per_prompt",
        "every prompt gets the same seeds (distinct plan ignored)",
        COLLECT,
    ),
    # train
    Mutant(
        "train_loss_target",
        f"{PKG}/train/objectives.py",
        "return F.mse_loss(net(batch.source, batch.embeds).float(), batch.target)",
        "return F.mse_loss(net(batch.source, batch.embeds).float(), batch.source)",
        "NPNet trained towards the source instead of the target",
        TRAIN,
    ),
    Mutant(
        "train_mean_residual_sign",
        f"{PKG}/train/objectives.py",
        "((source + self.mean_residual - target) ** 2).mean((1, 2, 3))",
        "((source - self.mean_residual - target) ** 2).mean((1, 2, 3))",
        "mean-residual baseline adds the residual with the wrong sign",
        TRAIN,
    ),
    Mutant(
        "train_best_tracking",
        f"{PKG}/train/loop.py",
        'metrics["val_loss"] < progress.best_val_loss',
        'metrics["val_loss"] > progress.best_val_loss',
        "best checkpoint never tracks the lowest validation loss",
        TRAIN,
    ),
    # stats
    Mutant(
        "stats_one_sided",
        f"{PKG}/evaluation/stats.py",
        "scipy_stats.wilcoxon(differences).pvalue",
        'scipy_stats.wilcoxon(differences, alternative="greater").pvalue',
        "one-sided Wilcoxon",
        STATS,
    ),
    Mutant(
        "stats_ci_level",
        f"{PKG}/evaluation/stats.py",
        "confidence_level=confidence,",
        "confidence_level=confidence - 0.05,",
        "bootstrap interval is a 90% one, labelled 95%",
        STATS,
    ),
    Mutant(
        "stats_ci_unpaired",
        f"{PKG}/evaluation/stats.py",
        "paired=True,",
        "paired=False,",
        "bootstrap resamples the two arms separately (pairs broken)",
        STATS,
    ),
    Mutant(
        "stats_ci_of_arm",
        f"{PKG}/evaluation/stats.py",
        "low, high = paired_bootstrap_ci(baseline, arm, resamples=resamples, seed=seed)",
        "low, high = paired_bootstrap_ci(arm, baseline, resamples=resamples, seed=seed)",
        "paired_stats reports the interval of baseline - arm",
        STATS,
    ),
    Mutant(
        "stats_ties_win",
        f"{PKG}/evaluation/stats.py",
        "better = difference > 0 if higher_is_better else difference < 0",
        "better = difference >= 0 if higher_is_better else difference < 0",
        "ties counted as wins",
        STATS,
    ),
    Mutant(
        "stats_compare_direction",
        f"{PKG}/evaluation/stats.py",
        "arm: paired_stats(values[baseline], values[arm], higher, resamples, seed)",
        "arm: paired_stats(values[arm], values[baseline], higher, resamples, seed)",
        "compare_arms reports baseline - arm",
        STATS,
    ),
    Mutant(
        "stats_compare_direction_flag",
        f"{PKG}/evaluation/stats.py",
        "arm: paired_stats(values[baseline], values[arm], higher, resamples, seed)",
        "arm: paired_stats(values[baseline], values[arm], True, resamples, seed)",
        "compare_arms ignores lower-is-better metrics",
        STATS,
    ),
    # toy scorer
    Mutant(
        "toy_relation_sign",
        f"{PKG}/toy/scorer.py",
        "relation = float(np.clip(0.5 + margin / 8, 0, 1))",
        "relation = float(np.clip(0.5 - margin / 8, 0, 1))",
        "soft rewards the wrong side for position prompts",
        TOY,
    ),
    Mutant(
        "toy_extras_free",
        f"{PKG}/toy/scorer.py",
        "obj_term /= max(len(wanted), len(objects))",
        "obj_term /= len(wanted)",
        "extra objects cost nothing in soft",
        TOY,
    ),
    Mutant(
        "toy_counts_ignored",
        f"{PKG}/toy/scorer.py",
        "correct = Counter((f.colour, f.shape) for f in objects) == Counter(wanted)",
        "correct = {(f.colour, f.shape) for f in objects} == set(wanted)",
        "correct ignores object counts",
        TOY,
    ),
    Mutant(
        "toy_fg_threshold",
        f"{PKG}/toy/scorer.py",
        "FG_THRESHOLD = 0.3",
        "FG_THRESHOLD = 0.05",
        "background noise counted as foreground",
        TOY,
    ),
]

_IGNORE = shutil.ignore_patterns(
    ".venv", ".git", "__pycache__", ".pytest_cache", ".ruff_cache", "*.egg-info", "golden-noise-*"
)


def copy_repo(dest: Path) -> None:
    """src/, tests/ and the pytest config: all a test run reads."""
    for name in ("src", "tests"):
        shutil.copytree(ROOT / name, dest / name, ignore=_IGNORE)
    shutil.copy2(ROOT / "pyproject.toml", dest / "pyproject.toml")


def apply(mutant: Mutant, copy: Path) -> str:
    """Write the mutant into the copy; return the original text to restore."""
    path = copy / mutant.file
    text = path.read_text()
    count = text.count(mutant.old)
    if count != 1:
        raise SystemExit(
            f"mutant {mutant.name}: expected the snippet exactly once in {mutant.file}, "
            f"found it {count} times; update benchmarks/mutants.py\n  snippet: {mutant.old!r}"
        )
    path.write_text(text.replace(mutant.old, mutant.new))
    return text


def run_tests(copy: Path, tests: tuple[str, ...], timeout: int) -> tuple[bool, str, float]:
    """(passed, first failing test or error line, seconds) for `tests` in the copy."""
    env = {
        **os.environ,
        "PYTHONPATH": str(copy / "src"),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    command = ["nice", "-n", "10", sys.executable, "-m", "pytest", "-x", "-q", "-rfE"]
    command += ["-p", "no:cacheprovider", *tests]
    start = time.perf_counter()
    try:
        done = subprocess.run(
            command, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return False, f"timeout after {timeout} s", time.perf_counter() - start
    seconds = time.perf_counter() - start
    if done.returncode == 0:
        return True, "", seconds
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", done.stdout, flags=re.MULTILINE)
    detail = failed[0] if failed else (done.stdout + done.stderr).strip().splitlines()[-1]
    return False, detail, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", help="run these mutants by name")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per test run")
    args = parser.parse_args()
    mutants = [m for m in MUTANTS if not args.only or m.name in args.only]
    unknown = set(args.only or ()) - {m.name for m in MUTANTS}
    if unknown:
        raise SystemExit(f"no mutants named {sorted(unknown)}")
    console = Console(width=200)
    if args.list:
        for m in mutants:
            console.print(f"{m.name:30} {m.file:40} {m.breaks}")
        return 0
    rows = []
    with tempfile.TemporaryDirectory(prefix="golden-noise-mutants-") as tmp:
        copy = Path(tmp)
        copy_repo(copy)
        for m in mutants:  # every snippet must exist before anything runs
            (copy / m.file).write_text(apply(m, copy))
        for tests in dict.fromkeys(m.tests for m in mutants):
            passed, detail, seconds = run_tests(copy, tests, args.timeout)
            console.print(
                f"baseline {' '.join(tests)}: {'pass' if passed else 'FAIL'} "
                f"({seconds:.0f} s) {detail}"
            )
            if not passed:
                raise SystemExit("the unmutated suite fails: fix it before judging mutants")
        for m in mutants:
            original = apply(m, copy)
            try:
                passed, detail, seconds = run_tests(copy, m.tests, args.timeout)
            finally:
                (copy / m.file).write_text(original)
            rows.append((m, not passed, detail, seconds))
            console.print(
                f"{m.name}: {'caught' if not passed else 'MISSED'} ({seconds:.0f} s) {detail}"
            )
    table = Table(title="mutants")
    for column in ("mutant", "file", "breaks", "result", "caught by", "s"):
        table.add_column(column)
    for m, caught, detail, seconds in rows:
        table.add_row(
            m.name,
            m.file.removeprefix(f"{PKG}/"),
            m.breaks,
            "caught" if caught else "[red]MISSED[/red]",
            detail,
            f"{seconds:.0f}",
        )
    console.print(table)
    missed = [m.name for m, caught, _, _ in rows if not caught]
    console.print(
        f"{len(rows) - len(missed)}/{len(rows)} caught"
        + (f"; missed: {', '.join(missed)}" if missed else "")
    )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
