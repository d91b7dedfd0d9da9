"""The toy world's grammar, renderer and exact scorer, checked against ground truth."""

import random
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.prompts.sources import read_prompt_source
from golden_noise.toy import parse, render, sample_prompts, score
from golden_noise.toy.grammar import PROMPT_TYPES, SPLITS, prompts_of, split_of
from golden_noise.toy.scenes import MIN_GAP, layout, relation_margin

PER_TYPE = 60


def _prompts_by_type(split: str = "train") -> dict[str, list[str]]:
    rng = random.Random(1)
    return {t: [rng.choice(prompts_of(split, t)) for _ in range(PER_TYPE)] for t in PROMPT_TYPES}


def _blur(images: np.ndarray, sigma: float) -> np.ndarray:
    out = [ndimage.gaussian_filter(im.astype(np.float32), (sigma, sigma, 0)) for im in images]
    return np.clip(np.rint(np.stack(out)), 0, 255).astype(np.uint8)


def test_splits_partition_compositions():
    for t in PROMPT_TYPES[1:]:
        keys = {s: {parse(p).composition() for p in prompts_of(s, t)} for s in SPLITS}
        assert keys["train"].isdisjoint(keys["heldout"])
        assert keys["train"].isdisjoint(keys["validation"])
        assert keys["validation"].isdisjoint(keys["heldout"])
        assert all(len(keys[s]) > 0 for s in SPLITS)
    assert split_of("a red circle on the left and a blue square on the right") == "heldout"
    assert split_of("a blue square and a red circle") == "heldout"
    assert split_of("three red triangles") == "heldout"
    assert split_of("two red triangles") == "train"


def test_sample_prompts_deterministic_balanced():
    a = sample_prompts(40, seed=3, split="heldout")
    assert a == sample_prompts(40, seed=3, split="heldout")
    assert a != sample_prompts(40, seed=4, split="heldout")
    assert [parse(p).prompt_type for p in a[:4]] == list(PROMPT_TYPES)
    assert all(split_of(p) == "heldout" for p in a if parse(p).prompt_type != "single")
    with pytest.raises(GoldenNoiseError, match="split"):
        sample_prompts(4, 0, "test")


def test_every_prompt_of_a_split_once_balanced_prefixes():
    """`toy:train:all`: each train prompt exactly once (an independent enumeration: every
    type's pool), and a prefix holds the types in turn until the small ones run out."""
    every = read_prompt_source("toy:train:all")
    pools = {t: set(prompts_of("train", t)) for t in PROMPT_TYPES}
    assert sorted(every) == sorted(set().union(*pools.values()))
    assert len(every) == len(set(every)) == sum(map(len, pools.values()))
    assert [parse(p).prompt_type for p in every[:8]] == list(PROMPT_TYPES) * 2
    head = Counter(parse(p).prompt_type for p in every[:256])
    assert head["single"] == len(pools["single"]) and head["counting"] == len(pools["counting"])
    assert abs(head["pair"] - head["position"]) <= 1
    assert read_prompt_source("toy:train:all:1") != every  # the seed shuffles within types
    assert sorted(read_prompt_source("toy:train:all:1")) == sorted(every)
    with pytest.raises(GoldenNoiseError, match="toy:SPLIT:all"):
        read_prompt_source("toy:train:every")


@pytest.mark.parametrize(
    "bad",
    [
        "a red circle and a red circle",
        "a red circle on the left and a red square on the right",
        "a red circle on the left and a blue square on the top",
        "four red circles",
        "a purple circle",
    ],
)
def test_parse_rejects_prompts_outside_grammar(bad):
    with pytest.raises(GoldenNoiseError, match="toy-world prompt"):
        parse(bad)


def test_render_deterministic_and_layout_rules():
    prompt = "a red circle on the left and a blue square on the right"
    assert np.array_equal(render(prompt, 5), render(prompt, 5))
    assert not np.array_equal(render(prompt, 5), render(prompt, 6))
    assert render(prompt, 5).shape == (32, 32, 3) and render(prompt, 5).dtype == np.uint8
    for seed in range(30):
        placed = layout(parse("three green triangles"), random.Random(seed))
        for i, a in enumerate(placed):
            assert 8 <= a.size <= 11
            for b in placed[i + 1 :]:
                gap_x = abs(a.cx - b.cx) - (a.size + b.size) / 2
                gap_y = abs(a.cy - b.cy) - (a.size + b.size) / 2
                assert max(gap_x, gap_y) >= MIN_GAP
        spec = parse("a red square on the top and a cyan circle on the bottom")
        first, second = layout(spec, random.Random(seed))
        assert relation_margin(spec.relation, first.centroid(), second.centroid()) > 0


