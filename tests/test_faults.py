"""Fault tests that stay: a killed evaluate, a full disk under collect, planted pickles.

Their companions live beside their features: kill -9 at random points of collect
(test_collect.py), of the dataset writer (test_dataset.py) and of train, mid step and mid
checkpoint (test_train.py), each resumed to the uninterrupted run's rows or weights, and a
planted pickle in every file of a training checkpoint (test_train.py).
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from npd_fixtures import write_synthetic_dataset
from safetensors.torch import load_file
from tiny_pipelines import tiny_npnet

from golden_noise.collection.collect import SeedPlan
from golden_noise.core.atomic import atomic_directory, recover_directory
from golden_noise.core.errors import GoldenNoiseError
from golden_noise.dataset import DatasetManifest, NoisePromptDataset, RowTable
from golden_noise.dataset.shards import list_shards
from golden_noise.npnet import NPNet

TESTS = Path(__file__).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
CLI = [sys.executable, "-c", "from golden_noise.cli import app; app()"]


def _evaluate(out: Path) -> list[str]:
    return [
        *CLI, "evaluate", "--prompts", "toy:heldout:4", "--seeds", "0-1", "--steps", "3",
        "--scorers", "toy-soft", "--batch-size", "2", "--out", str(out), "--no-progress",
    ]  # fmt: skip


def test_evaluate_killed_mid_generation_resumes_to_the_uninterrupted_result(
    tmp_path: Path,
) -> None:
    out, images = tmp_path / "killed", tmp_path / "killed" / "images"
    reference = subprocess.run(
        _evaluate(tmp_path / "reference"), env=ENV, capture_output=True, text=True
    )
    assert reference.returncode == 0, reference.stderr[-2000:]
    process = subprocess.Popen(
        _evaluate(out), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while process.poll() is None and len(list(images.glob("*.png"))) < 4:
        assert time.monotonic() < deadline, "evaluate never wrote an image"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    written = len(list(images.glob("*.png")))
    assert 0 < written < 24, written  # 8 samples x 3 arms: killed part-way
    # a kill can land mid-write: plant such a leftover for an image the resume must write
    lost = sorted(
        {p.name for p in (tmp_path / "reference" / "images").iterdir()}
        - {p.name for p in images.iterdir()}
    )[0]
    (images / f".tmp-0123456789ab-{lost}").write_bytes(b"half a png")
    resumed = subprocess.run(_evaluate(out), env=ENV, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    # Images are written whole (temp + rename), the kill leaves no temp file, and the resumed
    # folder scores what the uninterrupted one does: images lost 0, duplicated 0, corrupt 0.
    assert not [p for p in images.iterdir() if p.name.startswith(".")]
    assert sorted(p.name for p in images.iterdir()) == sorted(
        p.name for p in (tmp_path / "reference" / "images").iterdir()
    )
    ours = json.loads((out / "metrics.json").read_text())["summary"]
    theirs = json.loads((tmp_path / "reference" / "metrics.json").read_text())["summary"]
    assert json.dumps(ours) == json.dumps(theirs)


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 2 MB tmpfs, or a skip where mounting is not allowed."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_full_disk_under_collect_then_resume_leaves_every_row_once_and_no_corrupt_shard(
    small_disk: Path,
) -> None:
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (2048 * 1024 - 40 * 1024))  # leave ~40 kB: a few shards
    out = small_disk / "npd"
    job = [sys.executable, str(TESTS / "collect_job.py"), str(out), "16", "4"]
    full = subprocess.run(job, env=ENV, capture_output=True, text=True)
    assert full.returncode != 0
    assert "No space left on device" in full.stderr or "StorageFull" in full.stderr
    assert "GoldenNoiseError" in full.stderr  # one clear error, not a bare OSError
    before = len(RowTable.load(out, DatasetManifest.load(out)))
    filler.unlink()  # space is freed; the same command resumes
    resumed = subprocess.run(job, env=ENV, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    table = RowTable.load(out, DatasetManifest.load(out))
    keys = sorted(
        zip(table.columns["prompt_index"].tolist(), table.columns["seed"].tolist(), strict=True)
    )
    expected = sorted(SeedPlan(per_prompt=4).keys(16))
    lost = len(set(expected) - set(keys))
    duplicated = table.duplicates_dropped
    corrupt = 0
    for shard in list_shards(out / "rows") + list_shards(out / "embeddings"):
        try:
            load_file(str(shard))
        except Exception:  # any unreadable shard counts
            corrupt += 1
    assert (lost, duplicated, corrupt) == (0, 0, 0), (before, lost, duplicated, corrupt)
    assert keys == expected
    assert not [p for p in (out / "rows").iterdir() if p.name.startswith(".tmp")]


class PlantedPayload:
    """Unpickling this runs a shell command that creates `marker`: what a hostile file does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _plant_npnet_pth(tmp_path: Path, payload: object) -> None:
    torch.save({"unet_svd": payload}, tmp_path / "npnet.pth")
    NPNet.from_pretrained(tmp_path / "npnet.pth")


def _plant_npnet_folder(tmp_path: Path, payload: object) -> None:
    tiny_npnet(32).save_pretrained(tmp_path / "net")
    torch.save(payload, tmp_path / "net" / "model.safetensors")
    NPNet.from_pretrained(tmp_path / "net")


def _plant_scorer_checkpoint(tmp_path: Path, payload: object) -> None:
    from golden_noise.core.weights import read_tensors

    torch.save({"state_dict": payload}, tmp_path / "scorer.pt")
    read_tensors(tmp_path / "scorer.pt", "state_dict")


def _plant_dataset_shard(tmp_path: Path, payload: object) -> None:
    root = write_synthetic_dataset(tmp_path / "npd", n_prompts=4, seeds_per_prompt=2)
    torch.save(payload, list_shards(root / "rows")[0])
    data = NoisePromptDataset(root)
    data[0]


def _plant_embedding_shard(tmp_path: Path, payload: object) -> None:
    root = write_synthetic_dataset(tmp_path / "npd", n_prompts=4, seeds_per_prompt=2)
    torch.save(payload, list_shards(root / "embeddings")[0])
    data = NoisePromptDataset(root)
    data[0]


PLANTS = {
    "npnet .pth": _plant_npnet_pth,
    "npnet folder": _plant_npnet_folder,
    "scorer checkpoint": _plant_scorer_checkpoint,
    "dataset rows shard": _plant_dataset_shard,
    "dataset embeddings shard": _plant_embedding_shard,
}


@pytest.mark.parametrize("plant", PLANTS.values(), ids=PLANTS.keys())
def test_a_planted_pickle_in_a_file_the_project_reads_never_runs(plant, tmp_path: Path) -> None:
    marker = tmp_path / "payload-ran"
    probe = tmp_path / "probe.pkl"
    torch.save(PlantedPayload(marker), probe)
    torch.load(probe, weights_only=False)
    assert marker.exists()  # the payload is live: full unpickling runs it
    marker.unlink()
    with pytest.raises(GoldenNoiseError):
        plant(tmp_path, PlantedPayload(marker))
    assert not marker.exists()


