"""The learnable-target teachers (evolution, reward gradient, prompt offset), the
differentiable sampler path and the toy surrogate reward, each against an independent
computation."""

from __future__ import annotations

import dataclasses
import math
import random
import zlib

import numpy as np
import pytest
import tiny_pipelines
import torch
from diffusers import DDIMScheduler

from golden_noise.core.errors import GoldenNoiseError
from golden_noise.npnet import NPNet, NPNetConfig
from golden_noise.teachers import (
    CollectionSampler,
    EvolutionTeacher,
    PromptOffsetTeacher,
    RewardGradientTeacher,
    Rows,
    SamplerSettings,
)
from golden_noise.toy import scenes
from golden_noise.toy.grammar import COLOURS, parse
from golden_noise.toy.scorer import FG_THRESHOLD
from golden_noise.toy.surrogate import OBJECT_AREA, reward

PROMPTS = ["a red circle", "two blue squares", "a green triangle"]
SHAPE = (4, 6, 6)


# --- evolution: a stand-in sampler whose score is a known function of the latent -----------


def _weights(prompt_id: int) -> torch.Tensor:
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(100 + prompt_id))


def _known_score(latent: torch.Tensor, prompt_id: int) -> torch.Tensor:
    """Nonlinear, different for every prompt, so a row scored with another's prompt shows."""
    return torch.tanh((_weights(prompt_id) * latent).sum() / 8) + 0.05 * latent.mean() ** 2


class _KnownSampler:
    """Scores each latent row by `_known_score` with the prompt its call-kwargs row names."""

    settings = SamplerSettings(steps=2)

    def __init__(self, constant: bool = False) -> None:
        self.constant = constant

    def score(self, latents, call_kwargs, prompts, seeds) -> torch.Tensor:
        ids = call_kwargs["prompt_id"].tolist()
        assert [PROMPTS[i] for i in ids] == list(prompts)  # kwargs rows follow the prompts
        if self.constant:
            return torch.zeros(len(prompts))
        return torch.stack([_known_score(z, i) for z, i in zip(latents, ids, strict=True)])


def _rows(order: list[int]) -> Rows:
    seeds = [11, 12, 13]
    source = torch.stack(
        [torch.randn(SHAPE, generator=torch.Generator().manual_seed(seeds[i])) for i in order]
    )
    return Rows(
        [PROMPTS[i] for i in order],
        list(order),
        [seeds[i] for i in order],
        source,
        {"prompt_id": torch.tensor(order)},
    )


def _row_candidates(seed: int, prompt_index: int, k: int, shape=SHAPE, *more: int) -> torch.Tensor:
    """The documented draw: a generator seeded from SeedSequence([seed, prompt_index, *more])."""
    state = np.random.SeedSequence([seed, prompt_index, *more]).generate_state(1, np.uint64)
    gen = torch.Generator().manual_seed(int(state[0]) & (2**63 - 1))
    return torch.randn((k, *shape), generator=gen)


def test_evolution_target_is_the_antithetic_es_step_computed_row_by_row() -> None:
    teacher = EvolutionTeacher(pairs=3, angle=0.4, step=5.0)
    rows = _rows([0, 1, 2])
    taught = teacher.teach(rows, _KnownSampler())
    cos, sin = math.cos(0.4), math.sin(0.4)
    for i in range(3):
        x, pid = rows.source[i], rows.prompt_index[i]
        eps = _row_candidates(rows.seeds[i], pid, 3)
        direction = torch.zeros(SHAPE)
        for e in eps:
            plus = _known_score(x * cos + e * sin, pid)
            minus = _known_score(x * cos - e * sin, pid)
            direction += (plus - minus) / 2 * e
        expected = x + 5.0 * direction / 3
        # same float32 ops in another order: ~1e-6; a wrong sign, pairing or mean is O(0.1)
        torch.testing.assert_close(taught.target[i], expected, rtol=0, atol=1e-5)
        assert float(taught.score_source[i]) == pytest.approx(float(_known_score(x, pid)), abs=1e-6)
        target_score = float(_known_score(taught.target[i], pid))
        assert float(taught.score_target[i]) == pytest.approx(target_score, abs=1e-6)
    assert (taught.target - rows.source).abs().max() > 1e-2  # the step really moved


