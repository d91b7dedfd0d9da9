"""NaN or infinite numbers stop the toy tools: a diverged fit would otherwise be written, and
scored, as if it had worked (every image it draws, every score it gives, NaN)."""

from collections.abc import Iterable

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
    if not torch.isfinite(torch.tensor(float(value))):
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
