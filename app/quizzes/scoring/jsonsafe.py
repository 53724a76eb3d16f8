"""Plain JSON from scoring results: no NaN, no infinity, no numpy scalars, no tuples."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def finite(value: Any) -> Any:
    """Numbers as plain floats, with NaN and +/-inf turned into None."""
    if type(value) is float:  # the common case first: this runs for every rating
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):  # numpy's float64 is one: made a plain float
        number = float(value)
        return number if math.isfinite(number) else None
    if type(value).__module__ != "numpy":
        return value
    # A numpy scalar: numpy is loaded already. Imported here, not with the module, so that
    # the pages that only show stored scores never load numpy.
    import numpy as np

    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        number = float(value)
        return number if math.isfinite(number) else None
    return value


def json_clean(value: Any) -> Any:
    """Recursively JSON-safe: tuples to lists, non-finite numbers to None."""
    if isinstance(value, Mapping):
        return {str(k): json_clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_clean(v) for v in value]
    return finite(value)