# === a refused run leaves the previous one exactly as it was ==================================
def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _toy_generation(dtype: str = "float32", batch_size: int = 4):
    from golden_noise.adapters.loading import builtin_pipeline, pipeline_from_spec
    from golden_noise.evaluation.evaluate import Generation
    from golden_noise.generation import arms
    from golden_noise.generation.generate import GoldenNoise

    pipe = pipeline_from_spec("toy", dtype=dtype, device="cpu")
    pipe.set_progress_bar_config(disable=True)
    golden = GoldenNoise(builtin_pipeline("toy").npnet(), pipe)
    made = {"standard": arms.standard(), "golden": arms.golden(golden)}
    return Generation(pipe, made, {"num_inference_steps": 2, "guidance_scale": 2.0}, batch_size)


def _evaluate_into(folder: Path, prompts: list[str], generation=None, **kw):
    from golden_noise.evaluation.evaluate import evaluate
    from golden_noise.generation.arms import make_samples
    from golden_noise.scorers import get_scorer

    return evaluate(
        folder, [get_scorer("toy-soft")], samples=make_samples(prompts, [0, 1]),
        generation=generation or _toy_generation(), run={"prompts": "x"},
        show_progress=False, resamples=50, **kw,
    )  # fmt: skip


A_PROMPTS, B_PROMPTS = ["a red circle", "a blue square"], ["a green star", "a red square"]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("eval") / "a"
    _evaluate_into(folder, A_PROMPTS)
    return folder


@pytest.fixture
def previous(evaluated: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(evaluated, tmp_path / "previous"))


REFUSALS = {
    # other prompts: index.jsonl was rewritten with B's prompts before the staleness check,
    # and --rescore then scored A's images against B's prompts (soft 0.0, exit 0)
    "other prompts": (lambda f: _evaluate_into(f, B_PROMPTS), "prompts or seeds"),
    # another dtype: bf16 images were reported in an fp32 report
    "other dtype": (
        lambda f: _evaluate_into(f, A_PROMPTS, _toy_generation("bfloat16")),
        "dtype: 'torch.float32' -> 'torch.bfloat16'",
    ),
    "other steps": (
        lambda f: _evaluate_into(
            f,
            A_PROMPTS,
            type(_toy_generation())(
                **{**vars(_toy_generation()), "call": {"num_inference_steps": 3}}
            ),
        ),
        "num_inference_steps",
    ),  # fmt: skip
    "no scorer": (
        lambda f: __import__("golden_noise.evaluation.evaluate", fromlist=["x"]).evaluate(
            f, [], samples=[], generation=_toy_generation()
        ),
        "at least one scorer",
    ),
}


@pytest.mark.parametrize("refused, named", REFUSALS.values(), ids=REFUSALS.keys())
def test_a_refused_evaluate_leaves_the_previous_run_exactly_as_it_was(
    refused, named: str, previous: Path
) -> None:
    from golden_noise.evaluation.evaluate import read_index

    before = _snapshot(previous)
    with pytest.raises(GoldenNoiseError, match=named.replace("(", r"\(").replace("'", "'")):
        refused(previous)
    assert _snapshot(previous) == before
    samples, _ = read_index(previous)
    assert [s.prompt for s in samples] == [p for p in A_PROMPTS for _ in (0, 1)]


def test_images_without_a_record_of_what_made_them_are_not_reused(previous: Path) -> None:
    """Before: no run.json meant "anything goes": any settings reused the old images."""
    (previous / "run.json").unlink()
    before = _snapshot(previous)
    with pytest.raises(GoldenNoiseError, match="holds images but no record of what made them"):
        _evaluate_into(previous, A_PROMPTS)
    assert _snapshot(previous) == before


@pytest.mark.parametrize("theirs", [{"run.json": '{"mine": "notes"}'}, {"run.json": "{}"}])
def test_a_run_json_that_is_not_an_evaluate_record_is_never_overwritten(
    tmp_path: Path, theirs: dict[str, str]
) -> None:
    """Before: any file named run.json made the folder an evaluate run's; the user's run.json,
    report.html and metrics.json were replaced, exit 0."""
    folder = tmp_path / "mine"
    folder.mkdir()
    for name, text in {**theirs, "report.html": "<p>my own</p>", "metrics.json": "{}"}.items():
        (folder / name).write_text(text)
    before = _snapshot(folder)
    with pytest.raises(GoldenNoiseError, match="not the record of an evaluate run"):
        _evaluate_into(folder, A_PROMPTS)
    assert _snapshot(folder) == before


def test_a_truncated_image_is_named(previous: Path) -> None:
    """Before: PIL's 'image file is truncated' named no file."""
    from golden_noise.evaluation.evaluate import evaluate
    from golden_noise.scorers import get_scorer

    image = sorted((previous / "images").glob("*.png"))[1]
    image.write_bytes(image.read_bytes()[:120])
    with pytest.raises(GoldenNoiseError, match=f"cannot read image {image}"):
        evaluate(previous, [get_scorer("toy-soft")], show_progress=False, resamples=50)


def _rescore(folder: Path):
    from golden_noise.evaluation.evaluate import evaluate
    from golden_noise.scorers import get_scorer

    return evaluate(folder, [get_scorer("toy-soft")], show_progress=False, resamples=50)


def _edit_index(folder: Path, change) -> None:
    path = folder / "index.jsonl"
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    change(entries)
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))


def _swap_prompts(entries: list[dict]) -> None:
    entries[0]["prompt"], entries[2]["prompt"] = entries[2]["prompt"], entries[0]["prompt"]


def _swap_files(a: Path, b: Path) -> None:
    data = a.read_bytes()
    a.write_bytes(b.read_bytes())
    b.write_bytes(data)


def _swap_stripped(a: Path, b: Path) -> None:
    from PIL import Image

    with Image.open(a) as first, Image.open(b) as second:
        first, second = first.convert("RGB"), second.convert("RGB")
    first.save(b)
    second.save(a)


def _change_pixel(path: Path) -> None:
    from PIL import Image

    with Image.open(path) as image:
        edited = image.copy()
    edited.putpixel((0, 0), (255, 0, 255))
    edited.save(path, pnginfo=None)


def _edit_and_forge_digest(folder: Path, name: str) -> None:
    """An image edited in a tool that drops text chunks, its digest in the index rewritten."""
    import hashlib

    _change_pixel(folder / name)
    digest = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    prompt_index, seed, arm = name.removeprefix("images/").removesuffix(".png").split("-")

    def forge(entries: list[dict]) -> None:
        (entry,) = [
            e
            for e in entries
            if (e["prompt_index"], f"seed{e['seed']}") == (int(prompt_index), seed)
        ]
        entry["sha256"][arm] = digest

    _edit_index(folder, forge)


