"""The Stage I collector: complete, resumable after kill -9, split over accelerate processes."""

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tiny_pipelines
import torch
from collect_job import job_prompts
from collect_job import run as run_job
from references import plain_soft_score
from safetensors.torch import load_file
from typer.testing import CliRunner

from golden_noise.adapters import adapter_for
from golden_noise.cli import app
from golden_noise.collection.collect import SeedPlan, collect
from golden_noise.core.errors import GoldenNoiseError
from golden_noise.dataset import DatasetManifest, RowTable, read_prompts
from golden_noise.dataset.shards import EMBEDDINGS_DIR, ROWS_DIR, list_shards
from golden_noise.prompts.sources import read_prompt_source
from golden_noise.scorers.registry import get_scorer
from golden_noise.teachers import LocalSearchTeacher, RedenoiseTeacher, SamplerSettings
from golden_noise.teachers.redenoise_step import RedenoiseSettings

JOB = Path(__file__).parent / "collect_job.py"
VENV_BIN = Path(sys.executable).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def _table(root: Path) -> RowTable:
    return RowTable.load(root, DatasetManifest.load(root))


def _keys(table: RowTable) -> list[tuple[int, int]]:
    cols = table.columns
    return sorted(zip(cols["prompt_index"].tolist(), cols["seed"].tolist(), strict=True))


def _rows_by_key(root: Path) -> dict[tuple[int, int], dict[str, torch.Tensor]]:
    rows = {}
    for path in list_shards(root / ROWS_DIR):
        shard = load_file(str(path))
        keys = zip(shard["prompt_index"].tolist(), shard["seed"].tolist(), strict=True)
        for i, key in enumerate(keys):
            rows[key] = {name: tensor[i] for name, tensor in shard.items()}
    return rows


@pytest.fixture(scope="module")
def sd():
    return tiny_pipelines.build_sd()


def test_collect_writes_every_row_once_with_scores_and_embeddings(sd, tmp_path):
    prompts = job_prompts(5)
    summary = collect(
        sd,
        prompts,
        tmp_path,
        get_scorer("toy-soft"),
        sampler=SamplerSettings(steps=2),
        seeds=SeedPlan(per_prompt=2, offset=10),
        batch_size=3,
        rows_per_shard=4,
        progress=False,
    )
    table = _table(tmp_path)
    plan = sorted(SeedPlan(per_prompt=2, offset=10).keys(5))
    assert _keys(table) == plan and table.duplicates_dropped == 0
    assert plan[:2] == [(0, 10), (0, 11)] and (4, 19) in plan  # distinct seeds per prompt
    assert summary.rows_written_here == summary.rows_in_dataset == 10
    assert summary.model_calls_per_row == 3 + 2 * 2 * 2
    manifest = DatasetManifest.load(tmp_path)
    assert manifest.teacher == "redenoise" and manifest.scorer == "toy-soft"
    assert manifest.w_l == 5.5 and manifest.w_w == 1.0
    assert manifest.sampler["steps"] == 2 and manifest.latent_shape == (4, 16, 16)
    assert [r.text for r in read_prompts(tmp_path).values()] == prompts
    embedded = torch.cat(
        [load_file(str(p))["prompt_index"] for p in list_shards(tmp_path / EMBEDDINGS_DIR)]
    )
    assert sorted(embedded.tolist()) == list(range(5))
    row = _rows_by_key(tmp_path)[(3, 16)]
    seed_noise = torch.randn(4, 16, 16, generator=torch.Generator().manual_seed(16))
    assert torch.equal(row["source"], seed_noise.to(row["source"].dtype))
    assert not torch.equal(row["source"], row["target"])
    # Each stored score is the toy-soft score of that latent's image, generated here by a
    # plain pipeline call (DDIM from the pipeline's config, 2 steps, CFG 5.5 as collected).
    # Batch composition moves pixels by float round-off only; 1e-2 on a [0, 1] score (as in
    # the two-process test) while source and target scores differ by ~1e-1.
    for latents, column in ((seed_noise, "score_source"), (row["target"].float(), "score_target")):
        plain = plain_soft_score(sd, prompts[3], latents, 16)
        assert float(row[column]) == pytest.approx(plain, abs=1e-2), column
    again = collect(
        sd,
        prompts,
        tmp_path,
        get_scorer("toy-soft"),
        sampler=SamplerSettings(steps=2),
        seeds=SeedPlan(per_prompt=2, offset=10),
        progress=False,
    )
    assert again.rows_written_here == 0 and again.rows_in_dataset == 10


