"""Payload shaping (docs/events.md, "Payload shaping"): what of an event's `data` a webhook
receives, decided by its `fields` projection and its `personalData` setting (pure).

A webhook's settings are compiled once into a `Shaping` (a projection tree and the
personal-data switch); `shape_data` then descends only into the branches of `data` the
tree names, so shaping on the delivery path costs about one pass over the keys of the
objects it enters. With the defaults
(`fields` null, `personalData` include) `shape_data` returns its input object itself.

The projection is type-directed: a `.name` step enters an object, a `[]` step every
element of an array. Where `data` has another kind of value than the path expects (a
string where it steps into an object, `null`, no field at all) the path is missing there
and keeps nothing. A parent is kept when something inside it is kept; a kept array keeps
its length and order, an element with nothing kept becoming `{}` (an object) or `null`.
The stored event is never changed: shaping builds new containers and never mutates its
input.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from orderhooks.domain.model import Event, EventType, PersonalData, Webhook
from orderhooks.exceptions import FieldProblem, ValidationError

MAX_FIELD_PATHS = 100
MAX_FIELD_PATH_CHARS = 200
# Field names of `[A-Za-z0-9_]`, each optionally followed by `[]` steps, joined by `.`.
FIELD_PATH_PATTERN = re.compile(r"[A-Za-z0-9_]+(?:\[\])*(?:\.[A-Za-z0-9_]+(?:\[\])*)*")
_ARRAY_STEP = "[]"

# Kept whatever `fields` says: a receiver can always tell which order an event is about.
ALWAYS_KEPT_FIELDS = ("orderId", "_id", "account", "location", "status")
# Removed from every order event's `data` by `personalData: exclude`.
PERSONAL_FIELDS = frozenset({"customer", "deliveryAddress", "note"})
PERSONAL_COURIER_FIELDS = frozenset({"firstName", "lastName", "phoneNumber"})
# Removed from courier updates only: there they locate the courier, hence the customer.
PERSONAL_COURIER_UPDATE_FIELDS = frozenset({"coordinates", "trackingURL"})
_PERSONAL_FIELDS_OF = {
    EventType.COURIER_UPDATE.value: PERSONAL_FIELDS | PERSONAL_COURIER_UPDATE_FIELDS
}
_ORDER_TYPES = frozenset(t.value for t in EventType)


@dataclass(frozen=True, slots=True)
class Projection:
    """What to keep of one value: all of it (`whole`), some fields of an object
    (`fields`), and/or something of every element of an array (`each`)."""

    whole: bool = False
    fields: Mapping[str, Projection] = field(default_factory=dict)
    each: Projection | None = None


@dataclass(frozen=True, slots=True)
class Shaping:
    """A webhook's compiled shaping: `projection` None keeps all of `data`."""

    projection: Projection | None = None
    personal_data: PersonalData = PersonalData.INCLUDE

    @property
    def is_identity(self) -> bool:
        """Whether shaping leaves every `data` as it is (both settings at their defaults)."""
        return self.projection is None and self.personal_data is PersonalData.INCLUDE


NO_SHAPING = Shaping()


# ---------------------------------------------------------------- validation


def _fields_problem(message: str) -> ValidationError:
    return ValidationError([FieldProblem("fields", message)])


def parse_fields(value: Any) -> tuple[str, ...] | None:
    """The webhook field `fields` checked: null, or a list of at most MAX_FIELD_PATHS
    paths (duplicates dropped, order kept). ValidationError naming `fields` otherwise."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise _fields_problem("must be null or an array of field paths")
    if len(value) > MAX_FIELD_PATHS:
        raise _fields_problem(f"must have at most {MAX_FIELD_PATHS} paths")
    problems = []
    for index, path in enumerate(value):
        reason = _path_problem(path)
        if reason is not None:
            problems.append(FieldProblem("fields", f"path {index} {reason}"))
    if problems:
        raise ValidationError(problems)
    return tuple(dict.fromkeys(value))


def _path_problem(path: Any) -> str | None:
    if not isinstance(path, str):
        return "must be a string"
    if not path or len(path) > MAX_FIELD_PATH_CHARS:
        return f"must be 1-{MAX_FIELD_PATH_CHARS} characters"
    if not FIELD_PATH_PATTERN.fullmatch(path):
        return "must be names of A-Z, a-z, 0-9 and _ joined by '.', each optionally ending in '[]'"
    return None


def parse_personal_data(value: Any) -> PersonalData:
    """The webhook field `personalData` checked (`include` or `exclude`); ValidationError
    naming `personalData` otherwise."""
    if isinstance(value, str):
        try:
            return PersonalData(value)
        except ValueError:
            pass
    raise ValidationError([FieldProblem("personalData", "must be 'include' or 'exclude'")])


# ---------------------------------------------------------------- compiling


class _Builder:
    """A mutable projection tree while paths are added; `freeze` makes the Projection."""

    __slots__ = ("each", "fields", "whole")

    def __init__(self) -> None:
        self.whole = False
        self.fields: dict[str, _Builder] = {}
        self.each: _Builder | None = None

    def add(self, path: str) -> None:
        node = self
        for segment in path.split("."):
            name = segment.split(_ARRAY_STEP, 1)[0]
            node = node.fields.setdefault(name, _Builder())
            for _ in range(segment.count(_ARRAY_STEP)):
                if node.each is None:
                    node.each = _Builder()
                node = node.each
        node.whole = True

    def freeze(self) -> Projection:
        if self.whole:
            # A path naming this value keeps it whole: deeper paths add nothing.
            return Projection(whole=True)
        return Projection(
            fields={name: child.freeze() for name, child in self.fields.items()},
            each=None if self.each is None else self.each.freeze(),
        )


def compile_projection(paths: Iterable[str]) -> Projection:
    """The projection tree of checked `fields` paths, the always-kept ids included."""
    root = _Builder()
    for path in (*ALWAYS_KEPT_FIELDS, *paths):
        root.add(path)
    return root.freeze()


def compile_shaping(
    fields: Iterable[str] | None, personal_data: str = PersonalData.INCLUDE
) -> Shaping:
    """A webhook's Shaping from its checked `fields` (see `parse_fields`) and
    `personalData`; cached, so webhooks with the same settings share one and calling
    this per delivery costs a dictionary lookup."""
    paths = None if fields is None else tuple(fields)
    return _compile_shaping(paths, PersonalData(personal_data))


def webhook_shaping(webhook: Webhook) -> Shaping:
    """The compiled shaping of a webhook's current `fields` and `personalData`."""
    return compile_shaping(webhook.fields, webhook.personal_data)


