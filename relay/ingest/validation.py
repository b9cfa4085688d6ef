"""Batches checked against the schema: compiled for the common record, marshmallow for the rest.

A record is checked the cheapest way that is sure to answer as RecordSchema().load() would
(property tests compare every path with marshmallow on generated input):

1. the common shape, what the browser module sends (every required field and event_id, no
   optional params): one regex, compiled from the schema's validators, over the record's string
   values joined by tabs;
2. any other record: each field's validators, called directly;
3. whatever those are not sure about: marshmallow itself, which also words the error.

Nothing here is written by hand per field: a changed schema changes every path. The result is
records and rejections; how a record is stored is relay.codec's business.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from marshmallow import Schema, ValidationError, fields, missing

from .schema import (
    FullMatch,
    OneOfWords,
    ParamsSchema,
    RecordSchema,
    StrictInteger,
    TimestampWindow,
    alphabet,
)

# Optional in the schema, yet sent with every record by the browser module: part of the shape.
ALWAYS_SENT = ("event_id",)

_RECORD = RecordSchema()
_PARAMS = ParamsSchema()


class EnvelopeError(ValueError):
    """The request body as a whole is unusable (400)."""


@dataclass
class BatchResult:
    records: list[dict[str, Any]]
    # For each rejected record, the dotted path of the first field that failed.
    rejected: list[str]


# -- 1. the common shape ---------------------------------------------------------------------

def _segment(field: fields.Field) -> str | None:
    """A regex for exactly the strings a String field accepts, or None if there is none.

    The segments are joined by tabs, so a field whose declared alphabet is unknown or holds a
    tab has none: its value could run into the next one.
    """
    chars = alphabet(field)  # None unless a String field declares one
    if chars is None or "\t" in chars or len(field.validators) != 1:
        return None
    check = field.validators[0]
    if isinstance(check, FullMatch):
        # Anchors and back-references would mean something else inside a longer pattern.
        if re.search(r"[$^]|\\[AZ1-9]|\(\?P=", check.pattern):
            return None
        return f"(?:{check.pattern})"
    if isinstance(check, OneOfWords):
        return "(?:" + "|".join(map(re.escape, check.words)) + ")"
    return None


@dataclass(frozen=True)
class _Shape:
    window: TimestampWindow  # its bounds() go to check(), once a batch
    # True if the item has the common shape and is valid; False when not sure.
    check: Callable[[Any, int, int], bool]


def _strings_of(schema: Schema, always: tuple[str, ...]) -> tuple[list, list, list] | None:
    """(name, segment) of fields in the shape; optional fields; other fields. None: no shape."""
    strings, optional, others = [], [], []
    for name, field in schema.fields.items():
        if not (field.required or name in always):
            if not field.allow_none or field.load_default is not None:
                return None
            optional.append(name)
            continue
        segment = _segment(field)
        if segment is None:
            others.append((name, field))
        else:
            strings.append((name, segment))
    return strings, optional, others


def compile_shape() -> _Shape | None:
    """The check of the common shape, compiled from the schemas' validators; None when a
    field has no validator it can compile."""
    record = _strings_of(_RECORD, ALWAYS_SENT)
    params = _strings_of(_PARAMS, ())
    if record is None or params is None or params[2] or record[1]:
        return None
    others = dict(record[2])
    nested = others.pop("params", None)
    if len(others) != 1 or not isinstance(nested, fields.Nested):
        return None
    (integer, field), = others.items()
    if type(field) is not StrictInteger or len(field.validators) != 1 \
            or not isinstance(field.validators[0], TimestampWindow):
        return None
    segments = [seg for _, seg in record[0]] + [seg for _, seg in params[0]]
    match = re.compile(r"\A" + "\t".join(segments) + r"\Z").match
    record_strings = itemgetter(*(name for name, _ in record[0]))
    params_strings = itemgetter(*(name for name, _ in params[0]))
    record_size = len(record[0]) + 2  # its strings, the integer and params
    params_size = len(params[0])

    def check(item: Any, low: int, high: int) -> bool:
        try:
            params = item["params"]
            text = "\t".join(record_strings(item) + params_strings(params))
            timestamp = item[integer]
        except (KeyError, TypeError):  # TypeError: not a dict, or a value that is not a str
            return False
        # Exactly the fields of the shape, at both levels: then the loaded record is the item
        # itself (an unknown field, or an optional param even if null, is not the shape).
        return (type(timestamp) is int and low <= timestamp <= high
                and type(item) is dict and type(params) is dict
                and len(item) == record_size and len(params) == params_size
                and match(text) is not None)

    return _Shape(field.validators[0], check)


# The common shape of this schema, compiled once; None when the schema has none.
SHAPE = compile_shape()


# -- 2. field by field ------------------------------------------------------------------------

@dataclass(frozen=True)
class _FieldPlan:
    """One field, reduced to a type and predicates that return True when the value is valid."""

    name: str
    kind: type
    checks: tuple[Callable[[Any], Any], ...]
    required: bool
    null_ok: bool


def _predicate(validator: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A validator as a plain predicate, the cheapest way it can be asked."""
    if isinstance(validator, FullMatch):
        return validator.match  # anchored at both ends
    if isinstance(validator, OneOfWords):
        return frozenset(validator.words).__contains__

    def passes(value: Any) -> bool:
        try:
            return validator(value) is not False
        except ValidationError:
            return False
    return passes