def test_local_search_dataset_names_its_teacher(sd, tmp_path):
    collect(
        sd,
        job_prompts(2),
        tmp_path,
        get_scorer("toy-soft"),
        teacher=LocalSearchTeacher(candidates=2, angle=0.3),
        sampler=SamplerSettings(steps=1),
        progress=False,
    )
    manifest = DatasetManifest.load(tmp_path)
    assert manifest.teacher == "local-search" and manifest.w_l is None
    assert manifest.teacher_options == {"candidates": 2, "angle": 0.3}
    # each stored score is the toy-soft of that latent's 1-step image, computed here by a
    # plain pipeline call (1e-2: batch round-off, as in the first test)
    rows = _rows_by_key(tmp_path)
    assert sorted(rows) == [(0, 0), (1, 1)]
    for (index, seed), row in rows.items():
        prompt = job_prompts(2)[index]
        draw = torch.randn(row["source"].shape, generator=torch.Generator().manual_seed(seed))
        for latents, column in ((draw, "score_source"), (row["target"].float(), "score_target")):
            plain = plain_soft_score(sd, prompt, latents, seed, steps=1)
            assert float(row[column]) == pytest.approx(plain, abs=1e-2), (index, column)


def test_a_resume_encodes_again_the_embeddings_whose_shard_is_gone(sd, tmp_path):
    """Before: with an embedding shard and its ledger entry deleted from a finished dataset,
    the same collect said "done" and wrote nothing, and every reader refused the rows."""
    import json

    from golden_noise.dataset import NoisePromptDataset

    def run():
        return collect(sd, job_prompts(3), tmp_path, get_scorer("toy-soft"),
                       teacher=LocalSearchTeacher(candidates=2, angle=0.3),
                       sampler=SamplerSettings(steps=1), seeds=SeedPlan(per_prompt=2),
                       batch_size=2, rows_per_shard=2, progress=False)  # fmt: skip

    run()
    shards = list_shards(tmp_path / EMBEDDINGS_DIR)
    before = {}
    for path in shards:
        tensors = load_file(str(path))
        before.update(zip(tensors["prompt_index"].tolist(), tensors["embeds"], strict=True))
    assert load_file(str(shards[0]))["prompt_index"].tolist() == [0, 1]  # the first batch's
    shards[0].unlink()
    ledger = tmp_path / "ledger-r00000.json"
    entries = json.loads(ledger.read_text())
    del entries[f"embeddings/{shards[0].name}"]
    ledger.write_text(json.dumps(entries))
    with pytest.raises(GoldenNoiseError, match="run the same collect .* command again"):
        NoisePromptDataset(tmp_path)
    assert run().rows_written_here == 0
    data = NoisePromptDataset(tmp_path)
    assert len(data) == 6
    for item, (index, _) in enumerate(data.keys):  # the same numbers as the first time
        assert torch.equal(data[item][2], before[index].float())


@pytest.mark.parametrize("family", ["sdxl", "hunyuan-dit"])
def test_collect_runs_for_the_other_families(family, tmp_path):
    pipe = tiny_pipelines.BUILDERS[family]()
    summary = collect(
        pipe,
        job_prompts(2),
        tmp_path,
        get_scorer("toy-soft"),
        sampler=SamplerSettings(steps=2),
        height=32,  # the toy scorer judges 32x32 images
        width=32,
        progress=False,
    )
    assert summary.rows_in_dataset == 2
    manifest = DatasetManifest.load(tmp_path)
    assert manifest.family == family
    assert manifest.latent_shape == adapter_for(pipe).latent_shape(1, 32, 32)[1:]


