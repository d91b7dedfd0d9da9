"""Offsets composed from object-and-role parts: the fit, the recovery of offsets from a
prompt-offset dataset's rows, and the composed-offset teacher through `collect`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from cli_outcome import assert_refused, run_cli

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.dataset import DatasetManifest, DatasetWriter, NoisePromptDataset
from golden_noise.dataset.prompts import PromptRecord
from golden_noise.teachers.composed_offset import ComposedOffsetTeacher
from golden_noise.toy.grammar import COLOURS, SHAPES, prompts_of
from golden_noise.toy.offset_parts import fit_offset_parts, offsets_digest, offsets_of_rows

TYPES = ("single", "pair", "counting", "position")
NAMES = [f"{c} {s}" for c in COLOURS for s in SHAPES]


def _by_hand(prompt: str, shared: torch.Tensor, parts: dict) -> torch.Tensor:
    """A prompt's composed offset, read off its words with a regex of this test's own."""
    words = r"a (\w+ \w+)"
    if m := re.fullmatch(rf"{words} on the (\w+) and {words} on the (\w+)", prompt):
        return shared + parts[m[1], m[2]] + parts[m[3], m[4]]
    if m := re.fullmatch(rf"{words} and {words}", prompt):
        return shared + parts[m[1], "pair1"] + parts[m[2], "pair2"]
    if m := re.fullmatch(r"(two|three) (\w+ \w+)s", prompt):
        return shared + parts[m[2], {"two": "count2", "three": "count3"}[m[1]]]
    m = re.fullmatch(words, prompt)
    return shared + parts[m[1], "single"]


def _true_world(seed: int = 0) -> tuple[torch.Tensor, dict]:
    gen = torch.Generator().manual_seed(seed)
    roles = ("single", "pair1", "pair2", "count2", "count3", "left", "right", "top", "bottom")
    parts = {(n, r): torch.randn(4, 8, 8, generator=gen) for n in NAMES for r in roles}
    return torch.randn(4, 8, 8, generator=gen), parts


def test_parts_fitted_on_train_prompts_compose_the_offsets_of_unseen_compositions() -> None:
    """Offsets that are exactly sums of parts: the table fitted on the train split's prompts
    gives every validation composition (never fitted) its true offset. A tiny ridge only
    picks among the tables that agree on every prompt (adding c to every pair1 part and -c to
    every pair2 part changes no prompt's offset), so the error is float round-off: the float64
    solve's ~1e-10 plus float32 storage of values ~5, far below 1e-4. (A held-out count is
    not composed: its object at that count is a part no train prompt has.)"""
    shared, parts = _true_world()
    train = [p for t in TYPES for p in prompts_of("train", t)]
    table = fit_offset_parts(
        train, torch.stack([_by_hand(p, shared, parts) for p in train]), ridge=1e-6
    )
    unseen = [p for t in ("pair", "position") for p in prompts_of("validation", t)]
    expected = torch.stack([_by_hand(p, shared, parts) for p in unseen])
    torch.testing.assert_close(table.offsets(unseen), expected, atol=1e-4, rtol=0)


def test_colour_and_shape_parts_compose_a_count_no_prompt_fitted() -> None:
    """Offsets made of a part per colour and a part per shape (each in its role) plus one per
    role: fitted on those groups, the table gives a held-out count (its object at that count
    is in no train prompt) its true offset, by its colour's and shape's parts; the object
    table cannot (it has only the shared offset there). Errors as in the test above: the
    float64 solve at a tiny ridge plus float32 storage, far below 1e-4."""
    gen = torch.Generator().manual_seed(4)
    roles = ("single", "pair1", "pair2", "count2", "count3", "left", "right", "top", "bottom")
    by_colour = {(c, r): torch.randn(4, 8, 8, generator=gen) for c in COLOURS for r in roles}
    by_shape = {(s, r): torch.randn(4, 8, 8, generator=gen) for s in SHAPES for r in roles}
    by_role = {r: torch.randn(4, 8, 8, generator=gen) for r in roles}
    parts = {
        (f"{c} {s}", r): by_colour[c, r] + by_shape[s, r] + by_role[r]
        for c in COLOURS for s in SHAPES for r in roles
    }  # fmt: skip
    shared = torch.randn(4, 8, 8, generator=gen)
    train = [p for t in TYPES for p in prompts_of("train", t)]
    offsets = torch.stack([_by_hand(p, shared, parts) for p in train])
    counts = list(prompts_of("validation", "counting"))
    expected = torch.stack([_by_hand(p, shared, parts) for p in counts])
    table = fit_offset_parts(train, offsets, ridge=1e-6, groups=("colour", "shape", "role"))
    torch.testing.assert_close(table.offsets(counts), expected, atol=1e-4, rtol=0)
    objects_only = fit_offset_parts(train, offsets, ridge=1e-6)
    assert (objects_only.offsets(counts) - expected).abs().max() > 1.0


@pytest.mark.parametrize("groups", [(), ("object", "object"), ("object", "size")])
def test_unknown_or_repeated_part_groups_are_refused(groups) -> None:
    with pytest.raises(GoldenNoiseError, match="expected part groups from object, colour"):
        fit_offset_parts(["a red circle"], torch.zeros(1, 4, 8, 8), 1.0, groups)


def test_a_large_ridge_leaves_only_the_shared_offset_which_is_the_mean() -> None:
    """The shared offset is not shrunk: at a ridge of 1e9 every part is ~n/1e9 of its size
    and the shared offset is the offsets' mean, to ~1e-6 of values ~1 (bound 1e-4)."""
    shared, parts = _true_world(seed=1)
    prompts = [p for t in TYPES for p in prompts_of("train", t)][::7]
    offsets = torch.stack([_by_hand(p, shared, parts) for p in prompts])
    table = fit_offset_parts(prompts, offsets, ridge=1e9)
    torch.testing.assert_close(table.shared, offsets.mean(0), atol=1e-4, rtol=0)
    assert table.parts.abs().max() < 1e-4


