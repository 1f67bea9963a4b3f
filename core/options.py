"""`Option`: one parameter declared as data (its default, type, range or choices and what
it does), so the CLI, the pages and the cost estimates read one truth. The explanation
methods, the network builders and the training recipes all declare theirs with it.

A utility like `core.progress`: it imports no other part of core.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Option:
    """One parameter: its default, its type and what it does; a number's range (`low`,
    `high`) or a word's `choices`."""

    default: Any
    help: str
    kind: type = float
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()

    def check(self, name: str, value: Any) -> Any:
        """`value` as this option's type, or ValueError (one line naming `name`)."""
        try:
            value = self.kind(value) if self.kind is not bool or isinstance(value, bool) \
                else str(value).strip().lower() in ("1", "true", "yes", "on")
        except (TypeError, ValueError):
            raise ValueError(f"{name}: '{value}' is not a {self.kind.__name__}") from None
        if self.choices and value not in self.choices:
            raise ValueError(f"{name}: '{value}' is not one of "
                             f"{', '.join(map(str, self.choices))}")
        if self.low is not None and value < self.low:
            raise ValueError(f"{name}: {value} is below {self.low:g}")
        if self.high is not None and value > self.high:
            raise ValueError(f"{name}: {value} is above {self.high:g}")
        return value


def checked(options: dict[str, Option], given: dict[str, Any] | None,
            what: str = "option") -> dict[str, Any]:
    """Every option's value: the given ones checked, the defaults for the rest; an
    unknown name is a ValueError naming the known ones."""
    given = dict(given or {})
    unknown = sorted(set(given) - set(options))
    if unknown:
        raise ValueError(f"unknown {what} '{unknown[0]}' (known: {', '.join(options) or 'none'})")
    return {name: option.check(name, given[name]) if name in given else option.default
            for name, option in options.items()}