@functools.lru_cache(maxsize=4096)
def _compile_shaping(fields: tuple[str, ...] | None, personal_data: PersonalData) -> Shaping:
    projection = None if fields is None else compile_projection(fields)
    return Shaping(projection=projection, personal_data=personal_data)


# ---------------------------------------------------------------- shaping


_MISSING = object()


def _project(value: Any, projection: Projection) -> Any:
    """The kept part of `value`, or _MISSING when the projection keeps nothing of it."""
    if projection.whole:
        return value
    if isinstance(value, Mapping) and projection.fields:
        # In the data's own key order, so a shaped body reads like the stored one.
        kept = {}
        fields = projection.fields
        for name, part in value.items():
            child = fields.get(name)
            if child is not None:
                part = _project(part, child)
                if part is not _MISSING:
                    kept[name] = part
        # Parents are kept for their kept fields only.
        return kept if kept else _MISSING
    if isinstance(value, list) and projection.each is not None:
        elements = [_project(element, projection.each) for element in value]
        if all(element is _MISSING for element in elements):
            return _MISSING
        # A kept array keeps its length and order: an element with nothing kept stays
        # as an empty object (an object) or null (anything else).
        return [
            _placeholder(original) if element is _MISSING else element
            for original, element in zip(value, elements, strict=True)
        ]
    return _MISSING


def _placeholder(element: Any) -> Any:
    return {} if isinstance(element, Mapping) else None


def project(data: Mapping[str, Any], projection: Projection) -> dict[str, Any]:
    """The fields of `data` that `projection` keeps (a new dict; `data` is not changed)."""
    kept = _project(data, projection)
    return kept if isinstance(kept, dict) else {}


def remove_personal_data(data: Mapping[str, Any], event_type: str) -> Mapping[str, Any]:
    """`data` without the customer's personal data (a copy when anything is removed)."""
    removed = _PERSONAL_FIELDS_OF.get(event_type, PERSONAL_FIELDS)
    courier = data.get("courier")
    courier_personal = isinstance(courier, Mapping) and not PERSONAL_COURIER_FIELDS.isdisjoint(
        courier
    )
    if removed.isdisjoint(data) and not courier_personal:
        return data
    out = {name: value for name, value in data.items() if name not in removed}
    if courier_personal:
        assert isinstance(courier, Mapping)
        rest = {name: v for name, v in courier.items() if name not in PERSONAL_COURIER_FIELDS}
        # A courier left with nothing is dropped, as a projection drops an empty parent:
        # that keeps shaping idempotent.
        if rest:
            out["courier"] = rest
        else:
            del out["courier"]
    return out


def shape_data(data: Mapping[str, Any], event_type: str, shaping: Shaping) -> Mapping[str, Any]:
    """The `data` a webhook receives: the projection first, then personal data removed.
    Operational events, and the default settings, get `data` itself back."""
    if shaping.is_identity or event_type not in _ORDER_TYPES:
        return data
    shaped: Mapping[str, Any] = data
    if shaping.projection is not None:
        shaped = project(data, shaping.projection)
    if shaping.personal_data is PersonalData.EXCLUDE:
        shaped = remove_personal_data(shaped, event_type)
    return shaped


def shape_event(event: Event, shaping: Shaping) -> Event:
    """The event as a webhook receives it: `data` shaped, the rest as stored (the same
    object when nothing changes), ready for `encode_body`."""
    data = shape_data(event.data, event.type, shaping)
    if data is event.data:
        return event
    return dataclasses.replace(event, data=data)
