"""The catalogue of bad inputs: every command and the Python API give one clear error.

Each case drives a CLI command (in process, as a user would type it) or a Python entry point
with an input that once crashed with a traceback, or was silently replaced or accepted. It
must exit non-zero with one `error:` line that names the value, and no traceback. Cases that
need a trained run or a dataset live beside their feature (test_train.py, test_dataset*.py,
test_evaluate.py, test_npnet_io.py) and are listed in the comments below.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_outcome import assert_refused, run_cli
from tiny_pipelines import build_sd, tiny_npnet

from golden_noise.core.distributed import launcher_cpu_processes
from golden_noise.core.errors import GoldenNoiseError
from golden_noise.generation.generate import GoldenNoise
from golden_noise.npnet import NPNetConfig
from golden_noise.teachers import SamplerSettings
from golden_noise.teachers.redenoise_step import RedenoiseSettings
from golden_noise.train import TrainConfig


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "taken"
    path.write_text("not a folder")
    return path


# --- generate: case -> before -> after ------------------------------------------------------
GENERATE = {
    # --steps 0: ZeroDivisionError deep in the scheduler; -5: pure noise written, exit 0
    "steps 0": (["--steps", "0"], ["steps must be at least 1; got 0"]),
    "steps -5": (["--steps", "-5"], ["steps must be at least 1; got -5"]),
    # --guidance -1 / nan: CFG silently off
    "guidance -1": (["--guidance", "-1"], ["guidance must be at least 0; got -1.0"]),
    "guidance nan": (["--guidance", "nan"], ["guidance must be a finite number; got nan"]),
    # --height 0: a 32 px image at the pipeline's default size
    "height 0": (["--height", "0"], ["height must be at least 1; got 0"]),
    # a seed torch cannot take: RuntimeError traceback
    "seed 1e20": (["--seeds", "99999999999999999999"], ["99999999999999999999"]),
    # a huge range: MemoryError after 30 s
    "seed range": (["--seeds", "0-99999999999"], ["0-99999999999", "at most 1000000"]),
}


@pytest.mark.parametrize("args, named", GENERATE.values(), ids=GENERATE.keys())
def test_generate_refuses(args: list[str], named: list[str], tmp_path: Path) -> None:
    code, output = run_cli("generate", "-p", "a red circle", "--out", tmp_path / "o", *args)
    assert_refused(code, output, *named)
    assert not (tmp_path / "o").exists()  # refused before anything was written


@pytest.mark.parametrize("command", ["generate", "evaluate"])
def test_out_naming_a_file_is_one_error(command: str, a_file: Path) -> None:
    """Before: FileExistsError / NotADirectoryError tracebacks."""
    extra = ["--prompts", "toy:heldout:1", "--scorers", "toy-soft"] if command == "evaluate" else []
    prompt = ["-p", "a red circle"] if command == "generate" else []
    code, output = run_cli(command, *prompt, *extra, "--steps", "2", "--out", a_file)
    assert_refused(code, output, str(a_file))


def test_train_out_naming_a_file_is_one_error(a_file: Path, tmp_path: Path) -> None:
    code, output = run_cli("train", tmp_path, "--out", a_file)
    assert_refused(code, output, f"{a_file} is a file")


@pytest.mark.parametrize("inside", ["", "run"])
def test_train_out_inside_the_dataset_is_one_error(inside: str, tmp_path: Path) -> None:
    """Before: the run's last/, best/ and checkpoints/ were written among the shards."""
    out = tmp_path / inside
    code, output = run_cli("train", tmp_path, "--out", out)
    assert_refused(code, output, f"outside the dataset {tmp_path}; got {out}")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def npd(tmp_path: Path) -> Path:
    from npd_fixtures import write_synthetic_dataset

    return write_synthetic_dataset(tmp_path / "npd", n_prompts=2, seeds_per_prompt=1)


@pytest.mark.parametrize("inside", ["", "images", "rows/images"])
@pytest.mark.parametrize("command", ["generate", "evaluate"])
def test_out_inside_a_dataset_is_one_error(command: str, inside: str, npd: Path) -> None:
    """Before: generate wrote its PNGs and prompts.txt among the dataset's shards, exit 0."""
    before = _files(npd)
    out = npd / inside
    prompt = ["-p", "a red circle"] if command == "generate" else ["--prompts", "toy:heldout:1"]
    extra = ["--scorers", "toy-soft", "--cpu"] if command == "evaluate" else []
    code, output = run_cli(command, *prompt, *extra, "--steps", "2", "--out", out)
    assert_refused(code, output, f"--out must be a folder outside the dataset {npd}; got {out}")
    assert _files(npd) == before
    assert not (npd / "images").exists()


def test_an_out_under_another_tools_manifest_is_not_taken_for_a_dataset(tmp_path: Path) -> None:
    """manifest.json is a common name (web apps, extensions): only a dataset's refuses."""
    from golden_noise.generation.files import check_new_output

    (tmp_path / "manifest.json").write_text('{"name": "my-app", "version": "1.0"}')
    check_new_output(tmp_path / "images", 8)
    (tmp_path / "manifest.json").write_text("not json")
    check_new_output(tmp_path / "images", 8)


def test_a_prompt_text_edited_after_its_rows_is_one_error(npd: Path, tmp_path: Path) -> None:
    """Before: one text edited in prompts.jsonl; a resumed collect or a merge took the rows
    and cached embeddings made for the old text as the new one's, exit 0."""
    from golden_noise.dataset import DatasetManifest, DatasetWriter, read_prompts

    path = npd / "prompts.jsonl"
    old = read_prompts(npd)[0].text
    path.write_text(path.read_text().replace(json.dumps(old), json.dumps(old + " edited"), 1))
    before = _files(npd)
    code, output = run_cli("merge", npd, "--out", tmp_path / "out")
    assert_refused(code, output, f"{path} was changed after it was written")
    assert not (tmp_path / "out").exists()
    with pytest.raises(GoldenNoiseError, match="was changed after it was written"):
        DatasetWriter(npd, DatasetManifest.load(npd), prompts=[])  # as a resumed collect opens it
    assert _files(npd) == before


def test_train_out_inside_another_dataset_is_one_error(npd: Path, tmp_path: Path) -> None:
    out = npd / "run"
    code, output = run_cli("train", tmp_path / "other", "--out", out)
    assert_refused(code, output, f"outside the dataset {npd}; got {out}")
    assert not out.exists()