def test_kill_9_at_random_points_then_resume_gives_every_row_exactly_once(tmp_path):
    out = tmp_path / "ds"
    rng = random.Random(0)
    kills = 0
    for _ in range(2):
        process = subprocess.Popen(
            [sys.executable, str(JOB), str(out), "16", "4"],
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        before = len(list_shards(out / ROWS_DIR))
        deadline = time.monotonic() + 60
        while len(list_shards(out / ROWS_DIR)) <= before and process.poll() is None:
            assert time.monotonic() < deadline, "the job never wrote a shard"
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.25))  # somewhere inside the next batch or shard write
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            kills += 1
        process.wait()
    assert kills == 2
    interrupted = _table(out)
    assert 0 < len(interrupted) < 64
    finished = subprocess.run(
        [sys.executable, str(JOB), str(out), "16", "4"], env=ENV, capture_output=True, text=True
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    table = _table(out)
    assert table.duplicates_dropped == 0
    assert _keys(table) == sorted(SeedPlan(per_prompt=4).keys(16))
    leftovers = [p.name for p in (out / ROWS_DIR).iterdir() if p.name.startswith(".")]
    assert leftovers == []
    # Every row's content equals an uninterrupted run's: the source is the seed's own draw,
    # bit for bit; target and scores come from other batches (2 rows a batch, re-cut by each
    # resume), and float round-off of batch composition (~1e-6) can move a target stored in
    # float16 by one float16 step (<= 2^-10 of its size: rtol 1e-3) and a score by far less
    # than the 1e-2 allowed (as in the two-process test); a wrong row is off by ~1.
    run_job(str(tmp_path / "reference"), 16, 4)
    resumed, reference = _rows_by_key(out), _rows_by_key(tmp_path / "reference")
    assert sorted(resumed) == sorted(reference)
    for key, row in resumed.items():
        expected = reference[key]
        draw = torch.randn(row["source"].shape, generator=torch.Generator().manual_seed(key[1]))
        assert torch.equal(row["source"], draw.to(row["source"].dtype)), key
        assert torch.equal(row["source"], expected["source"])
        torch.testing.assert_close(row["target"], expected["target"], rtol=1e-3, atol=1e-5)
        for column in ("score_source", "score_target"):
            torch.testing.assert_close(row[column], expected[column], rtol=0, atol=1e-2)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch_two_processes(*script: str) -> subprocess.CompletedProcess:
    """`accelerate launch` of `script` as two CPU processes (`--multi_gpu`: a real 2-rank group)."""
    command = [str(VENV_BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2"]
    command += ["--main_process_port", str(_free_port()), *script]
    return subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)


def test_two_accelerate_processes_build_the_same_dataset_as_one(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    run_job(str(one), 6, 2)
    launched = _launch_two_processes(str(JOB), str(two), "6", "2")
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert {p.name[:6] for p in list_shards(two / ROWS_DIR)} == {"r00000", "r00001"}
    single, double = _rows_by_key(one), _rows_by_key(two)
    assert sorted(single) == sorted(double) == sorted(SeedPlan(per_prompt=2).keys(6))
    for key, row in single.items():
        assert torch.equal(row["source"], double[key]["source"])
        torch.testing.assert_close(row["target"], double[key]["target"], rtol=0, atol=2e-3)
        for column in ("score_source", "score_target"):
            torch.testing.assert_close(row[column], double[key][column], rtol=0, atol=1e-2)


def test_bad_prompt_sources_are_refused(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    with pytest.raises(GoldenNoiseError, match="holds no prompts"):
        read_prompt_source(empty)
    table = tmp_path / "prompts.csv"
    table.write_text("id,caption\n1,a red circle\n2,a blue square\n1,a red circle\n")
    assert read_prompt_source(table) == ["a red circle", "a blue square"]
    with pytest.raises(GoldenNoiseError, match="no column 'prompt_text'.*'caption'"):
        read_prompt_source(table, column="prompt_text")
    lines = tmp_path / "prompts.jsonl"
    lines.write_text('{"text": "a red circle"}\n{"text": "two cyan squares"}\n')
    assert read_prompt_source(lines) == ["a red circle", "two cyan squares"]
    with pytest.raises(GoldenNoiseError, match="no such file"):
        read_prompt_source(tmp_path / "missing.txt")
    with pytest.raises(GoldenNoiseError, match="toy:SPLIT:N"):
        read_prompt_source("toy:train")


def test_prompts_longer_than_the_encoder_are_refused(sd, tmp_path):
    with pytest.raises(GoldenNoiseError, match=r"longer than the text encoder takes \(77"):
        collect(sd, ["a red circle", "x " * 100], tmp_path / "ds", get_scorer("toy-soft"))
    assert not (tmp_path / "ds").exists()


def test_unwritable_output_is_refused(sd, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(GoldenNoiseError, match="cannot create dataset directory"):
        collect(sd, ["a red circle"], blocker / "ds", get_scorer("toy-soft"))


def test_dataset_made_for_another_model_is_refused(sd, tmp_path):
    settings = {"sampler": SamplerSettings(steps=1), "progress": False}
    collect(sd, ["a red circle"], tmp_path, get_scorer("toy-soft"), model="tiny-sd", **settings)
    with pytest.raises(GoldenNoiseError, match="made differently.*family"):
        collect(
            tiny_pipelines.build_sdxl(),
            ["a red circle"],
            tmp_path,
            get_scorer("toy-soft"),
            **settings,
        )
    with pytest.raises(GoldenNoiseError, match="made differently.*w_l"):
        collect(
            sd,
            ["a red circle"],
            tmp_path,
            get_scorer("toy-soft"),
            model="tiny-sd",
            teacher=RedenoiseTeacher(RedenoiseSettings(w_l=3.0)),
            **settings,
        )


def test_cli_collects_from_a_saved_pipeline(sd, tmp_path):
    sd.save_pretrained(tmp_path / "pipe")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle\ntwo blue squares\n")
    args = ["collect", "-p", str(prompts), "--out", str(tmp_path / "ds"), "--pipeline"]
    args += [str(tmp_path / "pipe"), "--steps", "2", "--seeds-per-prompt", "2", "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "4/4 rows" in result.output
    bad = CliRunner().invoke(app, ["collect", "-p", str(tmp_path / "none.txt"), "--out", "x"])
    assert bad.exit_code == 1 and "no such file" in bad.output


def test_cli_collect_under_accelerate_launch_builds_the_one_process_dataset(sd, tmp_path):
    """The README's multi-process form, `accelerate launch ... golden-noise collect`."""
    sd.save_pretrained(tmp_path / "pipe")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle\ntwo blue squares\na green triangle\n")
    common = ["-p", str(prompts), "--pipeline", str(tmp_path / "pipe"), "--steps", "2"]
    common += ["--seeds-per-prompt", "2", "--no-progress"]
    single = CliRunner().invoke(app, ["collect", *common, "--out", str(tmp_path / "one")])
    assert single.exit_code == 0, single.output
    launched = _launch_two_processes(
        str(VENV_BIN / "golden-noise"), "collect", *common, "--out", str(tmp_path / "two")
    )
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert {p.name[:6] for p in list_shards(tmp_path / "two" / ROWS_DIR)} == {"r00000", "r00001"}
    one, two = _rows_by_key(tmp_path / "one"), _rows_by_key(tmp_path / "two")
    assert sorted(one) == sorted(two) and len(one) == 6
    # other batches in each process: float16 targets within one step, scores within 1e-2
    # (see the kill -9 test); a row from another prompt or seed is off by ~1
    for key, row in one.items():
        assert torch.equal(row["source"], two[key]["source"])
        torch.testing.assert_close(row["target"], two[key]["target"], rtol=1e-3, atol=1e-5)
        for column in ("score_source", "score_target"):
            torch.testing.assert_close(row[column], two[key][column], rtol=0, atol=1e-2)