def test_evolution_candidates_depend_only_on_the_row_key() -> None:
    """A row gets the same target whatever batch or position it is taught in (resume, shard)."""
    teacher = EvolutionTeacher(pairs=2)
    whole = teacher.teach(_rows([0, 1, 2]), _KnownSampler())
    apart = teacher.teach(_rows([2, 0]), _KnownSampler())
    # Elementwise ops and reductions of a fixed per-row shape: bit-identical whatever the batch
    # on any CPU (measured 0.0); 1e-6 is ~1 ulp at the targets' size (|x| <= ~11), while a
    # candidate drawn from the wrong row key moves them by O(1).
    torch.testing.assert_close(apart.target, whole.target[[2, 0]], rtol=0, atol=1e-6)


def test_evolution_keeps_the_source_when_every_pair_ties() -> None:
    rows = _rows([0, 1, 2])
    taught = EvolutionTeacher(pairs=2).teach(rows, _KnownSampler(constant=True))
    torch.testing.assert_close(taught.target, rows.source, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"pairs": 0}, "antithetic pair"),
        ({"pairs": True}, "antithetic pair"),
        ({"angle": 0.0}, "angle"),
        ({"angle": 2.0}, "angle"),
        ({"step": 0.0}, "step"),
        ({"step": float("nan")}, "step"),
    ],
)
def test_evolution_rejects_bad_options(options, message) -> None:
    with pytest.raises(GoldenNoiseError, match=message):
        EvolutionTeacher(**options)


# --- reward gradient and the differentiable sampler path, on a tiny SD pipeline -------------


@pytest.fixture(scope="module")
def tiny():
    return tiny_pipelines.sd_teacher_setup(PROMPTS)


def _images_by_hand(pipe, rows: Rows, latents: torch.Tensor, steps: int = 2) -> torch.Tensor:
    """The pipeline's own undecorated call with a DDIM scheduler, gradients on."""
    ddim = DDIMScheduler.from_config(pipe.scheduler.config, clip_sample=False, thresholding=False)
    original, pipe.scheduler = pipe.scheduler, ddim
    try:
        with torch.enable_grad():
            return type(pipe).__call__.__wrapped__(
                pipe, **rows.call_kwargs, latents=latents, num_inference_steps=steps,
                guidance_scale=5.5, output_type="pt",
            ).images  # fmt: skip
    finally:
        pipe.scheduler = original


def test_differentiable_images_equal_the_pil_images_and_carry_a_gradient(tiny) -> None:
    _, rows, sampler = tiny
    pil = sampler.images(rows.source, rows.call_kwargs, rows.seeds)
    latents = rows.source.clone().requires_grad_(True)
    images = sampler.differentiable_images(latents, rows.call_kwargs, rows.seeds)
    as_pixels = images.detach().permute(0, 2, 3, 1) * 255
    expected = torch.from_numpy(np.stack([np.asarray(im) for im in pil])).float()
    # PIL rounds to integers (<= 0.5 off), and round-off can tip a .5 either way
    torch.testing.assert_close(as_pixels, expected, rtol=0, atol=0.51)
    assert (as_pixels - expected).abs().mean() < 0.3  # not just everything half a level off
    (grad,) = torch.autograd.grad(images[:, 0].mean(), latents)
    assert torch.isfinite(grad).all() and grad.abs().amax(dim=(1, 2, 3)).min() > 0


