"""The package's layers, lowest first: a package imports only packages of a lower rank.

Packages on one rank are peers and import none of each other. `tests/test_architecture.py`
checks every import (module-level and inside functions) against this table, and that no
two modules import each other in a circle. The prose is in `golden_noise`'s docstring.
"""

LAYERS: tuple[tuple[str, ...], ...] = (
    ("core",),  # shared by all stages
    ("npnet", "dataset"),  # the model; the Noise Prompt Dataset on disk
    ("toy",),  # the embedded world: pipeline, scorer, rewards, shipped NPNet
    ("prompts", "adapters", "scorers"),  # registries: prompt sources, pipelines, scorers
    ("teachers",),  # Stage I targets: x_T -> x_T'
    ("collection", "train", "generation"),  # Stage I driver, Stage II, Stage III
    ("evaluation",),  # standard vs golden: statistics, diversity, report
    ("demo",),  # the toy world's end-to-end run
    ("cli",),  # `golden-noise ...`
)

RANK: dict[str, int] = {name: rank for rank, names in enumerate(LAYERS) for name in names}