def _plan(schema: Schema, skip: str = "") -> tuple[_FieldPlan, ...] | None:
    plan = []
    for name, field in schema.fields.items():
        if name == skip:
            continue
        if type(field) is fields.String:
            kind: type = str
        elif type(field) is StrictInteger:
            kind = int
        else:
            return None  # a field this path does not know: marshmallow answers alone
        if field.load_default not in (None, missing):
            return None
        plan.append(_FieldPlan(name, kind, tuple(map(_predicate, field.validators)),
                               field.required, field.allow_none))
    return tuple(plan)


def _fields(item: dict[str, Any], plan: tuple[_FieldPlan, ...]) -> dict | None:
    out: dict[str, Any] = {}
    get = item.get
    for f in plan:
        value = get(f.name)
        if value is None:
            if f.required or not f.null_ok and f.name in item:
                return None
            out[f.name] = None
            continue
        if type(value) is not f.kind:
            return None
        for check in f.checks:
            if not check(value):
                return None
        out[f.name] = value
    return out


_RECORD_PLAN = _plan(_RECORD, skip="params")
_PARAMS_PLAN = _plan(_PARAMS)


def by_field(item: Any) -> dict[str, Any] | None:
    """The record if each field's own validators accept it (path 2); None when not sure."""
    if (_RECORD_PLAN is None or _PARAMS_PLAN is None or type(item) is not dict
            or type(item.get("params")) is not dict):
        return None
    record = _fields(item, _RECORD_PLAN)
    if record is None:
        return None
    params = _fields(_PARAMS.drop_unsafe_value(item["params"]), _PARAMS_PLAN)
    if params is None:
        return None
    record["params"] = params
    return record


# -- the batch ------------------------------------------------------------------------------

def load_record(item: Any) -> dict[str, Any]:
    """One record, validated; raises ValidationError as marshmallow's load() does."""
    return by_field(item) or _RECORD.load(item)


def _first_error_path(messages: Any, prefix: str = "") -> str:
    if isinstance(messages, dict) and messages:
        key = sorted(messages, key=str)[0]
        name = "record" if key == "_schema" else str(key)
        return _first_error_path(messages[key], f"{prefix}{name}.")
    return prefix.rstrip(".") or "record"


def finish(record: dict[str, Any]) -> dict[str, Any]:
    """What a loaded record becomes: the optional params it does not carry are absent."""
    params = record["params"]
    for name in [name for name, value in params.items() if value is None]:
        del params[name]
    return record


def validate_batch(body: Any, max_records: int) -> BatchResult:
    """Validate a parsed body; bad records are rejected one by one, the rest kept."""
    if not isinstance(body, dict) or not isinstance(body.get("records"), list):
        raise EnvelopeError('the body must be a JSON object with a "records" list')
    raw = body["records"]
    if len(raw) > max_records:
        raise EnvelopeError(f"a batch may hold at most {max_records} records; "
                            f"this one holds {len(raw)}")
    records: list[dict[str, Any]] = []
    rejected: list[str] = []
    check = SHAPE.check if SHAPE else None
    low, high = SHAPE.window.bounds() if SHAPE else (0, 0)
    for item in raw:
        if check is not None and check(item, low, high):
            records.append(item)
            continue
        try:
            records.append(finish(load_record(item)))
        except ValidationError as err:
            rejected.append(_first_error_path(err.messages))
    return BatchResult(records, rejected)
