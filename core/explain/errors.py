"""`ExplainError`, the one error of making an explanation. A module of its own, imported
by every other: the backend, the targets and the methods all raise it, and none of them
may import the others in a circle to reach it."""

from __future__ import annotations


class ExplainError(ValueError):
    """An explanation that cannot be made as asked. One line."""
