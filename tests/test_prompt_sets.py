"""Named prompt sets against a local stand-in for the hub: a Hugging Face cache folder laid
out as `hf download` leaves it (refs/main -> snapshots/<commit>/files), read offline."""

import json

import huggingface_hub.constants
import pyarrow
import pyarrow.parquet
import pytest

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.prompts.sets import PROMPT_SETS, load_prompt_set, url_cache_path
from golden_noise.prompts.sources import read_prompt_source

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def snapshot(cache, repo):
    """The snapshot folder of `repo` in a hub cache, as a download would have made it."""
    root = cache / f"datasets--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(COMMIT)
    folder = root / "snapshots" / COMMIT
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """Stand-ins for the four hub sets, in their real files and columns; the default cache."""
    cache = tmp_path / "hub"
    drawbench = snapshot(cache, "sayakpaul/drawbench")
    (drawbench / "drawbench.csv").write_text(
        'Prompts,Category\nA red colored car.,Colors\n"A cat, on a mat.",Positional\n'
    )
    (drawbench / "README.md").write_text("---\nlicense: apache-2.0\n---\n")
    parti = snapshot(cache, "nateraw/parti-prompts")
    (parti / "PartiPrompts.tsv").write_text(
        "Prompt\tCategory\tChallenge\tNote\nbond\tAbstract\tBasic\t\n"
        "a tiger in a lab coat\tAnimals\tImagination\t\n"
    )
    hpd = snapshot(cache, "zhwang/HPDv2") / "benchmark"
    hpd.mkdir()
    (hpd / "anime.json").write_text(json.dumps(["an anime girl", "a mecha"]))
    (hpd / "photo.json").write_text(json.dumps(["a photo of a dog"]))
    pick = snapshot(cache, "yuvalkirstain/pickapic_v1_no_images") / "data"
    pick.mkdir()
    for split, captions in (("test_unique", ["a fox", "a fox", "an owl"]), ("train", ["no"])):
        table = pyarrow.table({"caption": captions, "best_image_uid": ["u"] * len(captions)})
        pyarrow.parquet.write_table(table, pick / f"{split}-00000-of-00001.parquet")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_named_sets_read_their_column_offline_from_the_cache(hub_cache):
    assert read_prompt_source("drawbench") == ["A red colored car.", "A cat, on a mat."]
    assert read_prompt_source("parti") == ["bond", "a tiger in a lab coat"]
    assert read_prompt_source("hpdv2") == ["an anime girl", "a mecha", "a photo of a dog"]
    assert read_prompt_source("pickapic") == ["a fox", "an owl"]  # test_unique only, once each


def test_named_sets_keep_their_groups(hub_cache):
    assert load_prompt_set("drawbench")[1] == ("A cat, on a mat.", "Positional")
    assert [group for _, group in load_prompt_set("hpdv2")] == ["anime", "anime", "photo"]
    assert load_prompt_set("parti", cache_dir=hub_cache)[1] == ("a tiger in a lab coat", "Animals")


def test_geneval_reads_its_pinned_file_from_the_cache(tmp_path):
    path = url_cache_path(PROMPT_SETS["geneval"], tmp_path)
    path.parent.mkdir(parents=True)
    lines = [{"tag": "single_object", "include": [], "prompt": "a photo of a bench"},
             {"tag": "counting", "include": [], "prompt": "a photo of three cups"}]  # fmt: skip
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    assert load_prompt_set("geneval", tmp_path) == [
        ("a photo of a bench", "single_object"),
        ("a photo of three cups", "counting"),
    ]


@pytest.mark.parametrize("name", sorted(PROMPT_SETS))
def test_offline_without_the_files_the_error_says_how_to_get_them(tmp_path, name):
    prompt_set = PROMPT_SETS[name]
    with pytest.raises(GoldenNoiseError) as caught:
        load_prompt_set(name, cache_dir=tmp_path)
    message = str(caught.value)
    assert f"prompt set {name!r}" in message
    if prompt_set.repo:
        assert f"hub dataset {prompt_set.repo}" in message
        assert f"hf download {prompt_set.repo} --repo-type dataset --include" in message
    else:
        assert prompt_set.url in message and "curl -L" in message


def test_a_stand_in_without_the_column_is_refused(hub_cache):
    folder = hub_cache / "datasets--nateraw--parti-prompts" / "snapshots" / COMMIT
    (folder / "PartiPrompts.tsv").write_text("text\tCategory\nbond\tAbstract\n")
    with pytest.raises(GoldenNoiseError, match="expects a column 'Prompt'; found"):
        read_prompt_source("parti")
    with pytest.raises(GoldenNoiseError, match="drop --column"):
        read_prompt_source("parti", column="text")


def test_a_local_file_named_like_a_set_is_still_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "parti").write_text("my own prompt\n")
    assert read_prompt_source("parti") == ["my own prompt"]


def test_generate_takes_a_named_set_and_fails_clearly_without_it(hub_cache, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from golden_noise.cli import app

    args = ["generate", "--prompts", "drawbench", "--seeds", "0", "--steps", "2"]
    ran = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "gen")])
    assert ran.exit_code == 0, ran.output
    index = (tmp_path / "gen" / "prompts.txt").read_text()
    assert index == '000\t"A red colored car."\n001\t"A cat, on a mat."\n'
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    failed = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "gen2")])
    assert failed.exit_code != 0
    message = " ".join(failed.output.split())  # rich wraps long lines
    assert "prompt set 'drawbench' is the hub dataset sayakpaul/drawbench" in message
    assert "hf download sayakpaul/drawbench --repo-type dataset" in message


def test_named_set_groups_become_sample_groups(hub_cache, tmp_path):
    from golden_noise.generation.arms import make_samples
    from golden_noise.prompts.sources import read_prompts_and_groups

    texts, groups = read_prompts_and_groups("parti")
    assert groups == ["Abstract", "Animals"]
    samples = make_samples(texts, [0, 1], groups)
    assert [(s.prompt_index, s.seed, s.group) for s in samples] == [
        (0, 0, "Abstract"), (0, 1, "Abstract"), (1, 0, "Animals"), (1, 1, "Animals"),
    ]  # fmt: skip
    # other sources have no groups of their own; toy prompts still get their prompt type
    lines = tmp_path / "prompts.txt"
    lines.write_text("a red circle\nsomething else\na red circle\n")
    texts, groups = read_prompts_and_groups(lines)
    assert (texts, groups) == (["a red circle", "something else"], [None, None])
    assert [s.group for s in make_samples(texts, [0], groups)] == ["single", None]
    (pickapic,) = set(read_prompts_and_groups("pickapic")[1])
    assert pickapic is None  # a set without a group column