def test_a_read_only_out_is_one_error(tmp_path: Path) -> None:
    """Before: PermissionError traceback. As root, permission bits do not stop writes: drop
    the capability that overrides them (setpriv), or skip where that is not possible."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("needs setpriv to drop CAP_DAC_OVERRIDE")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    drop = [setpriv, "--inh-caps=-dac_override", "--bounding-set=-dac_override"]
    probe = subprocess.run([*drop, "touch", str(locked / "x")], capture_output=True)
    if probe.returncode == 0:
        pytest.skip("writes to a read-only folder still succeed here")
    script = "from golden_noise.cli import app; app()"
    args = ["generate", "-p", "a red circle", "--steps", "2", "--out", str(locked / "o")]
    run = subprocess.run(
        [*drop, sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=300
    )
    assert_refused(run.returncode, run.stdout + run.stderr, "Permission denied", str(locked))


# --- the error printer ------------------------------------------------------------------------
def test_user_text_is_printed_verbatim_not_as_markup(tmp_path: Path) -> None:
    """Before: a path with `[/x]` crashed the printer (MarkupError) and hid the real error;
    `toy:train:` became an emoji."""
    weird = tmp_path / "[/x]toy:train:[bold]"
    code, output = run_cli("train", weird, "--out", tmp_path / "run")
    assert_refused(code, output, "no Noise Prompt Dataset at", "[/x]toy:train:[bold]")


# --- collect ---------------------------------------------------------------------------------
COLLECT = {
    # --steps 0 / --guidance 0: silently replaced by the defaults
    "steps 0": (["--steps", "0"], ["sampler steps must be at least 1; got 0"]),
    "guidance 0": (["--guidance", "0"], ["sampler guidance must be >= 1.0", "got 0.0"]),
    # --margin nan: kept nothing and wrote NaN into manifest.json (invalid JSON)
    "margin nan": (["--margin", "nan"], ["margin must be a finite number; got nan"]),
    # --w-l nan: a dataset that could never be resumed
    "w-l nan": (["--w-l", "nan"], ["w_l must be a finite number; got nan"]),
    # --reward with a teacher that has none: silently ignored
    "reward for re-denoise": (
        ["--reward", "toy-reward-model"],
        ["--reward applies to the reward-gradient and prompt-offset teachers", "redenoise"],
    ),
    # --offset-init with a teacher that fits no offsets: silently ignored
    "offset-init for re-denoise": (
        ["--offset-init", "runs/po/last"],
        ["--offset-init applies to the prompt-offset teacher", "redenoise"],
    ),
    "prompt-offset iters 0": (
        ["--teacher", "prompt-offset", "--offset-iters", "0"],
        ["prompt-offset iters must be an integer >= 1; got 0"],
    ),
}


@pytest.mark.parametrize("args, named", COLLECT.values(), ids=COLLECT.keys())
def test_collect_refuses(args: list[str], named: list[str], tmp_path: Path) -> None:
    out = tmp_path / "npd"
    code, output = run_cli("collect", "-p", "toy:train:2", "--out", out, "--no-progress", *args)
    assert_refused(code, output, *named)
    manifest = out / "manifest.json"
    assert not manifest.exists() or json.loads(manifest.read_text())


def test_collect_with_another_seed_plan_is_refused(tmp_path: Path) -> None:
    """Before: `--seeds-per-prompt 2` on a dataset made with 1 mixed both plans (11/8 rows)."""
    out = tmp_path / "npd"
    common = ["collect", "-p", "toy:train:2", "--out", out, "--no-progress", "--steps", "2"]
    code, output = run_cli(*common, "--redenoise-steps", "2")
    assert code == 0, output
    code, output = run_cli(*common, "--redenoise-steps", "2", "--seeds-per-prompt", "2")
    assert_refused(code, output, "'per_prompt': 1", "'per_prompt': 2")


def test_collect_refuses_a_prompt_its_scorer_cannot_judge_before_writing(tmp_path: Path) -> None:
    """Before: prompts.jsonl, manifest.json and an embedding shard were written, then 'a red
    cube' was refused while scoring; the corrected command was then refused too (prompt 1
    already held 'a red cube')."""
    out = tmp_path / "npd"
    common = ["collect", "--out", out, "--no-progress", "--steps", "2", "--redenoise-steps", "2",
              "-p", "a red circle", "-p"]  # fmt: skip
    code, output = run_cli(*common, "a red cube")
    assert_refused(code, output, "toy-soft judges toy-world prompts only", "#1", "'a red cube'")
    assert not out.exists()
    code, output = run_cli(*common, "a red square")
    assert code == 0, output
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    code, output = run_cli(*common, "a red square", "-p", "a red cube")
    assert_refused(code, output, "#2", "'a red cube'")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def _files(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    "mine",
    [
        '{"index": 5, "text": "a red circle", "note": "experiment A"}\n',  # dataset form
        "mine\n",  # not: collect had failed after writing manifest.json, rows/ and embeddings/
    ],
    ids=["dataset form", "other form"],
)
def test_collect_never_takes_a_users_prompts_jsonl_for_its_own(mine: str, tmp_path: Path) -> None:
    """Before: `collect -p prompts.jsonl --column text --out .` merged its prompts into the
    user's prompts.jsonl (their "note" field dropped, texts at two indices), exit 0."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "prompts.jsonl").write_text(mine)
    (folder / "list.txt").write_text("a red circle\n")
    code, output = run_cli("collect", "-p", folder / "list.txt", "--out", folder,
                           "--no-progress", "--steps", "2")  # fmt: skip
    assert_refused(code, output, "list.txt, prompts.jsonl", "no manifest.json")
    assert sorted(p.name for p in folder.iterdir()) == ["list.txt", "prompts.jsonl"]
    assert (folder / "prompts.jsonl").read_text() == mine


def test_collect_refuses_to_add_to_a_merged_dataset(tmp_path: Path) -> None:
    """Before: collecting into a merged dataset reported "done: 16/8 rows" (its indices and
    seeds follow no collect's plan)."""
    out = tmp_path / "npd"
    common = ["collect", "-p", "toy:train:2", "--out", out, "--no-progress", "--steps", "2"]
    code, output = run_cli(*common, "--redenoise-steps", "2")
    assert code == 0, output
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["notes"]["merged_from"] = [{"dataset": "a", "rows": 1}, {"dataset": "b", "rows": 1}]
    (out / "manifest.json").write_text(json.dumps(manifest))
    before = _files(out)
    code, output = run_cli(*common, "--redenoise-steps", "2")
    assert_refused(code, output, "was made by merge; collect into a new directory, then merge")
    assert _files(out) == before


def test_collect_refuses_a_dataset_whose_prompts_jsonl_is_gone(tmp_path: Path) -> None:
    """Before: with prompts.jsonl deleted, a collect of other prompts resumed ("done 8/8"):
    the first rows and cached embeddings, made for the old prompts, were taken for theirs."""
    out = tmp_path / "npd"
    common = ["collect", "--out", out, "--no-progress", "--steps", "2", "--redenoise-steps", "2"]
    code, output = run_cli(*common, "-p", "toy:train:2")
    assert code == 0, output
    (out / "prompts.jsonl").unlink()
    before = _files(out)
    code, output = run_cli(*common, "-p", "toy:validation:2")
    assert_refused(code, output, "shard(s) but no prompts.jsonl", "Restore that file")
    assert _files(out) == before


def test_collect_resumed_with_another_margin_is_refused(tmp_path: Path) -> None:
    """Before: a resume with --margin 0.1 reported "kept at margin 0.1" while the manifest
    kept 0.0, the margin train then filtered at by default."""
    out = tmp_path / "npd"
    common = ["collect", "-p", "toy:train:2", "--out", out, "--no-progress", "--steps", "2",
              "--redenoise-steps", "2"]  # fmt: skip
    code, output = run_cli(*common)
    assert code == 0, output
    before = _files(out)
    code, output = run_cli(*common, "--margin", "0.1")
    assert_refused(code, output, "records margin 0.0", "asks for margin 0.1", "train --margin 0.1")
    assert _files(out) == before


SPACING = ["--timestep-spacing", "leading"]  # the toy scheduler's own


@pytest.mark.parametrize("first, then", [([], SPACING), (SPACING, [])], ids=["named", "omitted"])
def test_collect_resumes_with_the_pipelines_own_spacing_named_or_not(
    first: list[str], then: list[str], tmp_path: Path
) -> None:
    """Before: `--timestep-spacing leading` on a dataset collected without it (the toy
    pipeline's own spacing, the same DDIM step) was refused, 'None' against 'leading'."""
    out = tmp_path / "npd"
    common = ["collect", "-p", "toy:train:2", "--out", out, "--no-progress", "--steps", "2",
              "--redenoise-steps", "2"]  # fmt: skip
    code, output = run_cli(*common, *first, "--max-rows", "1")
    assert code == 0, output
    recorded = json.loads((out / "manifest.json").read_text())["teacher_options"]
    code, output = run_cli(*common, *then)
    assert code == 0, output
    assert "done: 2/2 rows" in output and "wrote 1 rows" in output
    assert json.loads((out / "manifest.json").read_text())["teacher_options"] == recorded


RESUMED_SPACING = {
    "named another": ([], ["--timestep-spacing", "trailing"], [
        "collected without --timestep-spacing (recorded: None, the pipeline's default, "
        "leading); this run asks for 'trailing'", "Re-run without --timestep-spacing"]),
    "omitted": (["--timestep-spacing", "trailing"], [], [
        "collected with --timestep-spacing trailing; this run leaves it to the pipeline's "
        "default (leading)", "Re-run with --timestep-spacing trailing"]),
}  # fmt: skip


@pytest.mark.parametrize("first, then, named", RESUMED_SPACING.values(),
                         ids=RESUMED_SPACING.keys())  # fmt: skip
def test_collect_resumed_with_another_spacing_says_what_was_recorded(
    first: list[str], then: list[str], named: list[str], tmp_path: Path
) -> None:
    """Before: the refusal showed `'timestep_spacing': None` against 'trailing', not saying
    that None is the pipeline's own spacing nor how to resume."""
    out = tmp_path / "npd"
    common = ["collect", "-p", "toy:train:2", "--out", out, "--no-progress", "--steps", "2",
              "--redenoise-steps", "2", "--max-rows", "1"]  # fmt: skip
    code, output = run_cli(*common, *first)
    assert code == 0, output
    before = _files(out)
    assert_refused(*run_cli(*common, *then), *named)
    assert _files(out) == before


# --- evaluate --------------------------------------------------------------------------------
def test_evaluate_with_no_scorer_is_refused(tmp_path: Path) -> None:
    """Before: `--scorers ","` wrote an empty report and exited 0."""
    code, output = run_cli(
        "evaluate", "--prompts", "toy:heldout:1", "--scorers", ",", "--steps", "2",
        "--out", tmp_path / "e", "--no-progress",
    )  # fmt: skip
    assert_refused(code, output, "at least one scorer")


# --- train -----------------------------------------------------------------------------------
def test_train_lr_nan_is_refused(tmp_path: Path) -> None:
    """Before: a NaN learning rate trained to NaN weights and exited 0."""
    code, output = run_cli("train", tmp_path, "--out", tmp_path / "run", "--lr", "nan")
    assert_refused(code, output, "lr must be a finite number; got nan")


TRAIN_CONFIG = {
    "lr inf": ({"lr": math.inf}, "lr must be a finite number; got inf"),
    "lr 0": ({"lr": 0.0}, "lr must be greater than 0"),
    "epochs True": ({"epochs": True}, "epochs must be an integer; got True"),
    "batch 0": ({"batch_size": 0}, "batch_size must be at least 1; got 0"),
    "val_fraction 1": ({"val_fraction": 1.0}, "val_fraction must be at most 0.99"),
    "margin nan": ({"margin": math.nan}, "margin must be a finite number; got nan"),
    "seed -1": ({"seed": -1}, "seed must be at least 0; got -1"),
    "log_with": ({"log_with": "wandb"}, "log_with must be one of"),
}