@pytest.mark.parametrize(
    "prompts, offsets, ridge, named",
    [
        (["a red circle"], torch.zeros(1, 4, 8, 8), -1.0, "ridge must be a number >= 0; got -1"),
        (["a red circle"], torch.zeros(1, 4, 8, 8), float("nan"), "got nan"),
        (["a red circle"], torch.zeros(2, 4, 8, 8), 1.0, "got 2 offsets for 1 prompts"),
        (["a cat on a mat"], torch.zeros(1, 4, 8, 8), 1.0, "expected a toy-world prompt"),
    ],
)
def test_bad_fits_are_refused(prompts, offsets, ridge, named) -> None:
    with pytest.raises(GoldenNoiseError, match=re.escape(named)):
        fit_offset_parts(prompts, offsets, ridge)


def _offset_dataset(root: Path, prompts: list[str], offsets: torch.Tensor, teacher: str) -> Path:
    """Rows as the prompt-offset teacher stores them: x' = (x + mu) |x| / |x + mu|."""
    manifest = DatasetManifest(
        family="sd", model="toy", latent_shape=(4, 8, 8), text_shape=(16, 64),
        sampler={"steps": 10}, w_l=None, w_w=None, scorer="toy-soft", margin=-1.0,
        latent_dtype="float32", teacher=teacher,
    )  # fmt: skip
    records = [PromptRecord(index=i, text=p) for i, p in enumerate(prompts)]
    gen = torch.Generator().manual_seed(7)
    with DatasetWriter(root, manifest, prompts=records) as writer:
        writer.add_embeddings(list(range(len(prompts))), torch.zeros(len(prompts), 16, 64))
        for index, mu in enumerate(offsets):
            x = torch.randn(8, 4, 8, 8, generator=gen)
            shifted = x + mu
            norms = x.flatten(1).norm(dim=1) / shifted.flatten(1).norm(dim=1)
            target = shifted * norms[:, None, None, None]
            writer.add(x, target, [index] * 8, list(range(8)), torch.zeros(8), torch.zeros(8))
    return root


def test_each_prompts_offset_is_recovered_from_its_rows(tmp_path: Path) -> None:
    """Eight rows of one prompt give back its offset: a row's estimate is off by the part of
    x along mu (x . mu / |mu| ~ 1 of |x| ~ 16), which the mean over rows shrinks: measured
    error ~5% of |mu| at |mu| = 3; the bound, 15%, fails for any mistake in the formula (a
    dropped rescale alone is off by 100%)."""
    prompts = ["a red circle", "two blue squares", "a red circle and a green triangle"]
    mus = 3.0 * torch.nn.functional.normalize(
        torch.randn(3, 256, generator=torch.Generator().manual_seed(3)), dim=1
    ).view(3, 4, 8, 8)
    root = _offset_dataset(tmp_path / "npd", prompts, mus, "prompt-offset")
    found = offsets_of_rows(NoisePromptDataset(root), show_progress=False)
    assert list(found) == sorted(prompts)
    for prompt, mu in zip(prompts, mus, strict=True):
        error = (found[prompt] - mu).norm() / mu.norm()
        assert error < 0.15, (prompt, error)


