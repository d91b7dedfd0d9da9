"""The toy world's language: colours, shapes, the four prompt types and the data splits.

Prompts follow exactly four templates (like GenEval's categories):

- single:   ``a {colour} {shape}``
- pair:     ``a {colour} {shape} and a {colour} {shape}`` (the two objects differ)
- counting: ``two {colour} {shape}s`` / ``three {colour} {shape}s``
- position: ``a {colour} {shape} on the {p} and a {colour} {shape} on the {q}`` with (p, q) in
  (left, right), (right, left), (top, bottom), (bottom, top) and two different colours.

Splits. A *composition* is what a prompt asks for regardless of wording: the unordered pair of
objects for pair and position prompts, (count, colour, shape) for counting prompts. Two fixed
sets of compositions are kept out of training: ``HELDOUT_*`` (generalisation tests, reported
numbers) and ``VALIDATION_*`` (where settings such as the guidance scale are chosen; never
choose on held-out). An object pair in either set never appears together in any pair *or*
position prompt during training. The 18 single prompts are too few to hold out and belong to
every split.
"""

import random
import re
from dataclasses import dataclass
from functools import cache

from golden_noise.core.errors import GoldenNoiseError

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 90, 240),
    "yellow": (240, 220, 40),
    "magenta": (220, 60, 220),
    "cyan": (40, 210, 220),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
PROMPT_TYPES: tuple[str, ...] = ("single", "pair", "counting", "position")
SPLITS: tuple[str, ...] = ("train", "validation", "heldout")
RELATIONS: tuple[tuple[str, str], ...] = (
    ("left", "right"),
    ("right", "left"),
    ("top", "bottom"),
    ("bottom", "top"),
)
COUNT_WORDS: dict[str, int] = {"two": 2, "three": 3}

Object = tuple[str, str]  # (colour, shape)

HELDOUT_PAIRS: tuple[tuple[Object, Object], ...] = (
    (("red", "circle"), ("blue", "square")),
    (("green", "triangle"), ("yellow", "circle")),
    (("blue", "triangle"), ("magenta", "circle")),
    (("cyan", "square"), ("red", "triangle")),
    (("yellow", "square"), ("cyan", "triangle")),
    (("magenta", "square"), ("green", "circle")),
    (("red", "square"), ("cyan", "circle")),
    (("green", "square"), ("blue", "circle")),
    (("yellow", "triangle"), ("magenta", "triangle")),
    (("blue", "circle"), ("red", "circle")),
    (("magenta", "circle"), ("yellow", "square")),
    (("cyan", "triangle"), ("green", "square")),
)
VALIDATION_PAIRS: tuple[tuple[Object, Object], ...] = (
    (("red", "circle"), ("green", "square")),
    (("blue", "square"), ("yellow", "triangle")),
    (("magenta", "triangle"), ("cyan", "circle")),
    (("yellow", "circle"), ("red", "square")),
    (("green", "triangle"), ("blue", "triangle")),
    (("cyan", "square"), ("magenta", "square")),
    (("red", "triangle"), ("yellow", "square")),
    (("blue", "circle"), ("cyan", "triangle")),
    (("green", "circle"), ("magenta", "circle")),
    (("yellow", "triangle"), ("red", "circle")),
    (("magenta", "square"), ("blue", "triangle")),
    (("cyan", "circle"), ("green", "triangle")),
)
HELDOUT_COUNTS: tuple[tuple[int, str, str], ...] = (
    (3, "red", "triangle"),
    (2, "blue", "circle"),
    (3, "green", "square"),
    (2, "yellow", "triangle"),
    (3, "magenta", "circle"),
    (2, "cyan", "square"),
)
VALIDATION_COUNTS: tuple[tuple[int, str, str], ...] = (
    (2, "red", "square"),
    (3, "blue", "triangle"),
    (2, "green", "circle"),
    (3, "yellow", "square"),
    (2, "magenta", "triangle"),
    (3, "cyan", "circle"),
)


@dataclass(frozen=True)
class Spec:
    """What a prompt asks for: the objects (with repeats for counting) and an optional relation.

    ``relation`` is ``(p, q)``: ``objects[0]`` must be on side ``p`` of ``objects[1]``.
    """

    prompt_type: str
    objects: tuple[Object, ...]
    relation: tuple[str, str] | None = None

    def composition(self) -> object:
        """The split key: unordered object pair, or (count, colour, shape) for counting."""
        if self.prompt_type == "counting":
            return (len(self.objects), *self.objects[0])
        if self.prompt_type in ("pair", "position"):
            return frozenset(self.objects)
        return self.objects[0]


