"""Every field of the record, with valid and invalid values."""

from __future__ import annotations

import time
import uuid

import pytest
from marshmallow import ValidationError

from relay.ingest.schema import COMPONENT_TYPES, EVENT_TYPES, RecordSchema, describe
from relay.ingest.validation import validate_batch
from relay.store.codec import settle_event_id

from ..support import make_record

DAY = 86_400 * 10**9


def one(record: object) -> tuple[list[dict], list[str]]:
    result = validate_batch({"records": [record]}, 1000)
    return result.records, result.rejected


def test_contract_lists_38_component_types_and_4_event_types() -> None:
    assert len(COMPONENT_TYPES) == 38
    assert set(EVENT_TYPES) == {"onClick", "onSubmit", "onValueChange", "onView"}


@pytest.mark.parametrize("field", ["installation_id", "session_id"])
@pytest.mark.parametrize("value,ok", [
    (str(uuid.uuid4()), True), ("a", True), ("A" * 64, True), ("A" * 65, False), ("", False),
    ("has space", False), ("a_b", False), ("ü", False), (123, False), (None, False),
    ("a\n", False),
])
def test_browser_ids(field: str, value: object, ok: bool) -> None:
    records, rejected = one(make_record(**{field: value}))
    assert (len(records), rejected) == ((1, []) if ok else (0, [field]))


def test_missing_required_fields_are_rejected_by_name() -> None:
    for name in ("installation_id", "session_id", "event_name", "timestamp_ns", "params"):
        record = make_record()
        del record[name]
        assert one(record) == ([], [name])


@pytest.mark.parametrize("value,ok", [("ui_event", True), ("UI_EVENT", False), ("click", False),
                                      ("", False), (None, False)])
def test_event_name(value: object, ok: bool) -> None:
    assert bool(one(make_record(event_name=value))[0]) is ok


@pytest.mark.parametrize("offset,ok", [
    (0, True), (-7 * DAY + 60 * 10**9, True), (-7 * DAY - 60 * 10**9, False),
    (DAY - 60 * 10**9, True), (DAY + 60 * 10**9, False),
])
def test_timestamp_window(offset: int, ok: bool) -> None:
    assert bool(one(make_record(timestamp_ns=time.time_ns() + offset))[0]) is ok


@pytest.mark.parametrize("value", [True, 1.5e18, float("nan"), str(time.time_ns()), 10**400,
                                   None, [1]])
def test_timestamp_must_be_an_integer(value: object) -> None:
    assert one(make_record(timestamp_ns=value)) == ([], ["timestamp_ns"])


@pytest.mark.parametrize("value,ok", [
    ("mlflow.experiments.create-button", True), ("a:b/c_d.e-f", True), ("x" * 256, True),
    ("x" * 257, False), ("", False), ("has space", False), ("<script>", False),
    ("a@b", False), (5, False),
])
def test_component_id(value: object, ok: bool) -> None:
    records, rejected = one(make_record(params={"componentId": value}))
    assert (bool(records), rejected) == ((True, []) if ok else (False, ["params.componentId"]))


@pytest.mark.parametrize("value,ok", [(str(uuid.uuid4()), True), ("v" * 64, True),
                                      ("v" * 65, False), ("", False), ("a.b", False)])
def test_component_view_id(value: object, ok: bool) -> None:
    assert bool(one(make_record(params={"componentViewId": value}))[0]) is ok


@pytest.mark.parametrize("value", COMPONENT_TYPES)
def test_every_component_type_is_accepted(value: str) -> None:
    assert one(make_record(params={"componentType": value}))[0]


@pytest.mark.parametrize("value", ["Button", "widget", "", None, "button "])
def test_unknown_component_type_is_rejected(value: object) -> None:
    assert one(make_record(params={"componentType": value})) == ([], ["params.componentType"])


@pytest.mark.parametrize("value,ok", [(e, True) for e in EVENT_TYPES] +
                         [("onclick", False), ("onHover", False), ("", False)])