@pytest.mark.parametrize("split", ["train", "heldout"])
@pytest.mark.parametrize("sigma", [0.0, 0.5])
def test_scorer_on_ground_truth_per_type(split, sigma):
    for t, prompts in _prompts_by_type(split).items():
        images = np.stack([render(p, i) for i, p in enumerate(prompts)])
        if sigma:
            images = _blur(images, sigma)
        result = score(images, prompts)
        assert result.correct.float().mean() >= 0.99, (t, sigma)
        assert result.soft.min() >= 0 and result.soft.max() <= 1
        assert result.soft.mean() > (0.95 if sigma == 0 else 0.85), (t, sigma)


def test_scorer_rejects_shuffled_prompts():
    by_type = _prompts_by_type()
    prompts = [p for t in PROMPT_TYPES for p in by_type[t]]
    images = np.stack([render(p, i) for i, p in enumerate(prompts)])
    shuffled = prompts[7:] + prompts[:7]
    keep = [i for i, (a, b) in enumerate(zip(prompts, shuffled, strict=True)) if a != b]
    wrong = score(images[keep], [shuffled[i] for i in keep])
    right = score(images[keep], [prompts[i] for i in keep])
    assert wrong.correct.float().mean() <= 0.02
    assert wrong.soft.mean() < right.soft.mean() - 0.4


def test_soft_rewards_partial_success_and_relation():
    both = render("a red circle and a blue square", 0)
    only_red = both * (np.abs(both.astype(int) - (230, 40, 40)).sum(-1) < 200)[..., None]
    pair = "a red circle and a blue square"
    full, half, none = score(np.stack([both, only_red, np.zeros_like(both)]), pair).soft.tolist()
    assert full > half > none == 0.0
    left = "a red circle on the left and a blue square on the right"
    image = render(left, 2)
    flipped = image[:, ::-1].copy()
    ok, bad = score(np.stack([image, flipped]), left).correct.tolist()
    assert ok and not bad


def test_scorer_accepts_pil_numpy_and_tensors():
    prompts = ["two cyan squares", "a yellow triangle"]
    images = np.stack([render(p, 0) for p in prompts])
    as_uint8 = score(images, prompts)
    as_pil = score([Image.fromarray(im) for im in images], prompts)
    as_tensor = score(torch.from_numpy(images).permute(0, 3, 1, 2) / 255.0, prompts)
    assert as_uint8.correct.all() and torch.equal(as_uint8.correct, as_pil.correct)
    assert torch.allclose(as_uint8.soft, as_tensor.soft) and torch.equal(as_pil.soft, as_uint8.soft)
    with pytest.raises(GoldenNoiseError, match="32x32"):
        score(np.zeros((2, 64, 64, 3), np.uint8), prompts)
    with pytest.raises(GoldenNoiseError, match="one prompt per image"):
        score(images, prompts[:1] * 3)


def test_counts_and_extra_objects_cost_as_the_formula_says():
    """`correct` needs exact counts and no extras; `soft` divides the matched objects' value by
    max(prompted, detected). Worked from the detected objects: with two prompted and three
    found, soft = 0.8 * (two best IoUs) / 3 + 0.2 * (their brightness) / (image brightness);
    a lone prompted circle beside an unprompted square gets 0.8 * IoU / 2 + 0.2 * share."""
    from golden_noise.toy.scorer import MIN_AREA, detect

    cases = [
        ("three green triangles", "two green triangles", 2),
        ("a red circle and a blue square", "a red circle", 1),
    ]
    for drawn, prompt, kept in cases:
        image = render(drawn, 0)
        found, total = detect(image.astype(np.float32) / 255.0)
        objects = [f for f in found if f.area >= MIN_AREA]
        assert len(objects) == kept + 1
        assert score(image, drawn).correct.item()
        matched = sorted(
            (f for f in objects if (f.colour, f.shape) in parse(prompt).objects),
            key=lambda f: f.iou,
            reverse=True,
        )[:kept]
        expected = 0.8 * sum(f.iou for f in matched) / (kept + 1)
        expected += 0.2 * sum(f.brightness for f in matched) / total
        result = score(image, prompt)
        assert not result.correct.item(), prompt
        # float32 soft against float64 arithmetic on the same detections
        assert result.soft.item() == pytest.approx(expected, abs=1e-6), prompt
