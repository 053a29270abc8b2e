"""The app's colours and colour scales, one set for the tinted text (highlight.py) and the
charts (charts.py), so a sentence has the same colour in both."""

from __future__ import annotations

import math
from collections.abc import Iterable

# ColorBrewer PuOr ends: an orange/purple pair that stays distinct under the common colour-vision
# deficiencies (red/green would not), and BrBG teal for weights, which are not rewards.
NEGATIVE_RGB = (230, 97, 1)  # reward < 0
POSITIVE_RGB = (94, 60, 153)  # reward > 0
WEIGHT_RGB = (1, 133, 113)  # attention weight


def hex_color(rgb: tuple[int, int, int]) -> str:
    """``hex_color((230, 97, 1)) == "#e66101"``"""
    return "#{:02x}{:02x}{:02x}".format(*rgb)


NEGATIVE = hex_color(NEGATIVE_RGB)
POSITIVE = hex_color(POSITIVE_RGB)
WEIGHT = hex_color(WEIGHT_RGB)


def max_abs(values: Iterable[float | None]) -> float:
    """The end of a colour scale: the largest |value| that is a number, never 0 (1.0 when
    there is nothing to scale), so it is always safe to divide by."""
    finite = [abs(v) for v in values if v is not None and math.isfinite(v)]
    top = max(finite, default=0.0)
    return top if top > 0 else 1.0