def test_offsets_are_only_read_from_a_prompt_offset_dataset(tmp_path: Path) -> None:
    root = _offset_dataset(tmp_path / "npd", ["a red circle"], torch.ones(1, 4, 8, 8), "redenoise")
    with pytest.raises(GoldenNoiseError, match="got teacher 'redenoise'"):
        offsets_of_rows(NoisePromptDataset(root), show_progress=False)


def test_collect_with_composed_offsets_refuses_bad_input_before_writing(tmp_path: Path) -> None:
    source = _offset_dataset(
        tmp_path / "src", ["a red circle", "two red circles"], torch.ones(2, 4, 8, 8),
        "prompt-offset",
    )  # fmt: skip
    prompts = tmp_path / "p.txt"
    prompts.write_text("a red circle\na cat on a mat\n")
    out = tmp_path / "out"
    common = ("collect", "--out", out, "-p", prompts, "--steps", "2", "--margin", "-1")
    code, output = run_cli(*common, "--teacher", "composed-offset", "--offset-source", source)
    assert_refused(code, output, "expected a toy-world prompt", "a cat on a mat")
    code, output = run_cli(*common, "--teacher", "composed-offset")
    assert_refused(code, output, "needs --offset-source")
    code, output = run_cli(*common, "--offset-source", source)
    assert_refused(code, output, "--offset-source applies to the composed-offset teacher")
    assert not out.exists()


def test_composed_offset_rows_hold_the_composed_offset_and_a_resume_keeps_the_table(
    tmp_path: Path,
) -> None:
    """The rows' targets are the noise plus the table's offset at the noise's norm (the offset
    recovered from the rows, as for any prompt-offset data, matches the table's to the
    recovery's ~5%), and a resume with another ridge is refused."""
    prompts = ["a red circle", "two red circles", "a red circle and a blue square"]
    mus = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(5))
    source = _offset_dataset(tmp_path / "src", prompts, 3 * mus / mus.norm(), "prompt-offset")
    table = fit_offset_parts(prompts, 3 * mus / mus.norm(), ridge=0.5)
    wanted = tmp_path / "p.txt"
    wanted.write_text("a red circle and a blue square\n")
    out = tmp_path / "out"
    args = ("collect", "--out", out, "-p", wanted, "--steps", "2", "--margin", "-1", "--teacher",
            "composed-offset", "--offset-source", source, "--seeds-per-prompt", "8")  # fmt: skip
    code, output = run_cli(*args, "--offset-ridge", "0.5")
    assert code == 0, output
    data = NoisePromptDataset(out)
    assert data.manifest.teacher == "composed-offset"
    rows = [data[i] for i in range(len(data))]
    assert len(rows) == 8
    composed = table.offsets(["a red circle and a blue square"])[0]
    for x, target, _ in rows:
        shifted = x + composed
        expected = shifted * x.norm() / shifted.norm()
        # rows are stored as float16: ~1e-3 of values ~2
        torch.testing.assert_close(target, expected, atol=1e-2, rtol=0)
    code, output = run_cli(*args, "--offset-ridge", "2")
    assert_refused(code, output, "ridge")


def test_a_damaged_source_and_a_ridge_without_the_teacher_are_refused(tmp_path: Path) -> None:
    """Before: a flipped byte in a source shard went into every composed offset (exit 0), and
    --offset-ridge with another teacher was silently ignored."""
    source = _offset_dataset(
        tmp_path / "src", ["a red circle", "two red circles"], torch.ones(2, 4, 8, 8),
        "prompt-offset",
    )  # fmt: skip
    shard = next((source / "rows").glob("*.safetensors"))
    raw = bytearray(shard.read_bytes())
    raw[-100] ^= 0xFF
    shard.write_bytes(bytes(raw))
    prompts = tmp_path / "p.txt"
    prompts.write_text("a red circle\n")
    out = tmp_path / "out"
    common = ("collect", "--out", out, "-p", prompts, "--steps", "2", "--margin", "-1")
    code, output = run_cli(*common, "--teacher", "composed-offset", "--offset-source", source)
    assert_refused(code, output, "digest")
    code, output = run_cli(*common, "--offset-ridge", "5")
    assert_refused(code, output, "--offset-ridge applies to the composed-offset teacher")
    assert not out.exists()