@pytest.mark.parametrize("changes, message", TRAIN_CONFIG.values(), ids=TRAIN_CONFIG.keys())
def test_train_config_refuses(changes: dict, message: str, tmp_path: Path) -> None:
    with pytest.raises(GoldenNoiseError, match=message):
        TrainConfig(dataset=tmp_path, out=tmp_path / "run", **changes)


# --- config dataclasses (every door: CLI --npnet overrides, config.json, Python) -------------
NPNET_CONFIG = {
    # svd_heads 0: ZeroDivisionError; channels -4: math.isqrt ValueError
    "svd_heads 0": ({"svd_heads": 0}, "NPNetConfig.svd_heads must be at least 1; got 0"),
    "channels -4": ({"channels": -4}, "NPNetConfig.channels must be at least 1; got -4"),
    # height "8" from a JSON file: TypeError deep in the model
    "height '8'": ({"height": "8"}, "NPNetConfig.height must be an integer; got '8'"),
    # svd_mlp_hidden 1e9: tried to allocate 64 GB
    "mlp 1e9": ({"svd_mlp_hidden": 10**9}, "NPNetConfig.svd_mlp_hidden must be at most 16384"),
    "mlp float": ({"svd_mlp_hidden": 1e9}, "NPNetConfig.svd_mlp_hidden must be an integer"),
    "text too big": (
        {"text_tokens": 4096, "text_dim": 16384},
        "text_tokens x text_dim must be at most",
    ),
    "use_svd 'no'": ({"use_svd": "no"}, "NPNetConfig.use_svd must be true or false; got 'no'"),
}


@pytest.mark.parametrize("changes, message", NPNET_CONFIG.values(), ids=NPNET_CONFIG.keys())
def test_npnet_config_refuses(changes: dict, message: str) -> None:
    with pytest.raises(GoldenNoiseError, match=message):
        NPNetConfig(**changes)


SETTINGS = {
    "sampler guidance nan": (SamplerSettings, {"guidance": math.nan}, "finite number; got nan"),
    "sampler steps 2.5": (SamplerSettings, {"steps": 2.5}, "must be an integer; got 2.5"),
    "redenoise w_w inf": (RedenoiseSettings, {"w_w": math.inf}, "w_w must be a finite number"),
    "redenoise steps 0": (RedenoiseSettings, {"steps": 0}, "steps must be at least 2; got 0"),
}


@pytest.mark.parametrize("cls, changes, message", SETTINGS.values(), ids=SETTINGS.keys())
def test_settings_refuse(cls: type, changes: dict, message: str) -> None:
    with pytest.raises(GoldenNoiseError, match=message):
        cls(**changes)


# --- GoldenNoise.latents ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def golden() -> GoldenNoise:
    return GoldenNoise(tiny_npnet(32), build_sd())


LATENTS = {
    # prompt=[]: IndexError deep in the tokenizer; None: AttributeError
    "prompt []": ({"prompt": []}, "prompt must be a string or a non-empty list"),
    "prompt None": ({"prompt": None}, "prompt must be a string or a non-empty list"),
    "prompt [1]": ({"prompt": [1]}, "every prompt must be a string"),
    # num_images_per_prompt=0: an empty batch and a reshape error
    "images 0": (
        {"prompt": "a", "num_images_per_prompt": 0},
        "num_images_per_prompt must be at least 1; got 0",
    ),
    "height 0": ({"prompt": "a", "height": 0}, "height must be at least 1; got 0"),
    # finite but huge noise (1e30): NaN latents returned
    "noise 1e30": (
        {"prompt": "a", "latents": torch.full((1, 4, 16, 16), 1e30)},
        "latents must be finite unit-variance noise",
    ),
    "noise nan": (
        {"prompt": "a", "latents": torch.full((1, 4, 16, 16), math.nan)},
        "latents must be finite unit-variance noise",
    ),
}


@pytest.mark.parametrize("kwargs, message", LATENTS.values(), ids=LATENTS.keys())
def test_golden_latents_refuse(golden: GoldenNoise, kwargs: dict, message: str) -> None:
    with pytest.raises(GoldenNoiseError, match=message):
        golden.latents(**kwargs)


# --- the multi-process guard -----------------------------------------------------------------
LAUNCHES = {
    # the tool's own --cpu after the script was read as the launcher's: refused wrongly
    "multi_gpu + tool --cpu": (["--multi_gpu", "--num_processes", "2"], ["collect", "--cpu"], 1),
    "launcher --cpu": (["--cpu", "--num_processes", "2"], ["collect"], 2),
    "launcher --cpu, one process": (["--cpu"], ["collect", "--num_processes", "3"], 1),
}


@pytest.mark.parametrize("launcher, tool, asked", LAUNCHES.values(), ids=LAUNCHES.keys())
def test_only_the_launchers_own_arguments_count(launcher: list, tool: list, asked: int) -> None:
    script = "/venv/bin/golden-noise"
    argv = ["/venv/bin/python", "/venv/bin/accelerate", "launch", *launcher, script, *tool]
    assert launcher_cpu_processes(argv, script) == asked
    assert launcher_cpu_processes(argv, "golden-noise") == asked  # argv[0] as typed


# Cases tested beside their feature:
#   test_train.py: resume with another lr/epochs/dataset refused (was silently continued);
#     lr 1e12 stops with "training diverged" and saves nothing non-finite (was exit 0, NaN
#     weights in last/); a planted pickle in any checkpoint file never runs (ran os.system).
#   test_npnet_io.py: NPNet.from_pretrained of NaN weights refused (loaded, black images).
#   test_dataset_authors.py: import-authors with npz files of mixed shapes (ValueError).
#   test_dataset.py: a second writer of the same folder and rank refused (did all the work
#     again, every row twice on disk).
#   test_evaluate.py: an evaluation folder made with another NPNet, steps or prompts refused
#     (old images reported as new).


# --- demo and import-authors -----------------------------------------------------------------
def test_demo_refuses(a_file: Path) -> None:
    """Before: --threads 0 was a RuntimeError traceback; --out naming a file, FileExistsError."""
    assert_refused(*run_cli("demo", "--quick", "--threads", "0"), "threads must be at least 1")
    assert_refused(*run_cli("demo", "--quick", "--out", a_file, "--no-progress"), str(a_file))


def test_import_authors_cli_refuses_mixed_shapes(tmp_path: Path) -> None:
    """Before: a ValueError traceback from np.stack halfway through the import."""
    npz = tmp_path / "latents"
    npz.mkdir()
    rows = []
    for index, size in enumerate((8, 8, 16)):
        pair = np.zeros((1, 4, size, size), dtype=np.float16)
        np.savez(npz / f"{index}_{index}.npz", pair, pair, index)
        scores = {"original_score_list": [0.2], "optimized_score_list": [0.3]}
        rows.append({"index": index, "seed": index, "caption": f"p{index}", **scores})
    jsonl = tmp_path / "pairs.json"
    jsonl.write_text("".join(json.dumps(row) + "\n" for row in rows))
    code, output = run_cli(
        "import-authors", npz, jsonl, "--out", tmp_path / "npd", "--pipeline", "toy"
    )
    assert_refused(code, output, "2_2.npz: latents of shape (4, 16, 16)")
    assert not (tmp_path / "npd").exists()  # every file's shape is read before any write


def _authors_files(tmp_path: Path, names: dict[str, int], seeds: dict[int, int]) -> tuple:
    """npz files `{name: arr_2 index}` of toy-sized pairs and a JSONL row per `{index: seed}`."""
    npz = tmp_path / "latents"
    npz.mkdir()
    pair = np.zeros((1, 4, 8, 8), dtype=np.float16)
    for name, index in names.items():
        (npz / name).parent.mkdir(exist_ok=True)
        np.savez(npz / name, pair, pair, index)
    scores = {"original_score_list": [0.2], "optimized_score_list": [0.3]}
    rows = [{"index": i, "seed": seed, "caption": f"p{i}", **scores} for i, seed in seeds.items()]
    jsonl = tmp_path / "pairs.json"
    jsonl.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return npz, jsonl


AUTHORS_FILES = {
    # arr_2 picked the caption: 1_11.npz was stored under p0's caption, exit 0
    "arr_2 against the name": (
        {"0_10.npz": 0, "1_11.npz": 0},
        ["1_11.npz: its name says index 1, but its arr_2 says index 0"],
    ),
    # the file name's seed was stored, whatever the JSONL row said
    "seed against the row": (
        {"0_10.npz": 0, "1_12.npz": 1},
        ["1_12.npz: its name says seed 12, but the JSONL row of index 1 says seed 11"],
    ),
}


@pytest.mark.parametrize("names, named", AUTHORS_FILES.values(), ids=AUTHORS_FILES.keys())
def test_import_authors_refuses_files_that_contradict(names, named, tmp_path: Path) -> None:
    npz, jsonl = _authors_files(tmp_path, names, {0: 10, 1: 11})
    out = tmp_path / "npd"
    code, output = run_cli(
        "import-authors", npz, jsonl, "--out", out, "--pipeline", "toy", "--batch-size", "1"
    )
    assert_refused(code, output, *named)
    assert not out.exists()  # refused before anything is written