def test_event_type(value: str, ok: bool) -> None:
    assert bool(one(make_record(params={"eventType": value}))[0]) is ok


@pytest.mark.parametrize("value,ok", [(None, True), ("primary", True), ("a_b.c-d", True),
                                      ("s" * 64, True), ("s" * 65, False), ("", False),
                                      ("a:b", False), (3, False)])
def test_component_sub_type(value: object, ok: bool) -> None:
    records, _ = one(make_record(params={"componentSubType": value}))
    assert bool(records) is ok
    if ok and value is None:
        assert "componentSubType" not in records[0]["params"]


@pytest.mark.parametrize("value,kept", [
    ("light", True), ("", True), ("a_b.c:d-e", True), ("v" * 64, True), ("v" * 65, False),
    ("has space", False), ("me@example.com", False), (42, False), (True, False),
    ({"nested": 1}, False),
])
def test_unsafe_value_is_dropped_but_the_record_kept(value: object, kept: bool) -> None:
    records, rejected = one(make_record(params={"value": value}))
    assert rejected == [] and len(records) == 1
    assert ("value" in records[0]["params"]) is kept
    if kept:
        assert records[0]["params"]["value"] == value


@pytest.mark.parametrize("value,ok", [(None, True), (str(uuid.uuid4()), True),
                                      (uuid.uuid4().hex, True), ("not-a-uuid", False),
                                      ("g" * 32, False), (7, False)])
def test_event_id(value: object, ok: bool) -> None:
    records, rejected = one(make_record(event_id=value))
    assert bool(records) is ok
    if ok and value is not None:
        # Kept as sent; the codec stores it in canonical form.
        assert settle_event_id(records[0]["event_id"]) == str(uuid.UUID(str(value)))


def test_unknown_fields_are_dropped_at_both_levels() -> None:
    record = make_record(params={"url": "https://secret", "text": "hello"})
    record["ip"] = "10.1.2.3"
    record["user_agent"] = "Mozilla"
    records, _ = one(record)
    assert set(records[0]) == {"installation_id", "session_id", "event_name", "timestamp_ns",
                               "params", "event_id"}
    assert set(records[0]["params"]) == {"componentId", "componentViewId", "componentType",
                                         "eventType"}


def test_invalid_record_costs_only_itself() -> None:
    good = [make_record() for _ in range(3)]
    result = validate_batch({"records": [good[0], "text", good[1], {"params": 1}, good[2],
                                         make_record(params={"eventType": "x"})]}, 1000)
    assert [r["event_id"] for r in result.records] == [g["event_id"] for g in good]
    assert len(result.rejected) == 3


def test_describe_covers_every_field_the_schema_accepts() -> None:
    names = {f.name for f in describe()}
    assert names == {"installation_id", "session_id", "event_name", "timestamp_ns", "event_id",
                     "params.componentId", "params.componentViewId", "params.componentType",
                     "params.eventType", "params.componentSubType", "params.value"}
    assert all(f.description for f in describe())


def test_our_validators_answer_through_marshmallows_own_call_as_they_tell_the_fast_paths() -> None:
    # FullMatch, OneOfWords and StrictInteger keep what they check for the fast paths; if
    # marshmallow ever calls them differently, load() and the fast paths would disagree.
    schema = RecordSchema()
    valid = make_record()
    assert schema.load(valid)["params"]["componentType"] == "button"
    cases = {("params", "componentType"): "knob", ("params", "componentId"): "has space",
             ("event_name",): "ui_click", ("timestamp_ns",): True, ("installation_id",): "a@b"}
    words = {"componentType": "design-system component types", "componentId": "1-256 chars",
             "event_name": '"ui_event"', "timestamp_ns": "whole number",
             "installation_id": "1-64 chars"}
    for path, bad in cases.items():
        record = make_record()
        (record["params"] if path[0] == "params" else record)[path[-1]] = bad
        with pytest.raises(ValidationError) as err:
            schema.load(record)
        message = str(err.value.messages)
        assert words[path[-1]] in message, (path, message)