def test_one_ascent_step_follows_the_reward_gradient_computed_by_hand(tiny) -> None:
    pipe, rows, sampler = tiny
    x = rows.source.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(reward(_images_by_hand(pipe, rows, x), PROMPTS).sum(), x)
    norms = rows.source.flatten(1).norm(dim=1)[:, None, None, None]
    moved = rows.source + 2.0 * grad / grad.flatten(1).norm(dim=1)[:, None, None, None]
    expected = moved * norms / moved.flatten(1).norm(dim=1)[:, None, None, None]
    found = RewardGradientTeacher(ascent_steps=1, ascent_size=2.0).ascend(rows, sampler)
    # same float32 graph run twice; a wrong sign, norm or step is O(0.1) on unit noise
    torch.testing.assert_close(found, expected, rtol=0, atol=1e-4)
    assert (found - rows.source).abs().max() > 0.05


def test_reward_gradient_target_keeps_each_source_norm_and_is_scored(tiny) -> None:
    _, rows, sampler = tiny
    taught = RewardGradientTeacher(ascent_steps=2, ascent_size=3.0).teach(rows, sampler)
    # one rescale per step in float32 on 1,024 numbers: ~1e-7 relative
    torch.testing.assert_close(
        taught.target.flatten(1).norm(dim=1), rows.source.flatten(1).norm(dim=1), rtol=1e-5, atol=0
    )
    assert (taught.target - rows.source).abs().max() > 0.05
    expected = sampler.score(
        torch.cat([rows.source, taught.target]),
        {k: torch.cat([v, v]) for k, v in rows.call_kwargs.items() if torch.is_tensor(v)}
        | {k: v for k, v in rows.call_kwargs.items() if not torch.is_tensor(v)},
        PROMPTS * 2,
        rows.seeds * 2,
    )
    # the same batch scored the same way: identical
    torch.testing.assert_close(torch.cat([taught.score_source, taught.score_target]), expected)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"reward": "hpsv9"}, "unknown differentiable reward 'hpsv9'; expected one of toy"),
        ({"ascent_steps": 0}, "ascent_steps must be an integer >= 1"),
        ({"ascent_steps": True}, "ascent_steps must be an integer >= 1"),
        ({"ascent_steps": 1.5}, "ascent_steps must be an integer >= 1"),
        ({"ascent_size": 0.0}, "ascent_size must be a positive number"),
        ({"ascent_size": float("inf")}, "ascent_size must be a positive number"),
    ],
)
def test_reward_gradient_rejects_bad_options(options, message) -> None:
    with pytest.raises(GoldenNoiseError, match=message):
        RewardGradientTeacher(**options)


# --- the toy surrogate reward ----------------------------------------------------------------


def _as_batch(*pictures: np.ndarray) -> torch.Tensor:
    return torch.stack([torch.from_numpy(p).permute(2, 0, 1).float() / 255 for p in pictures])


def test_surrogate_of_a_black_image_by_hand() -> None:
    """Black: every pixel is 1/6 foreground-ish colour of each kind (cosine 0 to all)."""
    each = 32 * 32 * (1 / (1 + math.exp(20 * FG_THRESHOLD))) / len(COLOURS)
    single = -abs(each - OBJECT_AREA) / OBJECT_AREA - (len(COLOURS) - 1) * each / OBJECT_AREA
    two = -abs(each - 2 * OBJECT_AREA) / (2 * OBJECT_AREA) - (len(COLOURS) - 1) * each / OBJECT_AREA
    black = torch.zeros(2, 3, 32, 32)
    found = reward(black, ["a red circle", "two blue squares"])
    # float32 sums of 1,024 equal terms: ~1e-6
    torch.testing.assert_close(found, torch.tensor([single, two]), rtol=0, atol=1e-5)


