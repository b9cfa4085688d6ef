"""Batches checked against the schema: compiled for the common record, marshmallow for the rest.

A record is checked the cheapest way that is sure to answer as RecordSchema().load() would
(property tests compare every path with marshmallow on generated input):

1. the common shape, what the browser module sends (every required field and event_id, no
   optional params): one regex, compiled from the schema's validators, over the record's
   compact stored form (relay.data), which the check thereby writes for the spool as well;
2. any other record: each field's validators, called directly;
3. whatever those are not sure about: marshmallow itself, which also words the error.

Nothing here is written by hand per field: a changed schema changes every path.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from marshmallow import Schema, ValidationError, fields, missing, validate

from .data import PLAIN, STORED_FIELDS, STORED_TEXT, compact
from .schema import FullMatch, ParamsSchema, RecordSchema, StrictInteger, TimestampWindow

# Optional in the schema, yet sent with every record by the browser module: part of the shape.
ALWAYS_SENT = ("event_id",)

# What crypto.randomUUID() sends; anything else UUID_PATTERN allows is rewritten to this form.
CANONICAL_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_CANONICAL_UUID = re.compile(CANONICAL_UUID + r"\Z").match

_RECORD = RecordSchema()
_PARAMS = ParamsSchema()


class EnvelopeError(ValueError):
    """The request body as a whole is unusable (400)."""


@dataclass
class BatchResult:
    records: list[dict[str, Any]]
    # For each rejected record, the dotted path of the first field that failed.
    rejected: list[str]
    # For each record, its compact stored form when the common-shape check wrote it, else None
    # (DataEncoder.stored() writes it then).
    stored: list[str | None]


# -- 1. the common shape ---------------------------------------------------------------------

def _segment(field: fields.Field) -> str | None:
    """A regex for exactly the strings a String field accepts, or None if there is none."""
    if type(field) is not fields.String or len(field.validators) != 1:
        return None
    check = field.validators[0]
    if isinstance(check, FullMatch):
        # Anchors and back-references would mean something else inside a longer pattern.
        if re.search(r"[$^]|\\[AZ1-9]|\(\?P=", check.pattern) or check.regex.flags & ~re.U:
            return None
        return f"(?:{check.pattern})"
    if isinstance(check, validate.OneOf) and all(isinstance(c, str) for c in check.choices):
        return "(?:" + "|".join(map(re.escape, check.choices)) + ")"
    if isinstance(check, validate.Equal) and isinstance(check.comparable, str):
        return re.escape(check.comparable)
    return None


# The code points PLAIN allows (all of them ASCII).
_PLAIN_CODES = frozenset(c for c in range(128) if re.fullmatch(PLAIN, chr(c)))


def _only_plain(pattern: str) -> bool:
    """True when every string `pattern` can match is PLAIN text, as its parse tree proves;
    False when not sure (a class such as \\w or ., a negation, a flag, an unknown node)."""
    from re import _constants as op
    from re import _parser  # private: any surprise in it below means "not sure"

    def plain_char(code: Any, arg: Any) -> bool:  # an item of a [...] class, or a literal
        if code is op.RANGE:
            return arg[1] - arg[0] < 128 and _PLAIN_CODES.issuperset(range(arg[0], arg[1] + 1))
        return code is op.LITERAL and arg in _PLAIN_CODES

    def plain(items: Any) -> bool:
        for code, arg in items:
            if code is op.IN:
                ok = all(plain_char(*item) for item in arg)
            elif code in (op.MAX_REPEAT, op.MIN_REPEAT, op.POSSESSIVE_REPEAT):
                ok = plain(arg[2])
            elif code is op.SUBPATTERN:
                ok = not arg[1] and not arg[2] and plain(arg[3])  # no (?i:...)
            elif code is op.BRANCH:
                ok = all(map(plain, arg[1]))
            else:
                ok = plain_char(code, arg)
            if not ok:
                return False
        return True

    try:
        tree = _parser.parse(pattern)
        return not tree.state.flags & ~re.U and plain(tree)
    except Exception:  # noqa: BLE001 - another Python's parse tree: the lookahead stays
        return False


@dataclass(frozen=True)
class _Shape:
    window: TimestampWindow  # its bounds() go to check(), once a batch
    # The record's compact stored form if it has the common shape, is valid and carries a
    # canonical event_id; None when not sure.
    check: Callable[[Any, int, int], str | None]
    pattern: str  # what check() matches the compact text with


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


def _compile_shape() -> _Shape | None:
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
    segments = dict(record[0]) | {f"params.{name}": seg for name, seg in params[0]}
    segments[integer] = "-?[0-9]+"  # the int itself is checked below, type and window
    # The shape is exactly the values of the compact stored form, matched in its order, so
    # the text checked is the text stored. It must be that form: plain values, eight tabs.
    # The schema's patterns allow only plain text today, which the parse proves; if one ever
    # allows more, a lookahead (a second pass over the text, 1 µs a record) checks it.
    if set(segments) != set(STORED_FIELDS) or "event_id" not in segments:
        return None
    plain = "" if all(map(_only_plain, segments.values())) else rf"(?={STORED_TEXT})"
    # Only a canonical event_id fits.
    segments["event_id"] = f"(?={CANONICAL_UUID}(?:\t|\\Z)){segments['event_id']}"
    pattern = rf"\A{plain}" + "\t".join(segments[name] for name in STORED_FIELDS) + r"\Z"
    match = re.compile(pattern).match
    record_size = len(record[0]) + 2  # its strings, the integer and params
    params_size = len(params[0])

    def check(item: Any, low: int, high: int) -> str | None:
        try:
            text = compact(item)  # TypeError unless every value but the integer is a str
            timestamp = item[integer]
            params = item["params"]
        except (KeyError, TypeError, ValueError):  # ValueError: an int too long for str()
            return None
        # Exactly the fields of the shape, at both levels: then the loaded record is the item
        # itself (an unknown field, or an optional param even if null, is not the shape).
        if (type(timestamp) is not int or not low <= timestamp <= high
                or type(item) is not dict or type(params) is not dict
                or len(item) != record_size or len(params) != params_size or not match(text)):
            return None
        return text

    return _Shape(field.validators[0], check, pattern)


_SHAPE = _compile_shape()


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
    if isinstance(validator, validate.Regexp):
        return validator.regex.match  # FullMatch anchors its pattern at both ends
    if isinstance(validator, validate.OneOf):
        return frozenset(validator.choices).__contains__
    if isinstance(validator, validate.Equal):
        return validator.comparable.__eq__

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


def _by_field(item: Any) -> dict[str, Any] | None:
    """The record if each field's own validators accept it; None when not sure."""
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
    return _by_field(item) or _RECORD.load(item)


def _first_error_path(messages: Any, prefix: str = "") -> str:
    if isinstance(messages, dict) and messages:
        key = sorted(messages, key=str)[0]
        name = "record" if key == "_schema" else str(key)
        return _first_error_path(messages[key], f"{prefix}{name}.")
    return prefix.rstrip(".") or "record"


def finish(record: dict[str, Any]) -> dict[str, Any]:
    """What a loaded record becomes: event_id in canonical form, absent optional params."""
    event_id = record["event_id"]
    if event_id is not None and not _CANONICAL_UUID(event_id):
        record["event_id"] = str(uuid.UUID(event_id))
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
    stored: list[str | None] = []
    check = _SHAPE.check if _SHAPE else None
    low, high = _SHAPE.window.bounds() if _SHAPE else (0, 0)
    for item in raw:
        text = check(item, low, high) if check else None
        if text is not None:
            records.append(item)
            stored.append(text)
            continue
        try:
            records.append(finish(load_record(item)))
            stored.append(None)
        except ValidationError as err:
            rejected.append(_first_error_path(err.messages))
    return BatchResult(records, rejected, stored)