IMAGES = "images/00000-seed{}-{}.png"
RESCORE_EDITS = {
    # each image was scored against the other line's prompt, exit 0
    "prompts swapped between index lines": (
        lambda f: _edit_index(f, _swap_prompts),
        "index.jsonl lists 4 samples that are not the ones .*run.json records",
    ),
    # the deleted sample silently left the report
    "an index line deleted": (
        lambda f: _edit_index(f, lambda entries: entries.pop(1)),
        "index.jsonl lists 3 samples that are not the ones",
    ),
    "images swapped between arms": (
        lambda f: _swap_files(f / IMAGES.format(0, "standard"), f / IMAGES.format(0, "golden")),
        r'00000-seed0-standard.png was made for {"arm": "golden".*lists it as {"arm": "standard"',
    ),
    "images swapped between seeds": (
        lambda f: _swap_files(f / IMAGES.format(0, "golden"), f / IMAGES.format(1, "golden")),
        r'00000-seed0-golden.png was made for .*"seed": 1}; index.jsonl lists it as .*"seed": 0}',
    ),
    # re-saved by an image tool (no text chunks), then swapped: scored as named, exit 0
    "images swapped, text chunks stripped": (
        lambda f: _swap_stripped(f / IMAGES.format(0, "golden"), f / IMAGES.format(1, "golden")),
        r"00000-seed0-golden.png is not the file this run's evaluate scored: its SHA-256 differs",
    ),
    "one pixel changed": (
        lambda f: _change_pixel(f / IMAGES.format(1, "standard")),
        r"00000-seed1-standard.png is not the file this run's evaluate scored",
    ),
    # scored as it was, exit 0: the digest matched and the missing chunk was read as an old
    # image's
    "an image edited, its text chunks stripped and its digest forged": (
        lambda f: _edit_and_forge_digest(f, IMAGES.format(1, "golden")),
        r"00000-seed1-golden.png does not record what it was made for, as every image of this "
        r"run did \(.*run.json: images_record_made_for\)",
    ),
    # the per-group statistics moved the line's images into another group, exit 0
    "a prompt's group edited": (
        lambda f: _edit_index(f, lambda entries: entries[0].update(group="pair")),
        "index.jsonl lists other prompt groups than .*run.json records",
    ),
    # the 2-step images reported as 3-step ones, exit 0
    "run.json's sampler steps edited": (
        lambda f: _record_steps(f, 3),
        r"00000-seed0-standard.png was made with other settings than .*run.json records",
    ),
    # the record gone too, the line's four images silently left the statistics, exit 0
    "run.json deleted and an index line deleted": (
        lambda f: ((f / "run.json").unlink(), _edit_index(f, lambda entries: entries.pop(1))),
        "has no run.json, the record an evaluate run writes",
    ),
    "an index line deleted, run.json without its record of the images": (
        lambda f: (_drop_made_by(f), _edit_index(f, lambda entries: entries.pop(1))),
        r"index.jsonl does not list 2 images of the run \(images/00000-seed1-golden.png",
    ),
}


def _record_steps(folder: Path, steps: int) -> None:
    """run.json edited to say its images were made with `steps` sampler steps."""
    record = json.loads((folder / "run.json").read_text())
    record["made_by"]["call"]["num_inference_steps"] = steps
    (folder / "run.json").write_text(json.dumps(record))


def _drop_made_by(folder: Path) -> None:
    """run.json as an evaluate from before its record of the images wrote it."""
    record = json.loads((folder / "run.json").read_text())
    record.pop("made_by")
    (folder / "run.json").write_text(json.dumps(record))


@pytest.mark.parametrize("edit, named", RESCORE_EDITS.values(), ids=RESCORE_EDITS.keys())
def test_rescore_refuses_an_index_or_images_changed_after_the_run(
    edit, named: str, previous: Path
) -> None:
    edit(previous)
    before = _snapshot(previous)
    with pytest.raises(GoldenNoiseError, match=named):
        _rescore(previous)
    assert _snapshot(previous) == before


def test_a_refused_rescore_leaves_the_run_record_as_it_was(previous: Path) -> None:
    """Before: run.json took the new scorers before the images were checked, so a refused
    re-score left run.json naming scorers its metrics.json does not have."""
    from golden_noise.evaluation.evaluate import evaluate
    from golden_noise.scorers import get_scorer

    (previous / IMAGES.format(1, "golden")).unlink()
    before = _snapshot(previous)
    with pytest.raises(GoldenNoiseError, match="1 are missing"):
        evaluate(previous, [get_scorer("toy-correct")], run={"scorers": "toy-correct"},
                 show_progress=False, resamples=50)  # fmt: skip
    assert _snapshot(previous) == before


def _resave_as(source: Path, target: Path) -> None:
    """`source`'s pixels saved over `target` by an image tool: no text chunks."""
    from PIL import Image

    with Image.open(source) as image:
        image.convert("RGB").save(target)


def test_a_resume_refuses_an_image_re_saved_without_its_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: digests are recorded once a run has scored, so after a kill an image replaced
    by a re-save (no text chunks) was reused as the run's: golden scored as standard."""
    import golden_noise.evaluation.evaluate as module

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the run stops after generating, before scoring

    folder = tmp_path / "killed"
    with monkeypatch.context() as patch:
        patch.setattr(module, "score_images", killed)
        with pytest.raises(KeyboardInterrupt):
            _evaluate_into(folder, A_PROMPTS)
    assert "sha256" not in (folder / "index.jsonl").read_text()
    _resave_as(folder / IMAGES.format(0, "standard"), folder / IMAGES.format(0, "golden"))
    with pytest.raises(GoldenNoiseError, match="00000-seed0-golden.png does not record what"):
        _evaluate_into(folder, A_PROMPTS)


def test_a_resume_refuses_images_made_with_other_settings_than_run_json_says(
    previous: Path,
) -> None:
    """Before: with run.json edited to 3 steps, a 3-step resume took the 2-step images as its
    own and reported them as 3-step results, exit 0."""
    _record_steps(previous, 3)
    generation = _toy_generation()
    generation.call = {**generation.call, "num_inference_steps": 3}
    with pytest.raises(GoldenNoiseError, match="was made with other settings than"):
        _evaluate_into(previous, A_PROMPTS, generation)


def test_a_resume_refuses_images_whose_index_is_gone(previous: Path) -> None:
    """Before: with index.jsonl deleted, its digests went with it and a replaced image (its
    text chunks kept) was reused and recorded as the run's."""
    (previous / "index.jsonl").unlink()
    before = _snapshot(previous)
    with pytest.raises(GoldenNoiseError, match="holds images and run.json but no index.jsonl"):
        _evaluate_into(previous, A_PROMPTS)
    assert _snapshot(previous) == before


def test_images_from_before_their_record_are_rescored_as_named(previous: Path) -> None:
    """An older evaluate wrote no text chunks and no digests: its images are scored as named,
    and the re-score records their digests."""
    from PIL import Image

    from golden_noise.evaluation.evaluate import recorded_hashes

    before = json.loads((previous / "metrics.json").read_text())["summary"]
    path = previous / IMAGES.format(0, "golden")
    with Image.open(path) as image:
        image.save(path)  # no text chunks: as an older evaluate wrote it
    _edit_index(previous, lambda entries: [e.pop("sha256") for e in entries])
    record = json.loads((previous / "run.json").read_text())
    assert record.pop("images_record_made_for") is True
    (previous / "run.json").write_text(json.dumps(record))
    assert recorded_hashes(previous) == {}
    after = json.loads(json.dumps(_rescore(previous)))
    assert after["overall"] == before["overall"]
    assert len(recorded_hashes(previous)) == 8
    # its norm ratio is unknown, the others keep their places (they pair samples across arms)
    assert after["norm_ratio"]["golden"] == [None, *before["norm_ratio"]["golden"][1:]]