def test_surrogate_prefers_the_prompted_layout_and_colours() -> None:
    prompt = "a red circle on the left and a blue square on the right"
    placed = scenes.layout(parse(prompt), random.Random(4))
    good = scenes.draw(placed)
    first, second = placed
    swapped = scenes.draw(
        [
            dataclasses.replace(first, cx=second.cx, cy=second.cy),
            dataclasses.replace(second, cx=first.cx, cy=first.cy),
        ]
    )
    recoloured = scenes.draw([dataclasses.replace(first, colour="green"), second])
    values = reward(_as_batch(good, swapped, recoloured), [prompt] * 3)
    assert values[0] > values[1] and values[0] > values[2], values
    # swapping moves only the position term tanh(margin / 8) from + to -: both shapes are
    # symmetric, so the colour centroids are the shape centres (aliasing and the faint
    # background weight move them by < 0.1 px, the areas by < 1 %)
    margin = scenes.relation_margin(("left", "right"), first.centroid(), second.centroid())
    assert float(values[0] - values[1]) == pytest.approx(2 * math.tanh(margin / 8), abs=0.05)
    # recolouring red to green costs the whole red term (~1) and adds green's area (~1)
    assert float(values[0] - values[2]) > 1.5


# --- prompt offsets: one fitted shift per prompt -------------------------------------------


def _fit_noise(rows: Rows, step: int, k: int, fit_seed: int = 0) -> torch.Tensor:
    """The documented fit draw: k noises per prompt from a generator fixed by (step, the
    CRC-32 of the prompt's text), and the fit seed when it is not 0."""
    shape = rows.source.shape[1:]
    keys = [zlib.crc32(p.encode()) for p in rows.prompts]
    more = (fit_seed,) if fit_seed else ()
    return torch.cat([_row_candidates(step, key, k, shape, *more) for key in keys])