_C = "|".join(COLOURS)
_S = "|".join(SHAPES)
_P = "left|right|top|bottom"
_PATTERNS = {
    "single": re.compile(rf"a ({_C}) ({_S})"),
    "pair": re.compile(rf"a ({_C}) ({_S}) and a ({_C}) ({_S})"),
    "counting": re.compile(rf"(two|three) ({_C}) ({_S})s"),
    "position": re.compile(rf"a ({_C}) ({_S}) on the ({_P}) and a ({_C}) ({_S}) on the ({_P})"),
}


def parse(prompt: str) -> Spec:
    """Read a prompt of the toy grammar; anything else is a user error."""
    text = " ".join(prompt.lower().split())
    for kind, pattern in _PATTERNS.items():
        m = pattern.fullmatch(text)
        if m is None:
            continue
        g = m.groups()
        if kind == "single":
            return Spec(kind, ((g[0], g[1]),))
        if kind == "pair" and (g[0], g[1]) != (g[2], g[3]):
            return Spec(kind, ((g[0], g[1]), (g[2], g[3])))
        if kind == "counting":
            return Spec(kind, ((g[1], g[2]),) * COUNT_WORDS[g[0]])
        if kind == "position" and g[0] != g[3] and (g[2], g[5]) in RELATIONS:
            return Spec(kind, ((g[0], g[1]), (g[3], g[4])), (g[2], g[5]))
    raise GoldenNoiseError(
        f"expected a toy-world prompt such as 'a red circle', 'a red circle and a blue square', "
        f"'two red circles' or 'a red circle on the left and a blue square on the right' "
        f"(colours {', '.join(COLOURS)}; shapes {', '.join(SHAPES)}), got {prompt!r}"
    )


def _all_prompts() -> dict[str, list[str]]:
    objects = [(c, s) for c in COLOURS for s in SHAPES]
    single = [f"a {c} {s}" for c, s in objects]
    pair = [f"a {c1} {s1} and a {c2} {s2}" for c1, s1 in objects for c2, s2 in objects]
    pair = [p for p in pair if parse_ok(p)]
    counting = [f"{w} {c} {s}s" for w in COUNT_WORDS for c, s in objects]
    position = [
        f"a {c1} {s1} on the {p} and a {c2} {s2} on the {q}"
        for c1, s1 in objects
        for c2, s2 in objects
        for p, q in RELATIONS
        if c1 != c2
    ]
    return {"single": single, "pair": pair, "counting": counting, "position": position}


def prompt_type(prompt: str) -> str | None:
    """The prompt's type (single, pair, counting, position), None outside the toy grammar.

    Evaluation groups its statistics by this for any prompt set, toy or not.
    """
    try:
        return parse(prompt).prompt_type
    except GoldenNoiseError:
        return None


def parse_ok(prompt: str) -> bool:
    """Whether a prompt belongs to the toy grammar."""
    return prompt_type(prompt) is not None


def split_of(prompt: str) -> str:
    """Which split a prompt's composition belongs to ('train', 'validation' or 'heldout')."""
    key = parse(prompt).composition()
    if key in _split_keys("heldout"):
        return "heldout"
    if key in _split_keys("validation"):
        return "validation"
    return "train"


@cache
def _split_keys(split: str) -> frozenset:
    pairs, counts = (
        (HELDOUT_PAIRS, HELDOUT_COUNTS)
        if split == "heldout"
        else (VALIDATION_PAIRS, VALIDATION_COUNTS)
    )
    return frozenset([frozenset(p) for p in pairs] + list(counts))


@cache
def prompts_of(split: str, prompt_type: str) -> tuple[str, ...]:
    """Every prompt of one type in one split (singles are in every split)."""
    _check_choice("split", split, SPLITS)
    _check_choice("prompt type", prompt_type, PROMPT_TYPES)
    every = _all_prompts()[prompt_type]
    if prompt_type == "single":
        return tuple(every)
    return tuple(p for p in every if split_of(p) == split)


def sample_prompts(n: int, seed: int, split: str = "train") -> list[str]:
    """``n`` prompts from ``split``, the four prompt types in turn, each drawn uniformly."""
    _check_choice("split", split, SPLITS)
    rng = random.Random(seed)
    return [rng.choice(prompts_of(split, PROMPT_TYPES[i % 4])) for i in range(n)]


def every_prompt(split: str, seed: int = 0) -> list[str]:
    """Every prompt of ``split`` once, the four types in turn while each lasts (each type's
    order shuffled by ``seed``): any prefix is as balanced a mix as the split allows."""
    _check_choice("split", split, SPLITS)
    rng = random.Random(seed)
    pools = []
    for kind in PROMPT_TYPES:
        pool = list(prompts_of(split, kind))
        rng.shuffle(pool)
        pools.append(pool)
    longest = max(map(len, pools))
    return [pool[i] for i in range(longest) for pool in pools if i < len(pool)]


def _check_choice(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise GoldenNoiseError(f"expected {what} in {allowed}, got {value!r}")
