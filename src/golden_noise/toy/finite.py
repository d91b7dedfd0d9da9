"""NaN or infinite numbers stop the toy tools: a diverged fit would otherwise be written, and
scored, as if it had worked (every image it draws, every score it gives, NaN)."""

import math
from collections.abc import Iterable
from typing import Any

import torch

from golden_noise.core.errors import GoldenNoiseError


def non_finite(tensors: Iterable[tuple[str, torch.Tensor]]) -> list[str]:
    """Names of the floating-point tensors holding a NaN or an infinity, in order."""
    return [
        name
        for name, tensor in tensors
        if tensor.is_floating_point() and not torch.isfinite(tensor).all()
    ]


def stop_if_diverged(what: str, value: float, advice: str) -> None:
    """Stop a fit whose `what` (a loss, a statistic) is NaN or infinite, before it is used."""
    if not math.isfinite(float(value)):
        raise GoldenNoiseError(f"training diverged: the {what} is {value}. {advice}")


def stop_if_weights_diverged(
    what: str, tensors: Iterable[tuple[str, torch.Tensor]], advice: str
) -> None:
    """Stop before weights holding NaN or infinity are written anywhere."""
    broken = non_finite(tensors)
    if broken:
        raise GoldenNoiseError(
            f"training diverged: {len(broken)} of the {what}'s weight tensors are NaN or "
            f"infinite (first: {broken[0]}). {advice}"
        )


def pipeline_weights(pipe: Any) -> list[tuple[str, torch.Tensor]]:
    """Every weight tensor of a pipeline's models, named `component.key`."""
    return [
        (f"{name}.{key}", tensor)
        for name, part in pipe.components.items()
        if isinstance(part, torch.nn.Module)
        for key, tensor in part.state_dict().items()
    ]


def check_finite_pipeline(pipe: Any, source: object) -> None:
    """Refuse a pipeline (loaded from `source`) with NaN or infinite weights: a diverged run's,
    whose every image would be NaN and score as a silent 0."""
    broken = non_finite(pipeline_weights(pipe))
    if broken:
        raise GoldenNoiseError(
            f"the pipeline in {source} holds NaN or infinite weights in {len(broken)} tensors "
            f"(first: {broken[0]}): it came from a diverged run, and every image it drew would "
            "be NaN. Train it again with lower learning rates"
        )
