"""The record, as marshmallow schemas: the single source of truth.

Validation, the "what is collected" page and the tests all derive from these classes. Unknown
fields are dropped at both levels, so nothing the schema does not name can reach the spool.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, pre_load, validate

COMPONENT_TYPES = (
    "accordion", "alert", "banner", "button", "card", "checkbox", "context_menu_checkbox_item",
    "context_menu_item", "context_menu_radio_group", "dialog_combobox", "drawer_content",
    "dropdown_menu_checkbox_item", "dropdown_menu_item", "dropdown_menu_radio_group", "form",
    "input", "legacy_select", "listbox", "modal", "notification", "pagination", "pill_control",
    "popover", "preview_card", "radio", "radio_group", "segmented_control_group",
    "simple_select", "snackbar", "switch", "table_header", "tabs", "tag", "text_area",
    "toggle_button", "tooltip", "typeahead_combobox", "typography_link",
)
EVENT_TYPES = ("onClick", "onSubmit", "onValueChange", "onView")

ID_PATTERN = r"[A-Za-z0-9-]{1,64}"
COMPONENT_ID_PATTERN = r"[A-Za-z0-9_.:/-]{1,256}"
SUB_TYPE_PATTERN = r"[A-Za-z0-9_.-]{1,64}"
VALUE_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{0,64}")
UUID_PATTERN = r"[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}"

NS_PER_DAY = 86_400 * 10**9


def _fullmatch(pattern: str, what: str) -> validate.Regexp:
    return validate.Regexp(rf"\A(?:{pattern})\Z", error=f"must be {what}")


class StrictInteger(fields.Integer):
    """An integer that is really an integer: not a bool, a float or a numeric string."""

    def _validated(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.make_error("invalid")
        return value

    default_error_messages = {"invalid": "must be a whole number (nanoseconds since the epoch)"}


def _timestamp_in_window(value: int) -> None:
    now = time.time_ns()
    if not now - 7 * NS_PER_DAY <= value <= now + NS_PER_DAY:
        raise ValidationError("must be within the last 7 days or the next day "
                              "(integer nanoseconds since the epoch)")


class ParamsSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    componentId = fields.String(  # noqa: N815 - MLflow's wire names
        required=True,
        validate=_fullmatch(COMPONENT_ID_PATTERN, "1-256 chars of A-Z a-z 0-9 _ . : / -"),
        metadata={"description": "Which element: a fixed id in the page's markup, "
                                 "such as mlflow.experiments.create-button."})
    componentViewId = fields.String(  # noqa: N815
        required=True, validate=_fullmatch(ID_PATTERN, "1-64 chars of A-Z a-z 0-9 -"),
        metadata={"description": "A random UUID made each time the element is shown, so "
                                 "events of one view can be grouped."})
    componentType = fields.String(  # noqa: N815
        required=True, validate=validate.OneOf(COMPONENT_TYPES, error="must be one of the "
                                               "design-system component types"),
        metadata={"description": "What kind of element: button, switch, modal and so on "
                                 f"({len(COMPONENT_TYPES)} fixed types)."})
    eventType = fields.String(  # noqa: N815
        required=True, validate=validate.OneOf(EVENT_TYPES, error="must be one of "
                                               + ", ".join(EVENT_TYPES)),
        metadata={"description": "What happened: " + ", ".join(EVENT_TYPES) + "."})
    componentSubType = fields.String(  # noqa: N815
        load_default=None, allow_none=True,
        validate=_fullmatch(SUB_TYPE_PATTERN, "1-64 chars of A-Z a-z 0-9 _ . -"),
        metadata={"description": "Optional finer kind of element, a fixed word."})
    value = fields.String(
        load_default=None, allow_none=True,
        metadata={"description": "Optional, only for elements marked data-value-has-no-pii: "
                                 "a short code such as a chosen option. Anything longer than "
                                 "64 characters or holding spaces or @ is dropped."})

    @pre_load
    def drop_unsafe_value(self, data: Any, **_: Any) -> Any:
        # An unsafe value costs the value alone, never the record: it could be free text.
        if isinstance(data, dict) and "value" in data:
            value = data["value"]
            if value is not None and not (isinstance(value, str)
                                          and VALUE_PATTERN.fullmatch(value)):
                data = {k: v for k, v in data.items() if k != "value"}
        return data


class RecordSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    installation_id = fields.String(
        required=True, validate=_fullmatch(ID_PATTERN, "1-64 chars of A-Z a-z 0-9 -"),
        metadata={"description": "A random UUID made once per browser (not per person); "
                                 "deleted with the browser's site data."})
    session_id = fields.String(
        required=True, validate=_fullmatch(ID_PATTERN, "1-64 chars of A-Z a-z 0-9 -"),
        metadata={"description": "A random UUID made once per browser tab session."})
    event_name = fields.String(
        required=True, validate=validate.Equal("ui_event", error='must be "ui_event"'),
        metadata={"description": 'Always "ui_event".'})
    timestamp_ns = StrictInteger(
        required=True, validate=_timestamp_in_window,
        metadata={"description": "When it happened, in nanoseconds since the epoch."})
    params = fields.Nested(ParamsSchema, required=True,
                           metadata={"description": "The event itself."})
    event_id = fields.String(
        load_default=None, allow_none=True, validate=_fullmatch(UUID_PATTERN, "a UUID"),
        metadata={"description": "A random UUID per record, so a retried batch is stored "
                                 "once."})


class EnvelopeError(ValueError):
    """The request body as a whole is unusable (400)."""


@dataclass
class BatchResult:
    records: list[dict[str, Any]]
    # For each rejected record, the dotted path of the first field that failed.
    rejected: list[str]


_RECORD = RecordSchema()
_PARAMS = ParamsSchema()


_RECORD_PLAN = [(n, f) for n, f in _RECORD.fields.items() if n != "params"]
_PARAMS_PLAN = list(_PARAMS.fields.items())


def _fast_fields(item: dict[str, Any], plan: list[tuple[str, fields.Field]]) -> dict | None:
    """The schema's own fields and validators, called directly: ~4x faster than load().

    Returns None whenever it is not certain, and the caller then runs marshmallow itself, so
    the answer for every input is marshmallow's (a property test checks the two agree).
    """
    out: dict[str, Any] = {}
    for name, field in plan:
        value = item.get(name)
        if value is None:
            if field.required:
                return None
            out[name] = None
            continue
        kind = type(value)
        if isinstance(field, fields.Integer):
            if kind is not int:
                return None
        elif kind is not str:
            return None
        try:
            for validator in field.validators:
                if validator(value) is False:
                    return None
        except ValidationError:
            return None
        out[name] = value
    return out


def _fast_load(item: Any) -> dict[str, Any] | None:
    if type(item) is not dict or type(item.get("params")) is not dict:
        return None
    record = _fast_fields(item, _RECORD_PLAN)
    params = _fast_fields(_PARAMS.drop_unsafe_value(item["params"]), _PARAMS_PLAN)
    if record is None or params is None:
        return None
    record["params"] = params
    return record


def load_record(item: Any) -> dict[str, Any]:
    """One record, validated; raises ValidationError as marshmallow's load() does."""
    return _fast_load(item) or _RECORD.load(item)


def _first_error_path(messages: Any, prefix: str = "") -> str:
    if isinstance(messages, dict) and messages:
        key = sorted(messages, key=str)[0]
        name = "record" if key == "_schema" else str(key)
        return _first_error_path(messages[key], f"{prefix}{name}.")
    return prefix.rstrip(".") or "record"


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
    for item in raw:
        try:
            record = load_record(item)
        except ValidationError as err:
            rejected.append(_first_error_path(err.messages))
            continue
        if record["event_id"] is not None:
            record["event_id"] = str(uuid.UUID(record["event_id"]))
        params = record["params"]
        for optional in ("componentSubType", "value"):
            if params.get(optional) is None:
                params.pop(optional, None)
        records.append(record)
    return BatchResult(records, rejected)


@dataclass(frozen=True)
class FieldDoc:
    name: str
    required: bool
    description: str


def describe() -> Iterator[FieldDoc]:
    """Every field a record may carry, with its description, straight from the schemas."""
    for name, field in RecordSchema().fields.items():
        if name == "params":
            for pname, pfield in ParamsSchema().fields.items():
                yield FieldDoc(f"params.{pname}", pfield.required,
                               pfield.metadata["description"])
        else:
            yield FieldDoc(name, field.required, field.metadata["description"])
