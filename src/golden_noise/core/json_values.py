"""JSON has no NaN or infinity: files and stdout that other tools parse say null there.

Python's json module writes bare `NaN`, which strict parsers (JavaScript's JSON.parse, jq)
refuse; a statistic that does not exist (the interval of one pair) is null instead.
"""

from __future__ import annotations

import math
from typing import Any


def finite_or_null(value: Any) -> Any:
    """`value` with every non-finite float, however deeply nested, replaced by None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): finite_or_null(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_null(v) for v in value]
    return value