@pytest.mark.parametrize("size", ["0", "-1"])
def test_import_authors_refuses_a_batch_size_below_one(size: str, tmp_path: Path) -> None:
    """Before: 0 was a ValueError traceback after the dataset was begun; -1 imported 0 pairs
    with exit 0."""
    npz, jsonl = _authors_files(tmp_path, {"0_10.npz": 0}, {0: 10})
    out = tmp_path / "npd"
    code, output = run_cli(
        "import-authors", npz, jsonl, "--out", out, "--pipeline", "toy", "--batch-size", size
    )
    assert_refused(code, output, f"batch_size must be at least 1; got {size}")
    assert not out.exists()


@pytest.mark.parametrize("steps", ["-4", "0", "5000"])
def test_import_authors_refuses_sampler_steps_collect_refuses(steps: str, tmp_path: Path) -> None:
    """Before: --steps -4 was written to the manifest ("steps": -4), exit 0; 0 was dropped."""
    npz, jsonl = _authors_files(tmp_path, {"0_10.npz": 0}, {0: 10})
    out = tmp_path / "npd"
    code, output = run_cli(
        "import-authors", npz, jsonl, "--out", out, "--pipeline", "toy", "--steps", steps
    )
    assert_refused(code, output, "sampler steps must be at ", f"got {steps}")
    assert not out.exists()


def test_import_authors_refuses_two_entries_of_one_caption_and_seed(tmp_path: Path) -> None:
    """Before: two entries with one caption and seed but other indices and latents became one
    row, the second reported as "(1 already present)" in a new dataset."""
    npz, jsonl = _authors_files(tmp_path, {"0_10.npz": 0, "1_11.npz": 1, "2_10.npz": 2},
                                {0: 10, 1: 11, 2: 10})  # fmt: skip
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    rows[2]["caption"] = rows[0]["caption"]
    jsonl.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "npd"
    code, output = run_cli("import-authors", npz, jsonl, "--out", out, "--pipeline", "toy")
    assert_refused(code, output, "entries index 0 and index 2 both have caption 'p0' and seed 10")
    assert not out.exists()


def test_import_authors_resumed_with_another_margin_is_refused(tmp_path: Path) -> None:
    """Before: the import went on and the manifest kept its first margin, exit 0."""
    npz, jsonl = _authors_files(tmp_path, {"0_10.npz": 0}, {0: 10})
    out = tmp_path / "npd"
    common = ["import-authors", npz, jsonl, "--out", out, "--pipeline", "toy"]
    code, output = run_cli(*common)
    assert code == 0, output
    before = _files(out)
    assert_refused(*run_cli(*common, "--margin", "0.1"), "records margin 0.0", "margin 0.1")
    assert _files(out) == before


