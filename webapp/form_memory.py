"""A form's values in the page's URL, so a reload (which starts a new Streamlit session, and
loses its session state) opens the form as it was left, and a link shares a set-up.

Only the values that differ from a field's default go into the URL, under the widget key's
last part (``train.steps`` -> ``?steps=7``). The URL is input like any other: a value that
does not parse, is not one of a field's choices or lies outside its bounds is dropped, and
the field opens on its default.

    >>> steps = Field("train.steps", 200, low=1, high=100_000)  # or Field.of_config(...)
    >>> remember([steps], {"train.steps": 7})
    {'steps': '7'}
    >>> restore([steps], {"steps": "7"}), restore([steps], {"steps": "-1"})
    ({'train.steps': 7}, {})
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from srm.config import Config, field_bounds

_TRUE, _FALSE = "1", "0"


@dataclass(frozen=True)
class Field:
    """One remembered widget: its session key, its default (whose type is the field's),
    and its choices or bounds."""

    key: str
    default: bool | int | float | str
    choices: tuple[str, ...] | None = None
    low: float | None = None
    high: float | None = None

    @classmethod
    def of_config(cls, key: str, config: type[Config], name: str, default: Any = None) -> Field:
        """A number field with config field ``name``'s default (unless given) and bounds
        (:func:`srm.config.field_bounds`, as a closed range): the form refuses what the
        config would, and nothing it would take (``lr``, above 0 in the config, opens at the
        smallest float above 0)."""
        default = config.model_fields[name].default if default is None else default
        kind = type(default)
        low, high = field_bounds(config, name).widget_limits(whole=kind is int)
        return cls(
            key,
            default,
            low=None if low is None else kind(low),
            high=None if high is None else kind(high),
        )

    @property
    def name(self) -> str:
        """The field's URL parameter: the key's last part."""
        return self.key.rsplit(".", 1)[-1]

    def parse(self, text: str) -> bool | int | float | str | None:
        """``text`` from the URL as the field's value, or ``None`` when it is not one."""
        kind = type(self.default)
        if kind is bool:
            return {_TRUE: True, _FALSE: False}.get(text)
        if kind is str:
            return text if self.choices is None or text in self.choices else None
        try:
            value = kind(text)
        except ValueError:
            return None
        if not math.isfinite(value):
            return None
        if (self.low is not None and value < self.low) or (
            self.high is not None and value > self.high
        ):
            return None
        return value

    def format(self, value: Any) -> str:
        if isinstance(value, bool):
            return _TRUE if value else _FALSE
        return str(value)


def restore(fields: Iterable[Field], params: Mapping[str, str]) -> dict[str, Any]:
    """The session values the URL ``params`` give, by widget key (valid ones only)."""
    found: dict[str, Any] = {}
    for field in fields:
        text = params.get(field.name)
        value = field.parse(text) if isinstance(text, str) else None
        if value is not None:
            found[field.key] = value
    return found


def remember(fields: Iterable[Field], state: Mapping[str, Any]) -> dict[str, str]:
    """The URL parameters for the fields' values in ``state`` that are not their defaults."""
    return {
        field.name: field.format(state[field.key])
        for field in fields
        if field.key in state and state[field.key] is not None and state[field.key] != field.default
    }