def test_a_resume_refuses_an_image_changed_since_its_run(previous: Path) -> None:
    """Before: a resumed evaluate reused an edited image (text chunks kept) as its own."""
    _change_pixel(previous / IMAGES.format(0, "golden"))
    before = _snapshot(previous)
    with pytest.raises(GoldenNoiseError, match="00000-seed0-golden.png is not the file"):
        _evaluate_into(previous, A_PROMPTS)
    assert _snapshot(previous) == before


def test_a_refused_resume_names_each_changed_setting_once(tmp_path: Path) -> None:
    """Before: "(num_inference_steps: 2 -> 3, num_inference_steps: 2 -> 3)": the steps are
    in the call and in the CLI's run description."""
    from golden_noise.evaluation.evaluate import evaluate
    from golden_noise.generation.arms import make_samples
    from golden_noise.scorers import get_scorer

    def run(steps: int) -> None:
        generation = _toy_generation()
        generation.call = {**generation.call, "num_inference_steps": steps}
        evaluate(tmp_path / "ev", [get_scorer("toy-soft")], generation=generation,
                 samples=make_samples(["a red circle"], [0]), show_progress=False,
                 run={"num_inference_steps": steps}, resamples=50)  # fmt: skip

    run(2)
    with pytest.raises(GoldenNoiseError, match=r"settings \(num_inference_steps: 2 -> 3\); "):
        run(3)


def test_the_same_evaluate_again_resumes(previous: Path) -> None:
    before = json.loads((previous / "metrics.json").read_text())["summary"]
    again = _evaluate_into(previous, A_PROMPTS)
    assert json.dumps(again, sort_keys=True) == json.dumps(before, sort_keys=True)


def test_generate_refuses_a_folder_that_holds_images(tmp_path: Path) -> None:
    """Before: a second generate replaced 000-s0.png and prompts.txt no longer listed the
    first run's images."""
    from golden_noise.generation.files import check_new_output

    out = tmp_path / "images"
    out.mkdir()
    check_new_output(out, 8)  # an empty folder is fine
    for name in ("prompts.txt", "000-s0.png", "003-s12-golden.png", "001-compare.png", "grid.png"):
        (out / name).write_bytes(b"x")
        with pytest.raises(GoldenNoiseError, match=f"already holds generated images .*{name}"):
            check_new_output(out, 8)
        (out / name).unlink()
    (out / "notes.md").write_text("mine")
    check_new_output(out, 8)  # files that are not ours are left alone


# === resumes record and compare everything that changes the numbers ==========================
def _collect(out: Path, dtype: str = "float32", prompts: list[str] = A_PROMPTS, **kw):
    from golden_noise.adapters.loading import pipeline_from_spec
    from golden_noise.collection.collect import collect
    from golden_noise.scorers import get_scorer
    from golden_noise.teachers import SamplerSettings

    pipe = pipeline_from_spec("toy", dtype=dtype, device="cpu")
    pipe.set_progress_bar_config(disable=True)
    return collect(pipe, prompts, out, get_scorer("toy-soft"),
                   sampler=SamplerSettings(steps=2, guidance=2.0), progress=False,
                   **{"batch_size": 2, **kw})  # fmt: skip


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("collect") / "npd"
    _collect(out)
    return out


def test_collect_records_its_dtype_and_refuses_a_resume_in_another(
    collected: Path, tmp_path: Path
) -> None:
    """Before: bf16 rows were mixed with fp32 ones (targets 0.15 apart), exit 0."""
    import shutil

    out = Path(shutil.copytree(collected, tmp_path / "npd"))
    assert DatasetManifest.load(out).sampler["dtype"] == "float32"
    before = _snapshot(out)
    with pytest.raises(GoldenNoiseError, match="'dtype': 'bfloat16'"):
        _collect(out, "bfloat16")
    assert _snapshot(out) == before


def test_collect_refuses_to_resume_over_a_shard_changed_after_it_was_written(
    collected: Path, tmp_path: Path
) -> None:
    """Before: a shard with a flipped latent byte resumed as "done" (train refused it later)."""
    import shutil

    out = Path(shutil.copytree(collected, tmp_path / "npd"))
    _flip(list_shards(out / "rows")[0], "target", at=5)
    before = _snapshot(out)
    with pytest.raises(GoldenNoiseError, match="its contents do not match the digest"):
        _collect(out)
    assert _snapshot(out) == before


