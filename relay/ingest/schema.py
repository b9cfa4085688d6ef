"""The record, as marshmallow schemas: the single source of truth.

Validation, the "what is collected" page and the tests all derive from these classes. Unknown
fields are dropped at both levels, so nothing the schema does not name can reach the spool.
"""

from __future__ import annotations

import re
import string
import time
from collections.abc import Iterator, Sequence
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

# The characters each kind of value is made of, declared once: the patterns below are built from
# them, and alphabet() reports them to the code that must know a value holds nothing but these
# (the spool's compact form, the common-shape check). A test proves each pattern keeps to its
# alphabet.
ALNUM = string.ascii_letters + string.digits
ID_CHARS = ALNUM + "-"
COMPONENT_ID_CHARS = ALNUM + "_.:/-"
SUB_TYPE_CHARS = ALNUM + "_.-"
VALUE_CHARS = ALNUM + "_.:-"
UUID_CHARS = string.hexdigits + "-"


def _chars(alphabet: str, least: int, most: int) -> str:
    return f"[{re.escape(alphabet)}]{{{least},{most}}}"


ID_PATTERN = _chars(ID_CHARS, 1, 64)
COMPONENT_ID_PATTERN = _chars(COMPONENT_ID_CHARS, 1, 256)
SUB_TYPE_PATTERN = _chars(SUB_TYPE_CHARS, 1, 64)
VALUE_PATTERN = re.compile(_chars(VALUE_CHARS, 0, 64))
UUID_PATTERN = "-?".join(f"[0-9A-Fa-f]{{{n}}}" for n in (8, 4, 4, 4, 12))

NS_PER_DAY = 86_400 * 10**9


# The validators below keep what they check (a pattern, an alphabet, the words) as attributes of
# their own: the fast paths of relay.ingest.validation and alphabet() read those, never the
# internals of marshmallow's validators.

class FullMatch(validate.Regexp):
    """The whole value matches `pattern`, made only of the characters in `alphabet`."""

    def __init__(self, pattern: str, alphabet: str, what: str) -> None:
        super().__init__(rf"\A(?:{pattern})\Z", error=f"must be {what}")
        self.pattern = pattern  # unanchored, for the compiled common shape
        self.match = re.compile(rf"\A(?:{pattern})\Z").match
        self.alphabet = frozenset(alphabet)


class OneOfWords(validate.OneOf):
    """One of a fixed list of words."""

    def __init__(self, words: Sequence[str], error: str) -> None:
        super().__init__(words, error=error)
        self.words = tuple(words)


class StrictInteger(fields.Integer):
    """An integer that is really an integer: not a bool, a float or a numeric string.

    `_deserialize` is marshmallow's documented hook for a field of one's own.
    """

    default_error_messages = {"invalid": "must be a whole number (nanoseconds since the epoch)"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.make_error("invalid")
        return value


class TimestampWindow(validate.Validator):
    """Within the last 7 days or the next day; bounds() lets a fast path check many at once."""

    error = ("must be within the last 7 days or the next day "
             "(integer nanoseconds since the epoch)")

    def bounds(self) -> tuple[int, int]:
        now = time.time_ns()
        return now - 7 * NS_PER_DAY, now + NS_PER_DAY

    def __call__(self, value: int) -> int:
        low, high = self.bounds()
        if not low <= value <= high:
            raise ValidationError(self.error)
        return value


class ParamsSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    componentId = fields.String(  # noqa: N815 - MLflow's wire names
        required=True,
        validate=FullMatch(COMPONENT_ID_PATTERN, COMPONENT_ID_CHARS,
                           "1-256 chars of A-Z a-z 0-9 _ . : / -"),
        metadata={"description": "Which element: a fixed id in the page's markup, "
                                 "such as mlflow.experiments.create-button."})
    componentViewId = fields.String(  # noqa: N815
        required=True, validate=FullMatch(ID_PATTERN, ID_CHARS, "1-64 chars of A-Z a-z 0-9 -"),
        metadata={"description": "A random UUID made each time the element is shown, so "
                                 "events of one view can be grouped."})
    componentType = fields.String(  # noqa: N815
        required=True, validate=OneOfWords(COMPONENT_TYPES, error="must be one of the "
                                           "design-system component types"),
        metadata={"description": "What kind of element: button, switch, modal and so on "
                                 f"({len(COMPONENT_TYPES)} fixed types)."})
    eventType = fields.String(  # noqa: N815
        required=True, validate=OneOfWords(EVENT_TYPES, error="must be one of "
                                           + ", ".join(EVENT_TYPES)),
        metadata={"description": "What happened: " + ", ".join(EVENT_TYPES) + "."})
    componentSubType = fields.String(  # noqa: N815
        load_default=None, allow_none=True,
        validate=FullMatch(SUB_TYPE_PATTERN, SUB_TYPE_CHARS, "1-64 chars of A-Z a-z 0-9 _ . -"),
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
        required=True, validate=FullMatch(ID_PATTERN, ID_CHARS, "1-64 chars of A-Z a-z 0-9 -"),
        metadata={"description": "A random UUID made once per browser (not per person); "
                                 "deleted with the browser's site data."})
    session_id = fields.String(
        required=True, validate=FullMatch(ID_PATTERN, ID_CHARS, "1-64 chars of A-Z a-z 0-9 -"),
        metadata={"description": "A random UUID made once per browser tab session."})
    event_name = fields.String(
        required=True, validate=OneOfWords(("ui_event",), error='must be "ui_event"'),
        metadata={"description": 'Always "ui_event".'})
    timestamp_ns = StrictInteger(
        required=True, validate=TimestampWindow(),
        metadata={"description": "When it happened, in nanoseconds since the epoch."})
    params = fields.Nested(ParamsSchema, required=True,
                           metadata={"description": "The event itself."})
    event_id = fields.String(
        load_default=None, allow_none=True, validate=FullMatch(UUID_PATTERN, UUID_CHARS, "a UUID"),
        metadata={"description": "A random UUID per record, so a retried record is "
                                 "forwarded once."})


def alphabet(field: fields.Field) -> frozenset[str] | None:
    """Every character a value that `field` accepts can hold, as its validators declare it;
    None when they declare none (a field without such a validator, or a non-string)."""
    if type(field) is not fields.String:
        return None
    for check in field.validators:
        if isinstance(check, FullMatch):
            return check.alphabet
        if isinstance(check, OneOfWords):
            return frozenset("".join(check.words))
    return None


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