def _rescaled(latents: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    norm = lambda z: z.flatten(1).norm(dim=1)[:, None, None, None]  # noqa: E731
    return latents * norm(reference) / norm(latents)


def _leaned_toward(x: torch.Tensor, modes: torch.Tensor) -> torch.Tensor:
    """Row by row, the mode with the largest cosine to the noise (independent of `route`)."""
    picked = []
    for noise, options in zip(x, modes, strict=True):
        cosines = [float((noise * m).sum() / m.norm()) for m in options]
        picked.append(options[max(range(len(cosines)), key=cosines.__getitem__)])
    return torch.stack(picked)


@pytest.mark.parametrize(
    ("fit_steps", "images_per_call", "fit_seed"),
    # the sampler's 2 steps in one call; 1 step, a prompt per call; a second fit's draws
    [(None, None, 0), (1, 2, 0), (None, None, 3)],
)
def test_prompt_offset_first_step_is_adams_sign_step_on_the_hand_gradient(
    tiny, fit_steps, images_per_call, fit_seed
) -> None:
    pipe, rows, sampler = tiny
    if images_per_call is not None:  # the fit sums its gradient over calls of k images
        sampler = CollectionSampler(pipe, sampler.scorer, sampler.settings, images_per_call)
    k, lr = 2, 0.05
    x = _fit_noise(rows, 0, k, fit_seed)
    offsets = torch.zeros_like(rows.source, requires_grad=True)
    golden = _rescaled(x + offsets.repeat_interleave(k, dim=0), x)
    repeated = Rows(
        [p for p in PROMPTS for _ in range(k)], [], [], x,
        {key: v.repeat_interleave(k, dim=0) if torch.is_tensor(v) else v
         for key, v in rows.call_kwargs.items()},
    )  # fmt: skip
    hand_steps = fit_steps or sampler.settings.steps
    rewards = reward(_images_by_hand(pipe, repeated, golden, hand_steps), repeated.prompts)
    move = (golden - x).flatten(1).pow(2).sum(1) / x.flatten(1).pow(2).sum(1)
    loss = (-rewards + 0.3 * move).view(-1, k).mean(dim=1).sum()
    (grad,) = torch.autograd.grad(loss, offsets)
    teacher = PromptOffsetTeacher(
        "toy-surrogate", iters=1, noises=k, lr=lr, stay_close=0.3, fit_steps=fit_steps,
        fit_seed=fit_seed,
    )  # fmt: skip
    # recorded only when set, so datasets fitted before the option still resume
    assert teacher.options().get("fit_seed") == (fit_seed or None)
    (found,) = teacher.offsets(rows, sampler).unbind(1)  # one mode
    # Adam's first step is -lr * g / (|g| + 1e-8), about +-lr: its sign follows the hand
    # gradient wherever that is clearly non-zero (here every element is above 1e-4 of the
    # largest). Its size depends on round-off only through 1e-8 / |g|: the two gradients
    # differ by float round-off (~1e-6 of the largest, on any CPU), which moves the step by
    # < 1e-7 where |g| > 1e-3 of the largest (measured 6e-8; at 1e-4 it was 7e-7, too close
    # to the bound), so the size is checked there (99.7% of elements here)
    step = -lr * grad / (grad.abs() + 1e-8)
    clear = grad.abs() > 1e-4 * grad.abs().max()
    assert clear.float().mean() > 0.9
    assert torch.equal(found.sign()[clear], step.sign()[clear])
    sized = grad.abs() > 1e-3 * grad.abs().max()
    assert sized.float().mean() > 0.9
    torch.testing.assert_close(found[sized], step[sized], rtol=0, atol=1e-6)
    taught = teacher.teach(rows, sampler)
    # targets: each source shifted by its prompt's offset, rescaled to the source's norm; the
    # same float32 rescale written two ways differs by a few ulps of values below 4 (the
    # seeds' noise is the same on every CPU; one ulp there is 2.4e-7; measured 2.4e-7)
    torch.testing.assert_close(
        taught.target, _rescaled(rows.source + found, rows.source), rtol=0, atol=1e-6
    )


def test_prompt_offset_is_a_function_of_the_prompt_not_of_the_batch(tiny) -> None:
    _, rows, sampler = tiny
    first = PromptOffsetTeacher("toy-surrogate", iters=2, noises=2)
    statuses: list[str] = []
    taught = first.teach(dataclasses.replace(rows, status=statuses.append), sampler)
    # what collect's progress bar shows while the batch's fit runs
    assert statuses == [f"fitting 3 prompt offsets, step {s}/2" for s in (1, 2)]
    # one rescale in float32 on 1,024 numbers: ~1e-7 relative
    torch.testing.assert_close(
        taught.target.flatten(1).norm(dim=1), rows.source.flatten(1).norm(dim=1), rtol=1e-5, atol=0
    )
    assert (taught.target - rows.source).abs().max() > 0.05
    # the same prompts in another order, under other indices, with other sources, fitted by
    # a fresh teacher
    order = [2, 0]
    other = Rows(
        [PROMPTS[i] for i in order], [7, 8], [21, 22],
        torch.randn((2, *rows.source.shape[1:]), generator=torch.Generator().manual_seed(9)),
        {key: v[order] if torch.is_tensor(v) else v for key, v in rows.call_kwargs.items()},
    )  # fmt: skip
    second = PromptOffsetTeacher("toy-surrogate", iters=2, noises=2)
    # the batch size changes float results ~1e-6, which two Adam steps carry at most to
    # ~1e-4; another prompt's or another step's offset differs by ~lr = 0.05
    torch.testing.assert_close(
        second.offsets(other, sampler), first.offsets(rows, sampler)[order], rtol=0, atol=1e-3
    )
    assert first.offsets(rows, sampler).shape == (3, 1, *rows.source.shape[1:])
    # a prompt already fitted is not fitted again: the new rows cost only their scoring
    before = sampler.images_generated
    first.teach(other, sampler)
    assert sampler.images_generated - before == 2 * len(other)


def test_prompt_offset_modes_shift_each_source_by_the_mode_it_leans_toward(tiny) -> None:
    _, rows, sampler = tiny
    assert "modes" not in PromptOffsetTeacher("toy-surrogate").options()  # old datasets resume
    teacher = PromptOffsetTeacher("toy-surrogate", iters=2, noises=4, modes=3)
    assert teacher.options()["modes"] == 3
    offsets = teacher.offsets(rows, sampler)
    assert offsets.shape == (len(rows), 3, *rows.source.shape[1:])
    # three different starts (random directions keyed by the prompt's text), so three offsets
    assert torch.cdist(offsets[0].flatten(1), offsets[0].flatten(1)).triu(1).max() > 0.5
    chosen = _leaned_toward(rows.source, offsets)
    assert not torch.equal(chosen, offsets[:, 0])  # some source leans toward another mode
    taught = teacher.teach(rows, sampler)
    # both sides take the same norm op of bit-identical tensors (the chosen offsets are the
    # teacher's own) and differ only in the order of one multiply and one divide: at most
    # 2 roundings, 2 ulps of values below 4 (the seeded noise is the same on every CPU; max
    # 3.55, one ulp 2.4e-7), so 4.8e-7 < 1e-6 on any CPU; measured 2.4e-7
    torch.testing.assert_close(
        taught.target, _rescaled(rows.source + chosen, rows.source), rtol=0, atol=1e-6
    )


@pytest.mark.parametrize("fit_seed", [0, 2])
def test_prompt_offset_modes_start_from_the_documented_directions(tiny, fit_seed) -> None:
    """Each prompt's K modes start as unit random directions drawn from its text's CRC-32
    (with a fit seed: from SeedSequence([crc, seed])); one Adam step of lr 1e-7 moves them by
    at most 1e-7, far below the 1e-5 bound and the ~0.1 between draws of different keys."""
    _, rows, sampler = tiny
    shape = rows.source.shape[1:]
    teacher = PromptOffsetTeacher(
        "toy-surrogate", iters=1, noises=2, lr=1e-7, modes=3, fit_seed=fit_seed
    )
    for prompt, found in zip(rows.prompts, teacher.offsets(rows, sampler), strict=True):
        key = zlib.crc32(prompt.encode())
        if fit_seed:
            draws = _row_candidates(key, fit_seed, 3, shape)
        else:
            draws = torch.randn((3, *shape), generator=torch.Generator().manual_seed(key))
        expected = draws / draws.flatten(1).norm(dim=1)[:, None, None, None]
        torch.testing.assert_close(found, expected, atol=1e-5, rtol=0)


def _saved_offset_net(sampler, path, shape, residual_kind="prompt-offset", seed=3) -> None:
    """An offset-only NPNet (prompt-offset residual by default) for the tiny pipeline's
    prompts, saved at `path`; a prompt-offset head is drawn at random, so its offsets are far
    from zero (a fresh head is zero)."""
    tokens, dim = sampler.adapter.text_shape()
    config = NPNetConfig(
        channels=shape[0], height=shape[1], width=shape[2], text_tokens=tokens, text_dim=dim,
        residual_kind=residual_kind, keep_norm=True, use_svd=False, use_text=False,
    )  # fmt: skip
    torch.manual_seed(seed)
    net = NPNet(config)
    if residual_kind == "prompt-offset":
        torch.nn.init.normal_(net.residual.head.weight, std=0.05)
    net.save_pretrained(path)


def test_prompt_offset_init_starts_each_fit_at_the_nets_offset(tiny, tmp_path) -> None:
    _, rows, sampler = tiny
    _saved_offset_net(sampler, tmp_path / "net", rows.source.shape[1:])
    # the net's offset by its public forward: without keep_norm it returns x + offset
    plain = NPNet.from_pretrained(tmp_path / "net", keep_norm=False)
    tokens = sampler.adapter.encode_prompt(rows.prompts).tokens
    with torch.no_grad():
        expected = plain(rows.source, tokens) - rows.source
    assert 0.1 < expected.abs().max() < 2
    lr = 1e-4
    teacher = PromptOffsetTeacher(
        "toy-surrogate", iters=1, noises=2, lr=lr, init=str(tmp_path / "net")
    )
    assert teacher.options()["init"] == str(tmp_path / "net")
    (found,) = teacher.offsets(rows, sampler).unbind(1)  # one mode
    # one Adam step moves each element by lr |g| / (|g| + 1e-8) <= lr from where the fit
    # started; `plain(x) - x` and the step add round-off of a few ulps of the offsets, which
    # are below 2 (one ulp there is at most 2.4e-7 on any CPU; measured 2e-7)
    difference = (found - expected).abs()
    assert difference.max() <= lr + 1e-6
    assert difference.max() > lr / 2  # and the fit did take its step


def test_prompt_offset_init_is_recorded_by_content_not_only_by_path(tiny, tmp_path) -> None:
    """The options go into the dataset's manifest, which a resume must match: a net
    retrained in place under the same path starts the fits elsewhere, so it must differ."""
    _, rows, sampler = tiny
    shape, path = rows.source.shape[1:], tmp_path / "net"
    _saved_offset_net(sampler, path, shape)
    first = PromptOffsetTeacher("toy-surrogate", init=str(path)).options()
    _saved_offset_net(sampler, path, shape)  # saved again, same weights: the same record
    assert PromptOffsetTeacher("toy-surrogate", init=str(path)).options() == first
    _saved_offset_net(sampler, path, shape, seed=4)
    retrained = PromptOffsetTeacher("toy-surrogate", init=str(path)).options()
    assert retrained["init"] == first["init"]
    assert retrained["init_sha256"] != first["init_sha256"]


def test_prompt_offset_init_must_be_an_offset_net_for_these_latents(tiny, tmp_path) -> None:
    _, rows, sampler = tiny
    _saved_offset_net(sampler, tmp_path / "unet", rows.source.shape[1:], residual_kind="unet")
    with pytest.raises(GoldenNoiseError, match="prompt offsets need a net whose output is noise"):
        PromptOffsetTeacher("toy-surrogate", init=str(tmp_path / "unet"))
    _saved_offset_net(sampler, tmp_path / "other", shape=(4, 8, 8))
    teacher = PromptOffsetTeacher("toy-surrogate", iters=1, noises=2, init=str(tmp_path / "other"))
    with pytest.raises(
        GoldenNoiseError, match=r"made for latents \[4, 8, 8\]; this pipeline's are \[4, 16, 16\]"
    ):
        teacher.offsets(rows, sampler)
    _saved_offset_net(sampler, tmp_path / "one", rows.source.shape[1:])
    teacher = PromptOffsetTeacher(
        "toy-surrogate", iters=1, noises=2, init=str(tmp_path / "one"), modes=2
    )
    with pytest.raises(GoldenNoiseError, match="offers 1 offset mode.s. per prompt; this teacher"):
        teacher.offsets(rows, sampler)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"reward": "hpsv9"}, "unknown differentiable reward 'hpsv9'"),
        ({"iters": 0}, "prompt-offset iters must be an integer >= 1; got 0"),
        ({"noises": 1.5}, "prompt-offset noises must be an integer >= 1; got 1.5"),
        ({"lr": -0.1}, "prompt-offset lr must be a positive number; got -0.1"),
        ({"stay_close": float("nan")}, "prompt-offset stay_close must be >= 0; got nan"),
        ({"modes": 0}, "prompt-offset modes must be an integer >= 1; got 0"),
        ({"fit_steps": 0}, "prompt-offset fit_steps must be an integer >= 1; got 0"),
        ({"fit_seed": -1}, "prompt-offset fit_seed must be an integer >= 0; got -1"),
        ({"fit_seed": 1.0}, "prompt-offset fit_seed must be an integer >= 0; got 1.0"),
    ],
)
def test_prompt_offset_rejects_bad_options(options, message) -> None:
    with pytest.raises(GoldenNoiseError, match=message):
        PromptOffsetTeacher(**options)
