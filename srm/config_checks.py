"""How the configs (:mod:`srm.config`) word a refusal and read a field's range: the one place
pydantic's errors become this project's messages (``lr: got 0.0; use a positive number``), and
``Field(ge=..., lt=...)`` bounds become both the refusal's advice and a form's limits."""

from __future__ import annotations

import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from pydantic import BaseModel, ValidationError


class ConfigError(ValueError):
    """An impossible configuration value; the message names the field."""


@dataclass(frozen=True)
class Bounds:
    """A numeric field's range, from its ``Field`` (``ge``/``gt``, ``le``/``lt``)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def advice(self, whole: bool = False) -> str:
        """What a refusal says would be accepted: ``use 1 or more``, ``use a value in [0, 1)``."""
        number = "a whole number" if whole else "a value"
        low, high = _number(self.low), _number(self.high)
        if self.low is not None and self.high is not None:
            if self.low_open and self.high_open:
                return f"use {number} between {low} and {high}"
            if not self.low_open and not self.high_open:
                return f"use {number} from {low} to {high}"
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"use {number} in {left}{low}, {high}{right}"
        if self.low is not None:
            if self.low_open:
                return "use a positive number" if self.low == 0 else f"use {number} above {low}"
            return f"use {low} or more"
        if self.high is not None:
            return f"use {number} below {high}" if self.high_open else f"use {high} or less"
        return "use a finite number"

    def widget_limits(self, whole: bool = False) -> tuple[float | None, float | None]:
        """The closed range a form's number input takes: an open end is the next number
        inside it (1 for ``gt=0`` on a whole number; the smallest float above it else)."""
        low, high = self.low, self.high
        if low is not None and self.low_open:
            low = low + 1 if whole else math.nextafter(low, math.inf)
        if high is not None and self.high_open:
            high = high - 1 if whole else math.nextafter(high, -math.inf)
        return low, high


def field_bounds(cls: type[BaseModel], name: str) -> Bounds:
    """Field ``name``'s range as its ``Field`` declares it: the one place both the config's
    checks and the app's Train form read it.

    >>> field_bounds(TrainConfig, "warmup_ratio")
    Bounds(low=0, high=1, low_open=False, high_open=True)
    """
    found: dict[str, Any] = {}
    for item in cls.model_fields[name].metadata:
        for key in ("ge", "gt", "le", "lt"):
            if getattr(item, key, None) is not None:
                found[key] = getattr(item, key)
    return Bounds(
        low=found.get("ge", found.get("gt")),
        high=found.get("le", found.get("lt")),
        low_open="gt" in found,
        high_open="lt" in found,
    )


def error_text(err: ValidationError, cls: type[BaseModel], data: Mapping[str, Any]) -> str:
    """pydantic's errors about ``data`` (what ``cls`` was given) as this module's messages, a
    line each: ``lr: got 0.0; use a positive number``, ``model.d: got 2.5 (float); expected
    int``, ``unknown training config field(s) bogus; known: ...``."""
    lines: list[str] = []
    unknown: list[str] = []
    for error in err.errors():
        loc, cause = error["loc"], error.get("ctx", {}).get("error")
        name = loc[0] if loc and isinstance(loc[0], str) else None
        if error["type"] == "extra_forbidden":
            unknown.append(str(name))
        elif name is None:  # a rule between fields: its message names them
            lines.append(str(cause or error["msg"]))
        elif isinstance(cause, ConfigError):  # a nested config's own words: its field path
            lines += [
                line if line.startswith("unknown ") else f"{name}.{line}"
                for line in str(cause).splitlines()
            ]
        else:
            lines.append(f"{name}: {_problem(error, cls, name, data.get(name))}")
    if unknown:
        known = ", ".join(sorted(cls.model_fields))
        what, names = getattr(cls, "what", cls.__name__), ", ".join(sorted(unknown))
        lines.insert(0, f"unknown {what} config field(s) {names}; known: {known}")
    return "\n".join(lines)


def _problem(error: Any, cls: type[BaseModel], name: str, value: Any) -> str:
    """What is wrong with one field's value (the whole value, not a list item), and what
    would be accepted."""
    kind, hint = error["type"], cls.model_fields[name].annotation
    if kind == "value_error":
        return str(error["ctx"]["error"])
    if kind == "finite_number":
        return f"got {value!r}; give a finite number"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        whole = int in (hint, *get_args(hint))
        return f"got {value!r}; {field_bounds(cls, name).advice(whole)}"
    if kind in ("model_type", "model_attributes_type"):
        first = ", ".join(list(hint.model_fields)[:2])
        what = getattr(hint, "what", hint.__name__)
        return f"got {value!r}; give a table of {what} fields ({first}, ...)"
    if kind == "literal_error" and any(type(value) is type(arg) for arg in get_args(hint)):
        return f"got {value!r}; choose one of {', '.join(map(str, get_args(hint)))}"
    return f"got {value!r} ({type(value).__name__}); expected {_type_text(hint)}"


def _type_text(hint: Any) -> str:
    """``float``, ``int | None``, ``one of cosine, linear, constant``."""
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(str(arg) for arg in get_args(hint))
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
