"""A small keep-the-last-N store: the app reruns its page on every click, and maps that
took seconds to make are reused instead of made again."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any


class Recent:
    """Values by key, the least recently used dropped beyond `size`."""

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self._values: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """The value for `key`, made by `make()` the first time."""
        if key in self._values:
            self._values.move_to_end(key)
            return self._values[key]
        value = make()
        self._values[key] = value
        while len(self._values) > self.size:
            self._values.popitem(last=False)
        return value