def test_import_authors_resumed_with_another_dtype_is_refused(tmp_path: Path) -> None:
    """Before: the float16 run was accepted, and its new prompts' embeddings (up to 0.002 away
    from float32-encoded ones) joined the float32-encoded ones in one dataset, exit 0."""
    npz, jsonl = _authors_files(tmp_path, {"0_10.npz": 0, "1_11.npz": 1}, {0: 10, 1: 11})
    first = tmp_path / "first"
    first.mkdir()
    (npz / "0_10.npz").rename(first / "0_10.npz")
    out = tmp_path / "npd"
    common = ["import-authors", npz, jsonl, "--out", out, "--pipeline", "toy", "--steps", "4"]
    code, output = run_cli(*common[:1], first, *common[2:])
    assert code == 0, output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["teacher_options"]["text_encoder_dtype"] == "float32"
    before = _files(out)
    assert_refused(*run_cli(*common, "--dtype", "float16"), "encoded in float32", "in float16")
    assert _files(out) == before
    # an import from before the record says nothing of its dtype: refused, then resumable
    # once the dtype is written in
    del manifest["teacher_options"]["text_encoder_dtype"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    before = _files(out)
    assert_refused(*run_cli(*common), "does not record the dtype", '"text_encoder_dtype"')
    assert _files(out) == before
    manifest["teacher_options"]["text_encoder_dtype"] = "float32"
    (out / "manifest.json").write_text(json.dumps(manifest))
    code, output = run_cli(*common, "--dtype", "float32")
    assert code == 0 and "imported 1 pairs" in output, output


def _save_pair(path: Path, source: type, target: type) -> None:
    """A toy-sized `{index}_{seed}.npz` of these dtypes, each array 1e-4 (float16 rounds it)."""
    arrays = [np.zeros((1, 4, 8, 8), dtype=dtype) + dtype(1e-4) for dtype in (source, target)]
    np.savez(path, *arrays, int(path.name.split("_")[0]))


MIXED_PRECISION = {
    # stored as float16 (the first file's), the target off by up to 1e-4, exit 0
    "float32 target": (
        {"1_11.npz": (np.float16, np.float32)},
        "1_11.npz: arr_1 (target) holds float32 latents, but the dataset (from 0_10.npz's "
        "arr_0) stores float16; expected float16 sources and targets",
    ),
    "float32 file": (
        {"1_11.npz": (np.float32, np.float32)},
        "1_11.npz: arr_0 (source) holds float32 latents, but the dataset (from 0_10.npz's "
        "arr_0) stores float16",
    ),
    # accepted: whether a set of files imports depended on which one sorts first
    "float16 file after float32 ones": (
        {"0_10.npz": (np.float32, np.float32)},
        "1_11.npz: arr_0 (source) holds float16 latents, but the dataset (from 0_10.npz's "
        "arr_0) stores float32",
    ),
}


@pytest.mark.parametrize("dtypes, named", MIXED_PRECISION.values(), ids=MIXED_PRECISION.keys())
def test_import_authors_refuses_mixed_precision(dtypes, named: str, tmp_path: Path) -> None:
    npz, jsonl = _authors_files(tmp_path, {"0_10.npz": 0, "1_11.npz": 1}, {0: 10, 1: 11})
    for name, (source, target) in dtypes.items():
        _save_pair(npz / name, source, target)
    out = tmp_path / "npd"
    code, output = run_cli("import-authors", npz, jsonl, "--out", out, "--pipeline", "toy")
    assert_refused(code, output, named)
    assert not out.exists()  # every file's dtypes are read before any write


def test_import_authors_resumed_with_a_float32_file_is_refused(tmp_path: Path) -> None:
    """Before: a folder of float32 pairs resumed into a float16 dataset was refused by a
    comparison of whole manifests that named no file."""
    npz, jsonl = _authors_files(tmp_path, {"0_10.npz": 0}, {0: 10, 1: 11})
    out = tmp_path / "npd"
    code, output = run_cli("import-authors", npz, jsonl, "--out", out, "--pipeline", "toy")
    assert code == 0, output
    before = _files(out)
    more = tmp_path / "more"
    more.mkdir()
    _save_pair(more / "1_11.npz", np.float32, np.float32)
    code, output = run_cli("import-authors", more, jsonl, "--out", out, "--pipeline", "toy")
    assert_refused(code, output, "1_11.npz: arr_0 (source) holds float32 latents, but the "
                   f"dataset (at {out}) stores float16")  # fmt: skip
    assert _files(out) == before


@pytest.mark.parametrize("seed", [-5, 2**63])
def test_import_authors_refuses_a_seed_out_of_range(seed: int, tmp_path: Path) -> None:
    """Before: a JSONL seed of -5 (a file name without one) was stored as the row's seed,
    exit 0; evaluate refuses seeds below 0."""
    npz, jsonl = _authors_files(tmp_path, {"pair.npz": 0}, {0: seed})
    out = tmp_path / "npd"
    code, output = run_cli("import-authors", npz, jsonl, "--out", out, "--pipeline", "toy")
    assert_refused(code, output, f"line 1: seed must be between 0 and {2**63 - 1}; got {seed}")
    assert not out.exists()


AMBIGUOUS_FILES = {
    # a second run's folder: the first path in sort order was imported, the other one
    # counted as "already present" in a new dataset
    "a copy in a subfolder": ({"run2/0_10.npz": 0}, "2 npz files hold the pair of JSONL index 0"),
    # an unnamed file whose arr_2 claims index 1, beside 1_11.npz
    "an unnamed file": ({"extra.npz": 1}, "2 npz files hold the pair of JSONL index 1 (seed 11)"),
}


@pytest.mark.parametrize("extra, named", AMBIGUOUS_FILES.values(), ids=AMBIGUOUS_FILES.keys())
def test_import_authors_refuses_two_files_for_one_pair(extra, named, tmp_path: Path) -> None:
    npz, jsonl = _authors_files(tmp_path, {"0_10.npz": 0, "1_11.npz": 1, **extra}, {0: 10, 1: 11})
    out = tmp_path / "npd"
    common = ["import-authors", npz, jsonl, "--out", out, "--pipeline", "toy"]
    code, output = run_cli(*common)
    assert_refused(code, output, named, *(str(npz / name) for name in extra))
    assert not out.exists()
    for name in extra:  # one file per pair: none is present before the first import
        (npz / name).unlink()
    assert "imported 2 pairs (0 already present)" in " ".join(run_cli(*common)[1].split())
    assert "imported 0 pairs (2 already present)" in " ".join(run_cli(*common)[1].split())


JSONL_FIELDS = {
    # 1.5 and 11.9 were imported as index 1 and seed 11, exit 0
    "index 1.5": ({"index": 1.5}, "line 1: index must be an integer; got 1.5"),
    "seed 11.9": ({"seed": 11.9}, "line 1: seed must be an integer; got 11.9"),
    "index true": ({"index": True}, "line 1: index must be an integer; got True"),
    "seed as text": ({"seed": "10"}, "line 1: seed must be an integer; got '10'"),
    "caption null": ({"caption": None}, "line 1: caption must be a string; got None"),
    "score as text": (
        {"optimized_score_list": ["0.3"]},
        "line 1: optimized_score_list entry must be a number; got '0.3'",
    ),
    # refused by the writer after manifest.json, prompts.jsonl and an embedding were written
    "score NaN": (
        {"original_score_list": [math.nan]},
        "line 1: original_score_list entry must be a finite number; got nan",
    ),
}


@pytest.mark.parametrize("change, named", JSONL_FIELDS.values(), ids=JSONL_FIELDS.keys())
def test_import_authors_refuses_a_field_it_would_convert(change, named, tmp_path: Path) -> None:
    npz, jsonl = _authors_files(tmp_path, {"0_10.npz": 0}, {0: 10})
    jsonl.write_text(json.dumps(json.loads(jsonl.read_text()) | change) + "\n")
    out = tmp_path / "npd"
    code, output = run_cli("import-authors", npz, jsonl, "--out", out, "--pipeline", "toy")
    assert_refused(code, output, named)
    assert not out.exists()


# --- merge -------------------------------------------------------------------------------------
def test_merge_out_naming_a_file_says_so(npd: Path, a_file: Path) -> None:
    """Before: "--out taken already exists and is not an empty directory"."""
    code, output = run_cli("merge", npd, "--out", a_file, "--no-progress")
    assert_refused(code, output, f"--out {a_file} is a file; expected a new or empty folder")
    assert a_file.read_text() == "not a folder"


# --- train --objective reward ----------------------------------------------------------------
REWARD_OPTIONS = {
    "unknown reward": (
        ["--reward", "hpsv9"],
        "reward must be one of 'toy-reward-model', 'toy-surrogate'",
    ),
    "stay_close -1": (["--stay-close", "-1"], "stay_close must be at least 0; got -1.0"),
    "reward_steps 0": (["--reward-steps", "0"], "reward_steps must be at least 1; got 0"),
}


@pytest.mark.parametrize("args, message", REWARD_OPTIONS.values(), ids=REWARD_OPTIONS.keys())
def test_train_reward_options_refused(args: list, message: str, tmp_path: Path) -> None:
    """Checked before any data or pipeline is read (a dataset collected without its pipeline
    is refused in test_train_reward.py)."""
    code, output = run_cli(
        "train", tmp_path, "--out", tmp_path / "run", "--objective", "reward", *args
    )
    assert_refused(code, output, message, args[-1])


# === round two: every count bounded, every setting checked where it is made ==================
def _refused_call(call, *named: str) -> None:
    with pytest.raises(GoldenNoiseError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message.strip(), message
    for text in named:
        assert text in message, (text, message)


# --- seeds: what a user types, bounded; int64 is where they are stored ---------------------
SEED_TEXTS = {
    # 2**63 and above were accepted, then stored as int64 (overflow, or another number)
    "2**63": ("9223372036854775808", "2**63 - 1"),
    "2**64-1": ("18446744073709551615", "2**63 - 1"),
    "range over int64": ("9223372036854775800-9223372036854775810", "2**63 - 1"),
    "negative": ("-1", "seeds must be integers or ranges"),
    "letters": ("abc", "seeds must be integers or ranges"),
    "descending": ("5-2", "seed range must ascend"),
    "empty": (",", "expected at least one seed"),
    "huge range": ("0-1000000", "at most 1000000"),
    "range with letters": ("0-x", "seeds must be integers or ranges"),
    "float": ("1.5", "seeds must be integers or ranges"),
    "blank": ("  ", "expected at least one seed"),
}


@pytest.mark.parametrize("text, named", SEED_TEXTS.values(), ids=SEED_TEXTS.keys())
def test_seed_lists_refuse(text: str, named: str) -> None:
    from golden_noise.cli.options import parse_seeds

    _refused_call(lambda: parse_seeds(text), named)


SAMPLE_SEEDS = {
    # "1,1,0-2" said 5 images and left 3: one file per (prompt, seed)
    "1,1,0-2": ([1, 1, 0, 1, 2], "1 listed more than once"),
    "0,0": ([0, 0], "0 listed more than once"),
    "3,4,3": ([3, 4, 3], "3 listed more than once"),
}


@pytest.mark.parametrize("seeds, named", SAMPLE_SEEDS.values(), ids=SAMPLE_SEEDS.keys())
def test_repeated_seeds_refused(seeds: list[int], named: str) -> None:
    from golden_noise.generation.arms import make_samples

    _refused_call(lambda: make_samples(["a red circle"], seeds), "seeds must be distinct", named)


SEED_PLANS = {
    "per_prompt 0": ({"per_prompt": 0}, 1, "seeds per prompt must be >= 1; got 0"),
    "per_prompt True": ({"per_prompt": True}, 1, "seeds per prompt must be an integer"),
    "per_prompt 2.5": ({"per_prompt": 2.5}, 1, "seeds per prompt must be an integer"),
    "offset -1": ({"offset": -1}, 1, "seed offset must be >= 0; got -1"),
    # an offset above int64 was a traceback when the rows were stored
    "offset 2**63": ({"offset": 2**63}, 1, "seed offset must be at most"),
    "offset + plan past int64": ({"offset": 2**63 - 2}, 4, "reaches seed 9223372036854775809"),
    "too many rows": ({"per_prompt": 1000}, 200_000, "at most 100000000 per dataset"),
}


@pytest.mark.parametrize("kw, prompts, named", SEED_PLANS.values(), ids=SEED_PLANS.keys())
def test_seed_plans_refuse(kw: dict, prompts: int, named: str) -> None:
    from golden_noise.collection.collect import SeedPlan

    _refused_call(lambda: SeedPlan(**kw).keys(prompts), named)


# --- prompt sources ----------------------------------------------------------------------------
PROMPT_SPECS = {
    # toy:train:99999999999 built an unbounded list (nothing for 200 s)
    "toy count 1e11": ("toy:train:99999999999", "between 1 and 10000000"),
    "toy count 10000001": ("toy:train:10000001", "got 10000001"),
    "toy count 0": ("toy:train:0", "between 1 and 10000000"),
    "toy bad split": ("toy:bogus:4", "split"),
    "toy no count": ("toy:train", "expected toy:SPLIT:N"),
    "toy negative": ("toy:train:-4", "expected toy:SPLIT:N"),
    "toy float": ("toy:train:4.5", "expected toy:SPLIT:N"),
    "toy bad seed": ("toy:train:4:x", "expected toy:SPLIT:N"),
    "missing file": ("./no-such-prompts.txt", "no such file"),
    "toy huge with seed": ("toy:heldout:99999999999:3", "between 1 and 10000000"),
    "toy all bad seed": ("toy:train:all:x", "expected toy:SPLIT:N"),
}


@pytest.mark.parametrize("spec, named", PROMPT_SPECS.values(), ids=PROMPT_SPECS.keys())
def test_prompt_sources_refuse(spec: str, named: str) -> None:
    from golden_noise.prompts.sources import read_prompt_source

    _refused_call(lambda: read_prompt_source(spec), named)


BOM_FILES = {
    "txt": ("p.txt", "a red circle\nblue square\n"),
    "csv": ("p.csv", "prompt\na red circle\nblue square\n"),
    "jsonl": ("p.jsonl", '{"prompt": "a red circle"}\n{"prompt": "blue square"}\n'),
    "json": ("p.json", '{"text": "a red circle"}\n{"text": "blue square"}\n'),
}


@pytest.mark.parametrize("name, text", BOM_FILES.values(), ids=BOM_FILES.keys())
def test_a_byte_order_mark_is_not_part_of_the_first_prompt(
    name: str, text: str, tmp_path: Path
) -> None:
    """Before: '\\ufeffa red circle' went to the text encoder (csv: no 'prompt' column)."""
    from golden_noise.prompts.sources import read_prompt_source

    path = tmp_path / name
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert read_prompt_source(path) == ["a red circle", "blue square"]


def test_a_prompt_longer_than_a_file_name_is_a_prompt() -> None:
    """`-p TEXT` with more characters than a file name may have (255 on Linux): the check for a
    prompt file must not turn the OS's "File name too long" into an error."""
    from golden_noise.prompts.sources import read_prompt_sources

    text = "a red circle and a blue square " * 12
    assert len(text) > 300
    assert read_prompt_sources([text])[0] == [text.strip()]


def test_toy_counts_draws_and_keeps_distinct_prompts_as_documented() -> None:
    """toy:train:48 gives 42 prompts: the count is of draws, deduplicated (documented, and kept
    so datasets collected from a spec keep their prompts); :all gives each prompt once."""
    from golden_noise.prompts import sources
    from golden_noise.toy.grammar import sample_prompts

    assert "toy:train:48` draws 48 prompts" in sources.__doc__
    drawn = sources.read_prompt_source("toy:train:48")
    assert drawn == list(dict.fromkeys(sample_prompts(48, 0, "train")))
    assert len(drawn) == len(set(drawn))


DRAWN = {  # each command refused after reading its prompts, by a bad option
    "collect": ["collect", "--batch-size", "0", "--no-progress"],
    "generate": ["generate", "--steps", "0"],
    "evaluate": ["evaluate", "--steps", "0", "--no-progress"],
}


@pytest.mark.parametrize("command", DRAWN.values(), ids=DRAWN.keys())
def test_a_toy_draw_that_kept_fewer_prompts_says_so(command: list[str], tmp_path: Path) -> None:
    """Before: `-p toy:train:96` quietly gave 75 prompts ("done: 75/75 rows"); the draw is
    kept as it is (datasets depend on it), and every command says what it drew."""
    code, output = run_cli(*command, "-p", "toy:train:96", "--out", tmp_path / "o")
    assert output.count("note: toy:train:96 drew 75 distinct prompts") == 1, output
    code, output = run_cli(*command, "-p", "toy:train:4", "--out", tmp_path / "o")
    assert "note:" not in output, output


def _dataset_folder(tmp_path: Path) -> Path:
    from npd_fixtures import write_synthetic_dataset

    return write_synthetic_dataset(tmp_path / "npd", n_prompts=2, seeds_per_prompt=1)


def _junk_pth(tmp_path: Path) -> Path:
    path = tmp_path / "junk.pth"
    path.write_bytes(np.random.default_rng(0).bytes(1000))
    return path


NPNET_SOURCES = {
    # went to the hub: "Retrying in 8s [Retry 5/5]" lines on stderr, 30 s, then the error
    "missing .pth": (lambda t: "nonexist.pth", ["no such file or folder: nonexist.pth"]),
    "missing ./path": (lambda t: "./no/such/net", ["no such file or folder: ./no/such/net"]),
    # a stray "config.json not found in ..." line came before the error
    "a dataset folder": (_dataset_folder, ["expected config.json and model.safetensors in"]),
    # seven lines of torch's, advising weights_only=False
    "random bytes .pth": (_junk_pth, ["junk.pth: it is not a readable weights file"]),
}


@pytest.mark.parametrize("make, named", NPNET_SOURCES.values(), ids=NPNET_SOURCES.keys())
def test_a_bad_npnet_source_is_one_local_error(make, named: list[str], tmp_path: Path) -> None:
    source = make(tmp_path)
    code, output = run_cli("generate", "-p", "a red circle", "--npnet", source, "--steps", "2",
                           "--device", "cpu", "--out", tmp_path / "o")  # fmt: skip
    assert_refused(code, output, *named)
    assert len(output.strip().splitlines()) == 1, output
    assert "weights_only" not in output and "Retry" not in output, output


def test_a_folder_without_an_npnet_is_refused_before_the_hub_reads_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: the hub mixin logged "config.json not found in ..." (shown with --verbose, and
    by the Python API) before our error; `--init-from` takes the same door."""
    import logging

    caplog.set_level(logging.WARNING, logger="huggingface_hub")
    with pytest.raises(GoldenNoiseError, match="expected config.json and model.safetensors"):
        __import__("golden_noise.npnet", fromlist=["NPNet"]).NPNet.from_pretrained(
            _dataset_folder(tmp_path)
        )
    assert not [r for r in caplog.records if r.name.startswith("huggingface_hub")], caplog.text


# --- sizes: 0 is no size, not "the default size" -----------------------------------------------
SIZES = {
    "height 0": ({"height": 0}, "height must be an integer >= 1; got 0"),
    "width 0": ({"width": 0}, "width must be an integer >= 1; got 0"),
    "height -32": ({"height": -32}, "height must be an integer >= 1; got -32"),
    "width True": ({"width": True}, "width must be an integer >= 1; got True"),
    "height 31": ({"height": 31}, "got 31x"),
}


@pytest.mark.parametrize("kw, named", SIZES.values(), ids=SIZES.keys())
def test_adapter_sizes_refuse(kw: dict, named: str) -> None:
    """Before: `collect --height 0` silently became the default 32."""
    from golden_noise.adapters import adapter_for

    adapter = adapter_for(build_sd())
    size = {"height": None, "width": None, **kw}
    _refused_call(lambda: adapter.resolve_size(size["height"], size["width"]), named)


# --- devices -----------------------------------------------------------------------------------
DEVICES = {
    "cuda:7": ("cuda:7", "is not available"),
    "cuda:99": ("cuda:99", "is not available"),
    "gpu": ("gpu", "must be a torch device"),
    "cuda:x": ("cuda:x", "must be a torch device"),
    "empty": ("", "must be a torch device"),
    "cuda:-1": ("cuda:-1", "must be a torch device"),
    "cpu:x": ("cpu:x", "must be a torch device"),
}


@pytest.mark.parametrize("device, named", DEVICES.values(), ids=DEVICES.keys())
def test_devices_refuse(device: str, named: str) -> None:
    """Before: `generate --device cuda:7` on a machine without it was a traceback."""
    from golden_noise.adapters.loading import check_device

    _refused_call(lambda: check_device(device), named, repr(device))


def test_a_pipeline_repo_with_custom_code_is_one_error(monkeypatch, tmp_path: Path) -> None:
    """Before: diffusers' error for a repo needing trust_remote_code escaped as a traceback
    (its code never ran)."""
    import diffusers

    from golden_noise.adapters import loading

    def refuse(*args, **kwargs):
        raise RuntimeError("this repository contains custom code; pass trust_remote_code=True")

    monkeypatch.setattr(diffusers.DiffusionPipeline, "from_pretrained", refuse)
    _refused_call(lambda: loading.pipeline_from_spec("someone/custom", device="cpu"),
                  "cannot load pipeline 'someone/custom'", "custom code")  # fmt: skip


# --- batch sizes: library doors ----------------------------------------------------------------
BATCHES = {"0": 0, "-3": -3, "-2": -2, "True": True, "2.5": 2.5, "1e9": 10**9}


@pytest.mark.parametrize("size", BATCHES.values(), ids=BATCHES.keys())
def test_generation_batch_sizes_refuse(size: object) -> None:
    """Before: 0 was a ZeroDivisionError; -3 wrote nothing and said "wrote 1 images"."""
    from golden_noise.evaluation.evaluate import Generation
    from golden_noise.generation.arms import generate_arms

    _refused_call(lambda: Generation(None, {}, {}, size), "batch_size must be")
    _refused_call(lambda: list(generate_arms(build_sd(), [], {}, batch_size=size)), "batch_size")


# --- generate and evaluate through the CLI -----------------------------------------------------
GENERATE_MORE = {
    "batch-size 0": (["--batch-size", "0"], ["batch_size must be at least 1; got 0"]),
    "batch-size -3": (["--batch-size", "-3"], ["batch_size must be at least 1; got -3"]),
    "batch-size 1e7": (["--batch-size", "10000000"], ["batch_size must be at most 65536"]),
    "seeds 1,1,0-2": (["--seeds", "1,1,0-2"], ["seeds must be distinct", "1 listed more"]),
    "seeds above int64": (["--seeds", "9223372036854775808"], ["2**63 - 1"]),
    "device cuda:7": (["--device", "cuda:7"], ["'cuda:7' is not available"]),
    "device bogus": (["--device", "tpu9"], ["'tpu9'"]),
    "prompts huge toy": (["--prompts", "toy:train:99999999999"], ["between 1 and 10000000"]),
    "width 0": (["--width", "0"], ["width must be at least 1; got 0"]),
    "steps 1001": (["--steps", "1001"], ["steps must be at most 1000"]),
    "guidance inf": (["--guidance", "inf"], ["guidance must be a finite number"]),
    # refused only after prompts.txt was written, which then blocked the corrected rerun
    "height 64": (["--height", "64"], ["made for sd", "latents 4x16x8 at 64x32 px"]),
}


@pytest.mark.parametrize("args, named", GENERATE_MORE.values(), ids=GENERATE_MORE.keys())
def test_generate_refuses_more(args: list[str], named: list[str], tmp_path: Path) -> None:
    code, output = run_cli("generate", "-p", "a red circle", "--out", tmp_path / "o", *args)
    assert_refused(code, output, *named)
    assert not (tmp_path / "o").exists()


def test_an_overlong_prompt_is_one_warning_line_not_an_error(tmp_path: Path) -> None:
    """Before: the text encoder kept the first 16 tokens silently (a library's warning, shown
    only with --verbose)."""
    long = "a red circle " * 8  # 24 words; the toy encoder keeps 16 tokens
    code, output = run_cli("generate", "-p", long, "-p", "a blue square", "--steps", "2",
                           "--out", tmp_path / "o")  # fmt: skip
    assert code == 0, output
    warned = [line for line in output.splitlines() if line.startswith("warning:")]
    assert len(warned) == 1 and "only the first 16 tokens" in warned[0], output
    assert "1 prompt(s)" in warned[0] and "error:" not in output


def test_generate_keeps_a_prompt_with_a_line_break_on_its_line(tmp_path: Path) -> None:
    """Before: prompts.txt held "000\ta red" and "circle" on two lines, and the next line
    "001\ta blue square": which text image 000 was made from was ambiguous."""
    source = tmp_path / "prompts.jsonl"
    texts = ["a red\ncircle", "a blue\u2028square", "a green triangle"]
    source.write_text("".join(json.dumps({"prompt": text}) + "\n" for text in texts))
    out = tmp_path / "o"
    code, output = run_cli("generate", "-p", source, "--steps", "2", "--out", out)
    assert code == 0, output
    lines = (out / "prompts.txt").read_text(encoding="utf-8").splitlines()
    assert [line.split("\t", 1)[0] for line in lines] == ["000", "001", "002"]
    assert [json.loads(line.split("\t", 1)[1]) for line in lines] == texts


EVALUATE_MORE = {
    # 0: ZeroDivisionError; -2: "generate them first (evaluate without --rescore)"
    "batch-size 0": (["--batch-size", "0"], ["batch_size must be at least 1; got 0"]),
    "batch-size -2": (["--batch-size", "-2"], ["batch_size must be at least 1; got -2"]),
    "prompts huge toy": (["--prompts", "toy:train:99999999999"], ["between 1 and 10000000"]),
    "seeds repeated": (["--seeds", "0,0"], ["seeds must be distinct"]),
    "height 0": (["--height", "0"], ["height must be at least 1; got 0"]),
    # refused after run.json and index.jsonl were written: the rerun at 32 px was then refused
    # as "holds images made with other settings"
    "height 64": (["--height", "64"], ["made for sd", "latents 4x16x8 at 64x32 px"]),
    # images and index.jsonl were written before scoring refused the prompt
    "prompt outside the toy grammar": (
        ["--prompts", "a red cube"],
        ["toy-soft judges toy-world prompts only", "#1", "'a red cube'"],
    ),
}


@pytest.mark.parametrize("args, named", EVALUATE_MORE.values(), ids=EVALUATE_MORE.keys())
def test_evaluate_refuses_more(args: list[str], named: list[str], tmp_path: Path) -> None:
    code, output = run_cli(
        "evaluate", "--prompts", "toy:heldout:1", "--scorers", "toy-soft", "--steps", "2",
        "--out", tmp_path / "e", "--no-progress", *args,
    )  # fmt: skip
    assert_refused(code, output, *named)
    assert "--rescore" not in output
    assert not (tmp_path / "e").exists()


# --- evaluate --rescore reads an index someone may have edited --------------------------------
INDEX_ENTRIES = {
    # a non-integer prompt_index was a ValueError traceback while naming files
    "prompt_index 'x'": ({"prompt_index": "x"}, "prompt_index must be an integer >= 0"),
    "prompt_index 1.5": ({"prompt_index": 1.5}, "prompt_index must be an integer >= 0"),
    "prompt_index -1": ({"prompt_index": -1}, "prompt_index must be an integer >= 0"),
    "prompt_index true": ({"prompt_index": True}, "prompt_index must be an integer >= 0"),
    "seed 'a'": ({"seed": "a"}, "seed must be an integer >= 0"),
    "seed 2**64": ({"seed": 2**64}, "seed must be between 0 and"),
    "prompt 3": ({"prompt": 3}, "prompt must be a string"),
    "arms 'x'": ({"arms": "standard"}, "arms must be a list of names"),
    "unknown key": ({"colour": "red"}, "is not an index entry"),
    "not an object": (None, "is not an index entry"),
}


@pytest.mark.parametrize("change, named", INDEX_ENTRIES.values(), ids=INDEX_ENTRIES.keys())
def test_rescore_refuses_a_bad_index_entry(change: dict | None, named: str, tmp_path: Path) -> None:
    from golden_noise.evaluation.evaluate import read_index

    entry = {"prompt_index": 0, "prompt": "a red circle", "seed": 0, "group": None,
             "arms": ["standard", "golden"], **(change or {})}  # fmt: skip
    (tmp_path / "index.jsonl").write_text((json.dumps(entry) if change else "[1, 2]") + "\n")
    _refused_call(lambda: read_index(tmp_path), "index.jsonl line 1", named)
    code, output = run_cli("evaluate", "--rescore", "--scorers", "toy-soft", "--out", tmp_path)
    assert_refused(code, output, named)


def test_rescore_refuses_generation_options(tmp_path: Path) -> None:
    """Before: -p, --steps, --guidance and --seeds given with --rescore were silently ignored."""
    code, output = run_cli(
        "evaluate", "--rescore", "--scorers", "toy-soft", "--out", tmp_path, "-p", "toy:heldout:1",
        "--steps", "3", "--guidance", "2", "--seeds", "0",
    )  # fmt: skip
    assert_refused(code, output, "got --prompts, --seeds, --steps, --guidance")
    assert not list(tmp_path.iterdir())


RUN_RECORDS = {"not JSON": "{oops", "a list": "[1, 2]", "not UTF-8": b"\xff\xfe"}


@pytest.mark.parametrize("content", RUN_RECORDS.values(), ids=RUN_RECORDS.keys())
def test_an_unreadable_run_record_is_one_error(content: object, tmp_path: Path) -> None:
    """Before: a JSONDecodeError traceback, or (a list) an AttributeError."""
    path = tmp_path / "run.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    code, output = run_cli(
        "evaluate", "--prompts", "toy:heldout:1", "--scorers", "toy-soft", "--steps", "2",
        "--out", tmp_path, "--no-progress",
    )  # fmt: skip
    assert_refused(code, output, str(path))
    assert not (tmp_path / "index.jsonl").exists()


def test_evaluate_never_overwrites_a_users_report_files(tmp_path: Path) -> None:
    """Before: metrics.json, report.html and images.csv in a folder with no run.json were
    silently replaced by a new evaluate run's."""
    mine = {"metrics.json": "{}", "report.html": "<p>mine</p>", "images.csv": "a,b\n"}
    for name, text in mine.items():
        (tmp_path / name).write_text(text)
    code, output = run_cli(
        "evaluate", "--prompts", "toy:heldout:1", "--scorers", "toy-soft", "--steps", "2",
        "--out", tmp_path, "--no-progress",
    )  # fmt: skip
    assert_refused(code, output, "images.csv, metrics.json, report.html", "no run.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(mine)
    assert all((tmp_path / name).read_text() == text for name, text in mine.items())


# --- train and its config ------------------------------------------------------------------
TRAIN_MORE = {
    # a bogus scheduler name was a ValueError traceback after the data was loaded
    "lr_scheduler bogus": ({"lr_scheduler": "bogus"}, "lr_scheduler must be one of"),
    "lr_scheduler ''": ({"lr_scheduler": ""}, "lr_scheduler must be one of"),
    "lr_scheduler None": ({"lr_scheduler": None}, "lr_scheduler must be one of"),
    "lr -1": ({"lr": -1.0}, "lr must be greater than 0"),
    "lr '1e-4'": ({"lr": "1e-4"}, "lr must be a number"),
    "weight_decay -1": ({"weight_decay": -1.0}, "weight_decay must be at least 0"),
    "weight_decay nan": ({"weight_decay": math.nan}, "weight_decay must be a finite number"),
    "epochs 0": ({"epochs": 0}, "epochs must be at least 1"),
    "epochs 2.5": ({"epochs": 2.5}, "epochs must be an integer"),
    "batch -1": ({"batch_size": -1}, "batch_size must be at least 1"),
    "accumulation 0": ({"gradient_accumulation_steps": 0}, "must be at least 1"),
    "keep 0": ({"keep_checkpoints": 0}, "keep_checkpoints must be at least 1"),
    "warmup -1": ({"warmup_steps": -1}, "warmup_steps must be at least 0"),
    "workers -1": ({"num_workers": -1}, "num_workers must be at least 0"),
    "checkpoint_every -1": ({"checkpoint_every": -1}, "checkpoint_every must be at least 0"),
    "seed 2**32": ({"seed": 2**32}, "seed must be at most"),
    "split_seed -1": ({"split_seed": -1}, "split_seed must be at least 0"),
    "val_fraction 0": ({"val_fraction": 0.0}, "val_fraction must be greater than 0"),
    "val_fraction nan": ({"val_fraction": math.nan}, "val_fraction must be a finite number"),
    "margin 'x'": ({"margin": "x"}, "margin must be a number, None or 'manifest'"),
    "margin inf": ({"margin": math.inf}, "margin must be a finite number"),
    "mixed fp8": ({"mixed_precision": "fp8"}, "mixed_precision must be one of"),
    "objective bogus": ({"objective": "l1"}, "objective must be one of"),
    "stay_close nan": ({"stay_close": math.nan}, "stay_close must be a finite number"),
    "no_harm -1": ({"no_harm": -1.0}, "no_harm must be at least 0"),
    "reward_steps 1001": ({"reward_steps": 1001}, "reward_steps must be at most 1000"),
    "cpu 'yes'": ({"cpu": "yes"}, "cpu must be true or false"),
}


@pytest.mark.parametrize("changes, message", TRAIN_MORE.values(), ids=TRAIN_MORE.keys())
def test_train_config_refuses_more(changes: dict, message: str, tmp_path: Path) -> None:
    _refused_call(lambda: TrainConfig(dataset=tmp_path, out=tmp_path / "run", **changes), message)


def test_train_lr_scheduler_bogus_through_the_cli(tmp_path: Path) -> None:
    code, output = run_cli("train", tmp_path, "--out", tmp_path / "run", "--lr-scheduler", "bogus")
    assert_refused(code, output, "lr_scheduler must be one of", "'bogus'")


def test_train_fp16_on_the_cpu_is_refused_not_recorded(tmp_path: Path) -> None:
    """Before: accelerate ignored fp16 on the CPU while train_config.json recorded it."""
    from npd_fixtures import write_synthetic_dataset

    from golden_noise.train import train

    data = write_synthetic_dataset(tmp_path / "npd", n_prompts=4, seeds_per_prompt=2)
    config = TrainConfig(dataset=data, out=tmp_path / "run", mixed_precision="fp16", cpu=True,
                         batch_size=2, epochs=1, log_with="none", progress=False)  # fmt: skip
    _refused_call(lambda: train(config), "fp16 needs a GPU")
    assert not (tmp_path / "run" / "train_config.json").exists()


# --- the toy world's own commands ------------------------------------------------------------
TOY_RECIPES = {
    # --vae-lr nan and --batch-size 0 were tracebacks deep in training
    "vae_lr nan": ({"vae_lr": math.nan}, "vae_lr must be a finite number"),
    "vae_lr 0": ({"vae_lr": 0.0}, "vae_lr must be greater than 0"),
    "unet_lr inf": ({"unet_lr": math.inf}, "unet_lr must be a finite number"),
    "unet_lr -1": ({"unet_lr": -1.0}, "unet_lr must be greater than 0"),
    "batch 0": ({"batch_size": 0}, "batch_size must be at least 1; got 0"),
    "batch -4": ({"batch_size": -4}, "batch_size must be at least 1"),
    "vae_steps 0": ({"vae_steps": 0}, "vae_steps must be at least 1"),
    "unet_steps 0": ({"unet_steps": 0}, "unet_steps must be at least 1"),
    "unet_steps 1e12": ({"unet_steps": 10**12}, "unet_steps must be at most"),
    "checkpoint_every 0": ({"checkpoint_every": 0}, "checkpoint_every must be at least 1"),
    "warmup -1": ({"warmup_steps": -1}, "warmup_steps must be at least 0"),
    "kl nan": ({"kl_weight": math.nan}, "kl_weight must be a finite number"),
    "kl -1": ({"kl_weight": -1.0}, "kl_weight must be at least 0"),
    "cfg_drop 2": ({"cfg_drop": 2.0}, "cfg_drop must be at most 1"),
    "ema 1.5": ({"ema_decay": 1.5}, "ema_decay must be at most 1"),
    "ema nan": ({"ema_decay": math.nan}, "ema_decay must be a finite number"),
    "threads 0": ({"threads": 0}, "threads must be at least 1"),
    "seed -1": ({"seed": -1}, "seed must be at least 0"),
    "tiny 'no'": ({"tiny": "no"}, "tiny must be true or false"),
}


@pytest.mark.parametrize("changes, message", TOY_RECIPES.values(), ids=TOY_RECIPES.keys())
def test_toy_recipe_refuses(changes: dict, message: str) -> None:
    from golden_noise.toy.recipe import ToyRecipe

    _refused_call(lambda: ToyRecipe(**changes), message)


REWARD_RECIPES = {
    # --lr -1 failed only after ~60 s of drawing images
    "lr -1": ({"lr": -1.0}, "lr must be greater than 0"),
    "lr 0": ({"lr": 0.0}, "lr must be greater than 0"),
    "lr nan": ({"lr": math.nan}, "lr must be a finite number"),
    "lr inf": ({"lr": math.inf}, "lr must be a finite number"),
    "images 10": ({"images": 10}, "images must be at least 512"),
    "epochs 0": ({"epochs": 0}, "epochs must be at least 1"),
    "batch 0": ({"batch_size": 0}, "batch_size must be at least 1"),
    "width 12": ({"width": 12}, "width must be a multiple of 8"),
}


@pytest.mark.parametrize("changes, message", REWARD_RECIPES.values(), ids=REWARD_RECIPES.keys())
def test_reward_recipe_refuses(changes: dict, message: str) -> None:
    from golden_noise.toy.recipe import RewardRecipe

    _refused_call(lambda: RewardRecipe(**changes), message)


TOY_CLI = {
    "toy-train vae-lr nan": (["toy-train", "--vae-lr", "nan"], "vae_lr must be a finite"),
    "toy-train batch 0": (["toy-train", "--batch-size", "0"], "batch_size must be at least 1"),
    "toy-reward lr -1": (["toy-reward", "--lr", "-1"], "lr must be greater than 0"),
    # 0 seeds printed a table of NaN rates, exit 0; steps 0 was a traceback; guidance nan ran
    "toy-eval seeds 0": (["toy-eval", "--seeds", "0"], "seeds must be at least 1; got 0"),
    "toy-eval seeds -2": (["toy-eval", "--seeds", "-2"], "seeds must be at least 1"),
    "toy-eval steps 0": (["toy-eval", "--steps", "0"], "steps must be at least 1; got 0"),
    "toy-eval steps -1": (["toy-eval", "--steps", "-1"], "steps must be at least 1"),
    "toy-eval guidance nan": (["toy-eval", "--guidance", "nan"], "guidance must be a finite"),
    "toy-eval guidance -1": (["toy-eval", "--guidance", "-1"], "guidance must be at least 0"),
}


TOY_CLI |= {
    # -1 stopped the UNet phase after one step and wrote an untrained pipeline/, exit 0;
    # nan dropped the cap
    "toy-train minutes -1": (["toy-train", "--minutes", "-1"], "minutes must be greater than 0"),
    "toy-train minutes 0": (["toy-train", "--minutes", "0"], "minutes must be greater than 0"),
    "toy-train minutes nan": (["toy-train", "--minutes", "nan"], "minutes must be a finite"),
}


@pytest.mark.parametrize("args, message", TOY_CLI.values(), ids=TOY_CLI.keys())
def test_toy_commands_refuse(args: list[str], message: str, tmp_path: Path) -> None:
    out = ["--out", tmp_path / "run"] if args[0] != "toy-eval" else []
    code, output = run_cli(*args, *out)
    assert_refused(code, output, message)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("option", ["--json", "--grid"])
def test_toy_eval_never_overwrites_a_file(option: str, tmp_path: Path) -> None:
    """Before: `toy-eval --json afile.txt` / `--grid mine.png` replaced the user's file."""
    mine = tmp_path / "mine.png"
    mine.write_text("hello")
    code, output = run_cli("toy-eval", "--seeds", "1", "--steps", "1", option, mine)
    assert_refused(code, output, f"{option} {mine} already exists")
    assert mine.read_text() == "hello"
    code, output = run_cli(
        "toy-eval", "--seeds", "1", "--steps", "1", option, tmp_path / "no" / "x"
    )
    assert_refused(code, output, f"expected an existing folder {tmp_path / 'no'}")


# --- collect's own library door ---------------------------------------------------------------
COLLECT_MORE = {
    # --height 0 silently became 32
    "height 0": (["--height", "0"], ["height must be at least 1; got 0"]),
    "width -8": (["--width", "-8"], ["width must be at least 1; got -8"]),
    "batch-size 0": (["--batch-size", "0"], ["batch_size must be >= 1; got 0"]),
    "generation-batch-size 0": (["--generation-batch-size", "0"], ["generation_batch_size"]),
    "rows-per-shard 0": (["--rows-per-shard", "0"], ["rows_per_shard must be at least 1"]),
    "max-rows 0": (["--max-rows", "0"], ["max_rows must be at least 1; got 0"]),
    "seed-offset 2**63": (["--seed-offset", str(2**63)], ["seed offset must be at most"]),
    "seeds-per-prompt 0": (["--seeds-per-prompt", "0"], ["seeds per prompt must be >= 1"]),
    "prompts huge": ([], ["between 1 and 10000000"]),
}


@pytest.mark.parametrize("args, named", COLLECT_MORE.values(), ids=COLLECT_MORE.keys())
def test_collect_refuses_more(args: list[str], named: list[str], tmp_path: Path) -> None:
    out = tmp_path / "npd"
    prompts = "toy:train:99999999999" if not args else "toy:train:2"
    code, output = run_cli("collect", "-p", prompts, "--out", out, "--no-progress", *args)
    assert_refused(code, output, *named)
    assert not (out / "manifest.json").exists()


def test_a_seed_plan_past_int64_leaves_no_folder_behind(tmp_path: Path) -> None:
    """Before: refused after manifest.json, prompts.jsonl, the lock file and empty rows/ and
    embeddings/ were written into the new --out."""
    out = tmp_path / "npd"
    code, output = run_cli("collect", "-p", "toy:train:2", "--steps", "2", "--out", out,
                           "--no-progress", "--seed-offset", str(2**63 - 1))  # fmt: skip
    assert_refused(code, output, "reaches seed 9223372036854775808")
    assert not out.exists()


def test_long_lists_in_messages_show_the_first_few_and_count_the_rest():
    from golden_noise.core.errors import first_few

    assert first_few([f"r{i}" for i in range(7)]) == "r0, r1, r2, r3, r4 and 2 more"
    assert first_few(["a", "b", "c"], 3) == "a, b, c"