def test_collect_refuses_to_resume_a_dataset_that_does_not_record_its_dtype(
    collected: Path, tmp_path: Path
) -> None:
    import shutil

    out = Path(shutil.copytree(collected, tmp_path / "npd"))
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["sampler"]["dtype"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(GoldenNoiseError, match="does not record the pipeline dtype"):
        _collect(out)
    # a dataset from before the record still opens for reading
    assert len(NoisePromptDataset(out)) == 2


THREE = [*A_PROMPTS, "a green triangle"]
SMALL_SHARDS = {"prompts": THREE, "seeds": SeedPlan(per_prompt=2), "batch_size": 4,
                "rows_per_shard": 1}  # fmt: skip


@pytest.fixture(scope="module")
def small_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three prompts x two seeds, collected in batches of four rows into one-row shards."""
    out = tmp_path_factory.mktemp("collect") / "npd"
    _collect(out, **SMALL_SHARDS)
    return out


def _rows(root: Path) -> dict[tuple[int, int], bytes]:
    """Every row's latents and scores, bit for bit, by (prompt_index, seed)."""
    found = {}
    for path in list_shards(root / "rows"):
        tensors = load_file(path)
        for i, key in enumerate(zip(tensors["prompt_index"].tolist(), tensors["seed"].tolist(),
                                    strict=True)):  # fmt: skip
            found[key] = b"".join(tensors[name][i].numpy().tobytes() for name in sorted(tensors))
    return found


def test_no_shard_holds_more_rows_than_rows_per_shard(small_shards: Path, tmp_path: Path) -> None:
    """Before: `--rows-per-shard 1 --batch-size 4` wrote each batch as one shard of four rows,
    so a kill lost finished rows beyond what the option promises. The rows themselves are
    the same as with larger shards, bit for bit."""
    sizes = [len(load_file(path)["seed"]) for path in list_shards(small_shards / "rows")]
    assert sizes == [1] * 6
    _collect(tmp_path / "npd", **{**SMALL_SHARDS, "rows_per_shard": 4})
    assert [len(load_file(p)["seed"]) for p in list_shards(tmp_path / "npd" / "rows")] == [4, 2]
    assert _rows(small_shards) == _rows(tmp_path / "npd")


def test_a_shard_of_a_split_batch_that_fails_to_write_is_retried_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch of five rows goes out as shards of two; the second fails (a full disk): closing
    the writer retries what is left, never the shard already published."""
    from npd_fixtures import manifest, source_latents

    from golden_noise.dataset import DatasetWriter

    publish, calls = DatasetWriter._publish, []

    def second_fails(self, directory: Path, tensors: dict) -> None:
        calls.append(directory.name)
        if len(calls) == 2:
            raise GoldenNoiseError("no space left")
        publish(self, directory, tensors)

    monkeypatch.setattr(DatasetWriter, "_publish", second_fails)
    writer = DatasetWriter(tmp_path / "npd", manifest(), rows_per_shard=2)
    seeds = list(range(5))
    latents = source_latents([0] * 5, seeds)
    with pytest.raises(GoldenNoiseError, match="no space left"):
        writer.add(latents, latents, [0] * 5, seeds, [0.0] * 5, [1.0] * 5)
    writer.close()
    table = RowTable.load(tmp_path / "npd", manifest())  # refuses a row stored twice
    assert sorted(table.columns["seed"].tolist()) == seeds
    assert [len(load_file(p)["seed"]) for p in list_shards(tmp_path / "npd" / "rows")] == [2, 2, 1]


def test_rows_lost_with_their_ledger_are_named_then_collected_again(
    small_shards: Path, tmp_path: Path
) -> None:
    """Before: with the ledger and a shard deleted, train ran on 5 of the 6 rows without a
    word. A finished collect records it in the manifest; the same collect fills the gap."""
    import shutil

    out = Path(shutil.copytree(small_shards, tmp_path / "npd"))
    assert DatasetManifest.load(out).notes["finished_prompts"] == 3
    lost = list_shards(out / "rows")[4]
    key = tuple(int(load_file(lost)[name][0]) for name in ("prompt_index", "seed"))
    lost.unlink()
    _drop_ledger_entries(out, [f"rows/{lost.name}"])
    named = (
        f"1 of the 6 rows that its collect finished are missing (e.g. (prompt_index, seed) [{key}])"
    )
    with pytest.raises(GoldenNoiseError, match=re.escape(named)):
        NoisePromptDataset(out)
    _collect(out, **SMALL_SHARDS)  # the row is made again (alone in its batch: not bit for bit)
    assert _rows(out).keys() == _rows(small_shards).keys()
    assert len(NoisePromptDataset(out)) == 6


def test_an_unfinished_collect_is_read_as_short_as_it_is(tmp_path: Path) -> None:
    """A collect stopped part way (here by max_rows) records no finish: its rows are read as
    they are, and a shard deleted with the ledger cannot be told from a row not made yet."""
    out = tmp_path / "npd"
    _collect(out, **SMALL_SHARDS, max_rows=3)
    assert "finished_prompts" not in DatasetManifest.load(out).notes
    lost = list_shards(out / "rows")[0]
    lost.unlink()
    _drop_ledger_entries(out, [f"rows/{lost.name}"])
    assert len(NoisePromptDataset(out)) == 2


SMALL = {
    "backbone": "vit_tiny_patch16_224",
    "backbone_kwargs": {"img_size": 32, "patch_size": 8, "depth": 1, "embed_dim": 32,
                        "num_heads": 2},
    "backbone_input_size": 32, "svd_hidden": 16, "svd_mlp_hidden": 64,
}  # fmt: skip


def _train_config(data: Path, out: Path, **kw):
    from golden_noise.train import TrainConfig

    settings = dict(dataset=data, out=out, batch_size=4, epochs=1, lr=1e-3, margin=None,
                    val_fraction=0.25, npnet=dict(SMALL), log_with="none", progress=False,
                    cpu=True)  # fmt: skip
    return TrainConfig(**{**settings, **kw})


def test_a_resume_without_train_config_json_cannot_change_the_settings(tmp_path: Path) -> None:
    """Before: with train_config.json deleted, a resume took any batch size and lr."""
    from golden_noise.train import train

    data = write_synthetic_dataset(tmp_path / "npd", n_prompts=8, seeds_per_prompt=2)
    train(_train_config(data, tmp_path / "run"))
    (tmp_path / "run" / "train_config.json").unlink()
    for changes in ({"batch_size": 2}, {"lr": 0.5}, {}):
        with pytest.raises(GoldenNoiseError, match="holds checkpoints but no train_config.json"):
            train(_train_config(data, tmp_path / "run", epochs=2, **changes))


def test_a_run_without_checkpoints_is_not_trained_over_with_other_settings(tmp_path: Path) -> None:
    """Before: with checkpoints/ deleted, a train with another lr silently replaced best/,
    last/, metrics.jsonl and train_config.json."""
    import shutil

    from golden_noise.train import train

    data = write_synthetic_dataset(tmp_path / "npd", n_prompts=8, seeds_per_prompt=2)
    run = tmp_path / "run"
    train(_train_config(data, run))
    shutil.rmtree(run / "checkpoints")
    before = _snapshot(run)
    with pytest.raises(GoldenNoiseError, match=r"other settings .*lr: run 0\.001, now 0\.01"):
        train(_train_config(data, run, lr=0.01))
    assert _snapshot(run) == before
    (run / "train_config.json").unlink()  # weights with no record at all are not trained over
    with pytest.raises(GoldenNoiseError, match="holds best/, last/, metrics.* but no train_conf"):
        train(_train_config(data, run))
    assert not (run / "checkpoints").exists()


def test_a_users_metrics_files_are_not_trained_over(tmp_path: Path) -> None:
    """Before: a fresh --out holding a user's metrics.csv / metrics.jsonl (no best/, last/)
    had both replaced by the run's without a word."""
    from golden_noise.train import train

    data = write_synthetic_dataset(tmp_path / "npd", n_prompts=8, seeds_per_prompt=2)
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text("user\n")
    (run / "metrics.jsonl").write_text('{"u": 1}\n')
    before = _snapshot(run)
    with pytest.raises(GoldenNoiseError, match="holds metrics.csv, metrics.jsonl but no train_"):
        train(_train_config(data, run))
    assert _snapshot(run) == before


@pytest.mark.parametrize(
    "theirs, named",
    [
        ("checkpoints/backup_0/mine.txt", "holds backup_0, which are neither complete"),
        ("checkpoints/notes.txt", "holds notes.txt, which are neither complete"),
        ("checkpoints/checkpoint_7/notes.txt", "holds checkpoint_7, which are neither complete"),
    ],
)
def test_a_users_files_in_checkpoints_are_not_pruned(
    tmp_path: Path, theirs: str, named: str
) -> None:
    """Before: accelerate's pruning deleted a user's folder in checkpoints/ (or crashed on a
    file there with IndexError), and a checkpoint_N of the user's in a folder with no run
    record was deleted as an unfinished save."""
    from golden_noise.train import train

    data = write_synthetic_dataset(tmp_path / "npd", n_prompts=8, seeds_per_prompt=2)
    run = tmp_path / "run"
    (run / theirs).parent.mkdir(parents=True)
    (run / theirs).write_text("mine")
    before = _snapshot(run)
    with pytest.raises(GoldenNoiseError, match=named):
        train(_train_config(data, run))
    assert _snapshot(run) == before


def _pipeline_folder(path: Path, nudged: bool) -> Path:
    """The tiny toy pipeline saved at `path`, or the same with one UNet weight moved."""
    import shutil

    from test_demo import tiny_toy_pipeline

    pipe = tiny_toy_pipeline()
    if nudged:
        with torch.no_grad():
            next(pipe.unet.parameters()).add_(0.5)
    shutil.rmtree(path, ignore_errors=True)
    pipe.save_pretrained(path)
    return path


@pytest.mark.parametrize("command", ["collect", "evaluate"])
def test_a_resume_on_other_weights_under_the_same_pipeline_folder_is_refused(
    tmp_path: Path, command: str
) -> None:
    """Before: only the folder's path was recorded, so a resume after the folder's weights
    changed mixed two pipelines' rows (collect) or images (evaluate) with exit 0."""
    from cli_outcome import assert_refused, run_cli

    folder = _pipeline_folder(tmp_path / "pipe", nudged=False)
    prompts = tmp_path / "p.txt"
    prompts.write_text("a red circle\n")
    out = tmp_path / "out"
    args = [command, "--pipeline", folder, "-p", prompts, "--out", out, "--steps", "2"]
    if command == "collect":
        args += ["--margin", "-1"]
    else:
        tiny_npnet(8, size=8, text_tokens=16).save_pretrained(tmp_path / "net")
        args += ["--seeds", "0-1", "--scorers", "toy-soft", "--npnet", tmp_path / "net"]
    code, output = run_cli(*args)
    assert code == 0, output
    before = _snapshot(out)
    _pipeline_folder(folder, nudged=True)
    code, output = run_cli(*args)
    assert_refused(code, output, "pipeline_sha256")
    assert _snapshot(out) == before


def test_reward_training_on_a_dataset_whose_pipeline_folder_changed_is_refused(
    tmp_path: Path,
) -> None:
    """The reward objective trains through the pipeline the dataset names: after that
    folder's weights changed it would train through another model."""
    from cli_outcome import assert_refused, run_cli

    from golden_noise.toy.grammar import COLOURS, SHAPES

    folder = _pipeline_folder(tmp_path / "pipe", nudged=False)
    prompts = tmp_path / "p.txt"  # enough prompts for train's validation split
    prompts.write_text("".join(f"a {c} {s}\n" for c in COLOURS for s in SHAPES))
    data = tmp_path / "npd"
    args = ["--pipeline", folder, "-p", prompts, "--out", data, "--steps", "2", "--margin", "-1"]
    code, output = run_cli("collect", *args)
    assert code == 0, output
    _pipeline_folder(folder, nudged=True)
    code, output = run_cli(
        "train", data, "--out", tmp_path / "run", "--objective", "reward", "--unfiltered",
        "--epochs", "1", "--batch-size", "1", "--reward-steps", "2", "--log-with", "none",
    )  # fmt: skip
    assert_refused(code, output, "pipeline_sha256 differs")


def test_a_second_train_into_a_running_ones_folder_is_refused(tmp_path: Path) -> None:
    """Before: two trains on one --out both ran, pruning and overwriting each other's
    checkpoints until accelerate crashed with a traceback."""
    from golden_noise.core.locks import hold_lock
    from golden_noise.train import train

    data = write_synthetic_dataset(tmp_path / "npd", n_prompts=8, seeds_per_prompt=2)
    run = tmp_path / "run"
    train(_train_config(data, run))
    before = _snapshot(run)
    running = hold_lock(run / ".train-r00000.lock", "trains")  # the first run, still going
    try:
        with pytest.raises(GoldenNoiseError, match=r"another process \(pid \d+\) is already t"):
            train(_train_config(data, run))
    finally:
        running.release()
    assert _snapshot(run) == before


def test_a_refused_train_into_a_new_folder_leaves_nothing_behind(tmp_path: Path) -> None:
    """The run's lock is taken before anything is checked; a refusal removes it again."""
    from golden_noise.train import train

    data = write_synthetic_dataset(tmp_path / "npd", n_prompts=8, seeds_per_prompt=2)
    config = _train_config(data, tmp_path / "run")
    config.batch_size = 10_000
    with pytest.raises(GoldenNoiseError, match="one batch needs 10000"):
        train(config)
    assert not (tmp_path / "run").exists()


def test_a_dataset_without_its_manifest_is_not_added_to(tmp_path: Path) -> None:
    """Before: with manifest.json deleted, a collect with other settings resumed into the
    folder and wrote a manifest claiming its settings for every row, old rows included."""
    from npd_fixtures import manifest

    from golden_noise.dataset import DatasetWriter

    data = write_synthetic_dataset(tmp_path / "npd", n_prompts=4, seeds_per_prompt=2)
    (data / "manifest.json").unlink()
    before = _snapshot(data)
    with pytest.raises(GoldenNoiseError, match=r"holds \d+ shard\(s\) but no manifest.json"):
        DatasetWriter(data, manifest())
    after = {k: v for k, v in _snapshot(data).items() if ".writer-" not in str(k)}
    assert after == {k: v for k, v in before.items() if ".writer-" not in str(k)}


# === integrity of the dataset on disk ===================================================
def _tensor_bytes(path: Path, name: str) -> tuple[int, int]:
    """Where tensor `name`'s bytes lie in a safetensors file."""
    raw = path.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    begin, end = json.loads(raw[8 : 8 + size])[name]["data_offsets"]
    return 8 + size + begin, 8 + size + end


def _flip(path: Path, name: str, at: int = 0) -> None:
    start, _ = _tensor_bytes(path, name)
    raw = bytearray(path.read_bytes())
    raw[start + at] ^= 0x40
    path.write_bytes(bytes(raw))


def _save_without_digests(path: Path, change) -> None:
    """Save what change() makes of a shard's tensors again, without the digests."""
    from safetensors.torch import save_file

    tensors = load_file(path)
    change(tensors)
    save_file(tensors, str(path))


def _drop_ledger_entries(root: Path, names: list[str]) -> None:
    ledger = root / "ledger-r00000.json"
    entries = json.loads(ledger.read_text())
    ledger.write_text(json.dumps({k: v for k, v in entries.items() if k not in names}))


def _rewrite(path: Path, change) -> None:
    """Rewrite a shard as an older writer would: no digests, and no ledger entry for it; the
    manifest names it among the shards from before digests (as a writer that reopens an
    older dataset records them)."""
    _save_without_digests(path, change)
    root, name = path.parent.parent, f"{path.parent.name}/{path.name}"
    _drop_ledger_entries(root, [name])
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["notes"]["shards_without_digests"].append(name)
    (root / "manifest.json").write_text(json.dumps(manifest))


def _as_from_before_digests(root: Path) -> None:
    """Make a dataset what a writer from before digests left: no ledger, no record of one."""
    (root / "ledger-r00000.json").unlink()
    manifest = json.loads((root / "manifest.json").read_text())
    del manifest["notes"]["shards_without_digests"]
    (root / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture
def npd(tmp_path: Path) -> Path:
    return write_synthetic_dataset(tmp_path / "npd", n_prompts=4, seeds_per_prompt=4,
                                   rows_per_shard=4)  # fmt: skip


def _first_rows(root: Path) -> Path:
    return list_shards(root / "rows")[0]


def _copy_first_rows(root: Path, listed: bool) -> None:
    """Copy the first row shard to a new name; `listed`: and list it in the ledger too."""
    copy = root / "rows" / "r00000-000099.safetensors"
    copy.write_bytes(_first_rows(root).read_bytes())
    if listed:
        ledger = root / "ledger-r00000.json"
        entries = json.loads(ledger.read_text())
        entries["rows/" + copy.name] = entries["rows/" + _first_rows(root).name]
        ledger.write_text(json.dumps(entries))


DAMAGE = {
    # flipped bytes in a key column: collect "resumed" to 40 of 32 planned rows, exit 0
    "flipped seed byte": (lambda r: _flip(_first_rows(r), "seed", 1), "do not match the digest"),
    "flipped prompt byte": (
        lambda r: _flip(_first_rows(r), "prompt_index", 2),
        "do not match the digest",
    ),
    "flipped score byte": (
        lambda r: _flip(_first_rows(r), "score_target", 3),
        "do not match the digest",
    ),
    # a deleted shard: train ran on 24 of 32 rows without a word
    "deleted shard": (lambda r: _first_rows(r).unlink(), "published shards are missing"),
    "deleted embeddings": (
        lambda r: list_shards(r / "embeddings")[0].unlink(),
        "published shards are missing",
    ),
    "copied shard": (lambda r: _copy_first_rows(r, listed=False), "listed in no ledger"),
    "copied shard, listed": (lambda r: _copy_first_rows(r, listed=True), "appear more than once"),
    "negative seed (old shard)": (
        lambda r: _rewrite(_first_rows(r), lambda t: t["seed"].__setitem__(0, -5)),
        "seed must be >= 0",
    ),
    "negative prompt (old shard)": (
        lambda r: _rewrite(_first_rows(r), lambda t: t["prompt_index"].__setitem__(0, -1)),
        "prompt_index must be >= 0",
    ),
    "NaN score (old shard)": (
        lambda r: _rewrite(_first_rows(r), lambda t: t["score_source"].__setitem__(1, math.nan)),
        "score_source must be finite",
    ),
    "truncated shard": (
        lambda r: _first_rows(r).write_bytes(_first_rows(r).read_bytes()[:50]),
        "corrupt shard",
    ),
    "unreadable ledger": (
        lambda r: (r / "ledger-r00000.json").write_text("{"),
        "cannot read the shard ledger",
    ),
}


@pytest.mark.parametrize("damage, named", DAMAGE.values(), ids=DAMAGE.keys())
def test_damage_that_the_columns_show_is_named_when_the_dataset_opens(
    damage, named: str, npd: Path
) -> None:
    damage(npd)
    with pytest.raises(GoldenNoiseError, match=named):
        NoisePromptDataset(npd)


LATENT_DAMAGE = {
    "flipped target byte": (
        lambda r: _flip(_first_rows(r), "target", 5),
        "contents do not match the digest",
    ),
    "flipped embedding byte": (
        lambda r: _flip(list_shards(r / "embeddings")[0], "embeds", 5),
        "contents do not match the digest",
    ),
    # finite garbage in targets: train exited 0 at loss 1e9 and wrote best/
    "finite garbage target (old shard)": (
        lambda r: _rewrite(_first_rows(r), lambda t: t["target"].__setitem__(2, 3e4)),
        "target latents that are not finite noise of plausible size",
    ),
    "zero source (old shard)": (
        lambda r: _rewrite(_first_rows(r), lambda t: t["source"].__setitem__(0, 0.0)),
        "source latents that are not finite",
    ),
    "inf target (old shard)": (
        lambda r: _rewrite(_first_rows(r), lambda t: t["target"].__setitem__(1, math.inf)),
        "target latents that are not finite",
    ),
    # scores edited and saved again without the digests: read as an old shard, though the
    # ledger records the digest it was published with
    "scores edited, saved without digests": (
        lambda r: _save_without_digests(
            _first_rows(r), lambda t: t["score_target"].__setitem__(0, 9.0)
        ),
        r"r00000-000000.safetensors: its writer's ledger records the digest .* carries no digest",
    ),
    "embeddings saved without digests": (
        lambda r: _save_without_digests(list_shards(r / "embeddings")[0], lambda t: None),
        "embeddings/r00000-000000.safetensors: its writer's ledger records the digest",
    ),
}


@pytest.mark.parametrize("damage, named", LATENT_DAMAGE.values(), ids=LATENT_DAMAGE.keys())
def test_damage_in_the_latents_is_found_before_training(damage, named: str, npd: Path) -> None:
    damage(npd)
    data = NoisePromptDataset(npd)  # opening reads keys only: latents are checked in verify
    with pytest.raises(GoldenNoiseError, match=named):
        data.verify()


def test_train_checks_the_rows_before_its_first_step(npd: Path, tmp_path: Path) -> None:
    from golden_noise.train import train

    _rewrite(_first_rows(npd), lambda t: t["target"].__setitem__(2, 3e4))
    with pytest.raises(GoldenNoiseError, match="not finite noise of plausible size"):
        train(_train_config(npd, tmp_path / "run"))
    assert not (tmp_path / "run" / "best").exists()


def test_a_dataset_from_before_digests_still_opens(npd: Path) -> None:
    """Shards without digests and a folder without ledgers: what an older collector wrote."""
    for path in list_shards(npd / "rows") + list_shards(npd / "embeddings"):
        _save_without_digests(path, lambda t: None)
    _as_from_before_digests(npd)
    data = NoisePromptDataset(npd)
    data.verify()
    assert len(data) == 16


def test_the_collector_redoes_the_rows_of_a_shard_deleted_on_purpose(npd: Path) -> None:
    """The advice for a corrupt shard (delete it, run the same collect) works: the writer drops
    its ledger entry and those rows are missing, so the collector fills them in."""
    from golden_noise.dataset import DatasetWriter

    _first_rows(npd).unlink()
    with DatasetWriter(npd, DatasetManifest.load(npd)) as writer:
        assert len(writer.keys) == 12
    assert len(NoisePromptDataset(npd)) == 12


def test_a_deleted_ledger_does_not_turn_the_digest_checks_off(npd: Path) -> None:
    """Before: with ledger-r00000.json deleted, a shard whose scores were edited and saved
    again without digests was read as an old shard, by train and by a resumed collect."""
    from npd_fixtures import manifest

    from golden_noise.dataset import DatasetWriter

    assert DatasetManifest.load(npd).notes["shards_without_digests"] == []
    _save_without_digests(_first_rows(npd), lambda t: t["score_target"].__setitem__(0, 9.0))
    (npd / "ledger-r00000.json").unlink()
    named = r"5 shards are listed in no ledger \(rows/r00000-000000.safetensors, "
    with pytest.raises(GoldenNoiseError, match=named):
        NoisePromptDataset(npd)
    before = _snapshot(npd)
    with pytest.raises(GoldenNoiseError, match=named):
        DatasetWriter(npd, manifest())
    after = {k: v for k, v in _snapshot(npd).items() if ".writer-" not in str(k)}
    assert after == {k: v for k, v in before.items() if ".writer-" not in str(k)}


def test_a_writer_reopening_an_older_dataset_keeps_its_shards_and_lists_every_new_one(
    npd: Path,
) -> None:
    """An older dataset's digest-less shards stay readable after a writer opens it; what the
    writer publishes from then on is checked as in a new dataset, ledger deleted or not."""
    from npd_fixtures import manifest, source_latents

    from golden_noise.dataset import DatasetWriter

    old = list_shards(npd / "rows") + list_shards(npd / "embeddings")
    for path in old:
        _save_without_digests(path, lambda t: None)
    _as_from_before_digests(npd)
    with DatasetWriter(npd, manifest()) as writer:
        latents = source_latents([0, 0], [10, 11])
        writer.add(latents, latents, [0, 0], [10, 11], [0.0, 0.0], [1.0, 1.0])
    recorded = DatasetManifest.load(npd).notes["shards_without_digests"]
    assert sorted(recorded) == sorted(p.relative_to(npd).as_posix() for p in old)
    assert len(NoisePromptDataset(npd)) == 18
    (npd / "ledger-r00000.json").unlink()
    with pytest.raises(GoldenNoiseError, match=r"1 shards are listed in no ledger \(rows/r00000"):
        NoisePromptDataset(npd)


def _with_merged_rows(root: Path, rows: int) -> Path:
    """A dataset whose manifest says, as a merge's does, how many rows it wrote."""
    from npd_fixtures import manifest, source_latents

    from golden_noise.dataset import DatasetWriter, PromptRecord

    notes = {"merged_from": [], "merged_rows": rows}
    records = [PromptRecord(index=0, text="prompt 0")]
    with DatasetWriter(root, manifest(notes=notes), rows_per_shard=2, prompts=records) as writer:
        writer.add_embeddings([0], torch.zeros(1, 8, 16))
        latents = source_latents([0] * 4, [0, 1, 2, 3])
        writer.add(latents, latents, [0] * 4, [0, 1, 2, 3], [0.0] * 4, [1.0] * 4)
    return root


def test_a_merged_dataset_short_of_the_rows_its_merge_wrote_is_named(tmp_path: Path) -> None:
    """Before: a merged dataset missing a shard (deleted with its ledger entry, or a merge
    killed part way) trained on the rows left without a word."""
    data = _with_merged_rows(tmp_path / "m", rows=4)
    assert len(NoisePromptDataset(data)) == 4
    lost = list_shards(data / "rows")[1]
    lost.unlink()
    _drop_ledger_entries(data, [f"rows/{lost.name}"])
    with pytest.raises(GoldenNoiseError, match="2 of the 4 rows its merge wrote are missing"):
        NoisePromptDataset(data)
    with pytest.raises(GoldenNoiseError, match="holds 4 rows, 1 more than its merge wrote"):
        NoisePromptDataset(_with_merged_rows(tmp_path / "m3", rows=3))


def test_metrics_json_is_strict_json_when_a_statistic_does_not_exist(tmp_path: Path) -> None:
    """Before: with one sample the interval was written as bare NaN, which strict parsers
    (JSON.parse) refuse; --json on stdout already said null."""
    from golden_noise.evaluation.evaluate import evaluate
    from golden_noise.generation.arms import make_samples
    from golden_noise.scorers import get_scorer

    evaluate(tmp_path / "ev", [get_scorer("toy-soft")], generation=_toy_generation(),
             samples=make_samples(["a red circle"], [0]), show_progress=False,
             resamples=50)  # fmt: skip

    def refuse(constant: str) -> None:
        raise AssertionError(f"metrics.json holds {constant}")

    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text(), parse_constant=refuse)
    block = metrics["summary"]["overall"]["toy-soft"]["vs_standard"]["golden"]
    assert block["ci95_low"] is None and block["ci95_high"] is None


@pytest.mark.parametrize("name", ["last.old", ".old-last", ".old-0123456789ab-last"])
def test_replacing_a_folder_keeps_a_user_folder_named_like_its_old_version(
    tmp_path: Path, name: str
) -> None:
    """A user's `last.old/`, `.old-last/` (the tool's own aside name once) and even a folder
    shaped like an aside but without the tool's marker were deleted by the next replace, or
    renamed over a missing target by recovery."""
    target, mine = tmp_path / "last", tmp_path / name
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    recover_directory(target)
    assert not target.exists() and (mine / "notes.txt").read_text() == "mine"
    for version in ("one", "two"):
        with atomic_directory(target) as folder:
            (folder / "w.txt").write_text(version)
        recover_directory(target)
    assert (target / "w.txt").read_text() == "two"
    assert (mine / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["last", name])


def test_replacing_a_folder_refuses_to_drop_a_users_file_inside_it(tmp_path: Path) -> None:
    """Before: a user's notes (or an evaluation saved) inside train's best/ or last/, or the
    demo's npnet/, were deleted without a word by the next replace of the folder."""
    target = tmp_path / "best"
    with atomic_directory(target) as folder:
        (folder / "w.txt").write_text("old")
    (target / "eval").mkdir()
    (target / "eval" / "notes.txt").write_text("mine")
    refused = pytest.raises(GoldenNoiseError, match=r"holds eval/notes.txt, which its new version")
    with refused, atomic_directory(target) as folder:
        (folder / "w.txt").write_text("new")
    assert (target / "w.txt").read_text() == "old"
    assert (target / "eval" / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]


def test_a_writers_temp_cleanup_leaves_names_it_did_not_make(tmp_path: Path) -> None:
    """Before: a resumed collect deleted a user's `.tmp-r00000-my-backup/` folder whole."""
    from golden_noise.core.atomic import remove_temp_files, temp_path_for

    mine = tmp_path / ".tmp-r00000-my-backup"
    mine.mkdir()
    (mine / "rows.txt").write_text("mine")
    (tmp_path / ".tmp-r00000-notes.txt").write_text("mine")
    leftover = temp_path_for(tmp_path / "shard.safetensors", "r00000-")
    leftover.write_bytes(b"half")
    assert remove_temp_files(tmp_path, "r00000-") == 1
    assert not leftover.exists()
    assert (mine / "rows.txt").read_text() == "mine"
    assert (tmp_path / ".tmp-r00000-notes.txt").read_text() == "mine"


def test_a_crash_between_the_renames_of_a_folder_replace_is_recovered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after the old version went aside and before the new one came in: recovery puts
    the old version back, whole."""
    target = tmp_path / "best"
    with atomic_directory(target) as folder:
        (folder / "w.txt").write_text("old")
    replace = os.replace

    def crash_on_the_second(source, destination):
        if Path(destination) == target:
            raise KeyboardInterrupt  # the process dies here
        replace(source, destination)

    monkeypatch.setattr(os, "replace", crash_on_the_second)
    with pytest.raises(KeyboardInterrupt), atomic_directory(target) as folder:
        (folder / "w.txt").write_text("new")
    monkeypatch.setattr(os, "replace", replace)
    assert not target.exists()
    recover_directory(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]
    assert (target / "w.txt").read_text() == "old"
