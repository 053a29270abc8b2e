"""The app's colours and colour scales, one set for the tinted text (highlight.py) and the
charts (webapp/charts/), so a sentence has the same colour in both."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Scale:
    """Where a colour scale gives full tint: ``span`` away from its centre. The centre is 0
    (a reward: above it purple, below orange) unless ``mean`` is set: log-probabilities are
    all negative, so a scale about 0 would tint every one of them orange; they are centred
    at their mean instead, and the legend says so. A weight's scale runs from 0 to ``span``."""

    span: float
    mean: float | None = None

    @property
    def centre(self) -> float:
        return 0.0 if self.mean is None else self.mean


def as_scale(scale: float | Scale) -> Scale:
    """A bare number is the span of a scale about 0 (what the pages passed before means)."""
    return scale if isinstance(scale, Scale) else Scale(scale)


def centred_scale(values: Iterable[float | None]) -> Scale:
    """A scale centred at the mean of the values that are numbers, reaching the one farthest
    from it: ``centred_scale([-1.0, -3.0]) == Scale(1.0, mean=-2.0)``. Never a span of 0."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return Scale(1.0)
    mean = math.fsum(finite) / len(finite)
    return Scale(max_abs(v - mean for v in finite), mean=mean)