def test_several_sources_are_averaged_as_one_table_of_all_their_fits(tmp_path: Path) -> None:
    """Two fits of the same prompts (and a prompt only one of them has): the table rests on
    every fit, a prompt fitted twice counting twice, as if one dataset held all the rows; one
    source keeps the record that datasets made before several sources resume with."""
    prompts = ["a red circle", "two red circles", "a red circle and a blue square"]
    gen = torch.Generator().manual_seed(11)
    first = 3 * torch.nn.functional.normalize(torch.randn(3, 256, generator=gen), dim=1)
    second = 3 * torch.nn.functional.normalize(torch.randn(4, 256, generator=gen), dim=1)
    a = _offset_dataset(tmp_path / "a", prompts, first.view(3, 4, 8, 8), "prompt-offset")
    b = _offset_dataset(
        tmp_path / "b", [*prompts, "a blue square"], second.view(4, 4, 8, 8), "prompt-offset"
    )
    found_a = offsets_of_rows(NoisePromptDataset(a), show_progress=False)
    found_b = offsets_of_rows(NoisePromptDataset(b), show_progress=False)
    both = ComposedOffsetTeacher([a, b], ridge=0.5)
    reference = fit_offset_parts(
        [*found_a, *found_b], torch.stack([*found_a.values(), *found_b.values()]), ridge=0.5
    )
    wanted = ["a red circle", "a blue square and a red circle", "three red circles"]
    # the same float64 solve of the same rows: round-off only (~1e-7 of offsets ~3)
    torch.testing.assert_close(
        both.parts.offsets(wanted), reference.offsets(wanted), rtol=0, atol=1e-5
    )
    for single in (a, b):  # and not either source's table alone
        alone = ComposedOffsetTeacher(single, ridge=0.5).parts.offsets(wanted)
        assert (alone - reference.offsets(wanted)).abs().max() > 0.1
    assert both.options()["source_prompts"] == 7
    one = ComposedOffsetTeacher(a, ridge=0.5).options()
    digest = offsets_digest(list(found_a), list(found_a.values()))
    assert one == {"ridge": 0.5, "source_prompts": 3, "source_offsets_sha256": digest}
    assert both.options()["source_offsets_sha256"] != one["source_offsets_sha256"]
    assert ComposedOffsetTeacher([b, a], ridge=0.5).options() != both.options()  # order counts


def test_collect_takes_several_offset_sources_and_refuses_a_fit_seed_elsewhere(
    tmp_path: Path,
) -> None:
    gen = torch.Generator().manual_seed(2)
    sources = [
        _offset_dataset(
            tmp_path / name,
            ["a red circle", "two red circles"],
            torch.randn(2, 4, 8, 8, generator=gen),
            "prompt-offset",
        )  # fmt: skip
        for name in ("a", "b")
    ]
    prompts = tmp_path / "p.txt"
    prompts.write_text("a red circle\n")
    out = tmp_path / "out"
    common = ("collect", "--out", out, "-p", prompts, "--steps", "2", "--margin", "-1")
    code, output = run_cli(*common, "--offset-fit-seed", "1")
    assert_refused(code, output, "--offset-fit-seed applies to the prompt-offset teacher")
    assert not out.exists()
    code, output = run_cli(
        *common, "--teacher", "composed-offset", "--offset-source", sources[0],
        "--offset-source", sources[1], "--no-progress",
    )  # fmt: skip
    assert code == 0, output
    assert "offsets:" not in output  # reading the sources' offsets obeys --no-progress too
    assert NoisePromptDataset(out).manifest.teacher_options["source_prompts"] == 4


def test_the_committed_composed_rows_resume_with_the_committed_fits() -> None:
    """The record a resume must match: the teacher over `data/toy-prompt-offsets/` writes the
    options in `data/toy-composed-offsets/`'s manifest (a digest of another layout would make
    `demo --full-scale` and the documented command refuse to resume the committed rows)."""
    root = Path(__file__).resolve().parents[1] / "data"
    teacher = ComposedOffsetTeacher(root / "toy-prompt-offsets", ridge=1.0, show_progress=False)
    manifest = DatasetManifest.load(root / "toy-composed-offsets")
    assert teacher.options() == manifest.teacher_options
