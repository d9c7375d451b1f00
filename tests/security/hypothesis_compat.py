"""Lets schemathesis 3.x generate JSON objects with the installed hypothesis.

schemathesis generates request data with hypothesis-jsonschema, whose latest release
(0.23.1) draws the members of an object with `many(...).more()`. hypothesis 6.170
replaced that protocol with `with many(...) as elements: for _ in elements:`, so every
operation whose parameters or body is an object fails with `AttributeError: 'many' object
has no attribute 'more'` before sending anything. `install()` gives hypothesis-jsonschema
a `many` that still speaks `more()`, built on the new protocol; with a hypothesis that has
`more()` it does nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import hypothesis_jsonschema._from_schema as from_schema
from hypothesis.internal.conjecture import utils as conjecture_utils

_EXHAUSTED = object()


class LegacyMany(conjecture_utils.many):
    """`many` with the `more()` protocol of older hypothesis releases."""

    _elements: Iterator[None] | None = None

    def more(self) -> bool:
        """Whether to draw one more element (the old protocol, one call per element)."""
        if self._elements is None:
            self.__enter__()
            self._elements = iter(self)
        if next(self._elements, _EXHAUSTED) is _EXHAUSTED:
            self.__exit__(None)
            return False
        return True


def install() -> None:
    """Make hypothesis-jsonschema use `LegacyMany` when hypothesis lacks `many.more`."""
    if hasattr(conjecture_utils.many, "more"):
        return
    # Only hypothesis-jsonschema's reference is replaced; hypothesis keeps its own `many`.
    setattr(from_schema, "cu", SimpleNamespace(many=LegacyMany))  # noqa: B010
