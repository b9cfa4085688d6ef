"""Property-based: no request body, content type or header gives a 5xx, a hang or a traceback."""

from __future__ import annotations

import copy
import json
import uuid

import pytest
from flask import Flask
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError, fields

from relay.ingest import validation
from relay.ingest.schema import FullMatch, ParamsSchema, RecordSchema
from relay.ingest.validation import SHAPE, by_field, finish, load_record, validate_batch
from relay.serve.extension import relay_of
from relay.store import codec
from relay.store.codec import STORED_FIELDS, Codec
from relay.store.data import ServerInfo, to_data

from ..conftest import build_app
from ..support import ENDPOINT, make_record

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)
field_names = st.sampled_from(["installation_id", "session_id", "event_name", "timestamp_ns",
                               "params", "event_id", "extra"])
param_names = st.sampled_from(["componentId", "componentViewId", "componentType", "eventType",
                               "componentSubType", "value", "extra"])


@st.composite
def near_miss(draw: st.DrawFn, value: object) -> object:
    """A valid string with one character inserted, replaced or cut: the edges of a pattern."""
    if not isinstance(value, str):
        return draw(json_values)
    at = draw(st.integers(0, len(value)))
    char = draw(st.characters() | st.sampled_from('\n"\\ @\x00\u00e9-_.:/'))
    how = draw(st.sampled_from(["insert", "replace", "cut", "lower", "upper"]))
    if how == "insert":
        return value[:at] + char + value[at:]
    if how == "replace":
        return value[:at] + char + value[at + 1:]
    if how == "cut":
        return value[:at]
    return value.lower() if how == "lower" else value.upper()


@st.composite
def mutated_records(draw: st.DrawFn) -> dict:
    record = make_record()
    if draw(st.booleans()):
        record["params"]["value"] = draw(st.sampled_from(["dark", "a b", None, 3]))
    for _ in range(draw(st.integers(0, 3))):
        name = draw(field_names)
        record[name] = draw(json_values | near_miss(record.get(name)))
    if isinstance(record.get("params"), dict):
        for _ in range(draw(st.integers(0, 3))):
            name = draw(param_names)
            record["params"][name] = draw(json_values | near_miss(record["params"].get(name)))
    if draw(st.booleans()):
        record.pop(draw(field_names), None)
    return record


bodies = st.one_of(
    st.binary(max_size=2000),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.lists(mutated_records(), max_size=20).map(lambda rs: json.dumps({"records": rs}).encode()),
)
content_types = st.sampled_from(["application/json", "text/plain", "text/plain;charset=UTF-8",
                                 "application/json; charset=latin-1", "", "text/html",
                                 "application/octet-stream"])

FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    # One app for all examples: a fresh SQLite file per example would dominate the run time.
    return build_app(tmp_path_factory.mktemp("fuzz"))


@FUZZ
@given(body=bodies, ctype=content_types)
def test_no_body_gives_a_server_error(fuzz_app: Flask, body: bytes, ctype: str) -> None:
    resp = fuzz_app.test_client().post(ENDPOINT, data=body, content_type=ctype)
    assert resp.status_code in (200, 400, 413, 415), resp.status_code
    payload = resp.get_json()
    assert payload["status"] in ("success", "error")
    assert "Traceback" not in resp.get_data(as_text=True)
    if resp.status_code == 200:
        assert payload["accepted"] + payload["rejected"] == len(json.loads(body)["records"])


@FUZZ
@given(mixed=st.lists(st.one_of(mutated_records(), st.builds(make_record)), min_size=1,
                      max_size=10))
def test_every_valid_record_is_kept_whatever_its_neighbours(fuzz_app: Flask,
                                                            mixed: list[dict]) -> None:
    pristine = make_record()
    records = [*mixed, pristine]
    resp = fuzz_app.test_client().post(ENDPOINT, json={"records": records})
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["accepted"] + body["rejected"] == len(records)
    assert body["accepted"] >= 1
    relay = relay_of(fuzz_app)
    stored = {json.loads(relay.codec.data_line(text))["event_id"]
              for text in relay.spool.last(20)}
    assert pristine["event_id"] in stored


# Odd but possible server fields: a % or a quote must not bend the line's template.
ENCODER_SERVER = ServerInfo("7d0c1d3e-52c4-4b8e-a9a4-3f9f1c2d4e5f", "1.0%s", "3.11.7",
                            'Linux "quoted" %d')
ENCODER = Codec(ENCODER_SERVER)


def _marshmallow(record: object) -> dict | None:
    try:
        return RecordSchema().load(copy.deepcopy(record))
    except ValidationError:
        return None


@settings(max_examples=1000, deadline=None)
@given(record=st.one_of(mutated_records(), st.builds(make_record), json_values))
# A UUID without dashes, upper case, a newline where a value ends: edges found before.
@example(record=make_record(event_id="00000000000000000000000000000000"))
@example(record=make_record(event_id="7D0C1D3E-52C4-4B8E-A9A4-3F9F1C2D4E5F"))
@example(record=make_record(session_id="abc\n"))
@example(record=make_record(timestamp_ns=10**5000))  # str() of it raises ValueError
def test_every_fast_path_agrees_with_marshmallow(record: object) -> None:
    """Each shortcut answers exactly as RecordSchema().load() would, or declines."""
    expected = _marshmallow(record)
    checked = by_field(copy.deepcopy(record))
    if checked is not None:
        assert checked == expected
    assert SHAPE is not None
    low, high = SHAPE.window.bounds()
    item = copy.deepcopy(record)
    if SHAPE.check(item, low, high):
        # The item passes as it is: what load() gives, less the optional params it fills with
        # None (the shape has none).
        assert expected is not None
        assert item == finish(copy.deepcopy(expected))
    try:
        got = load_record(copy.deepcopy(record))
    except ValidationError:
        got = None
    assert got == expected
    batch = validate_batch({"records": [copy.deepcopy(record)]}, 10)
    assert batch.records == ([] if expected is None else [finish(copy.deepcopy(expected))])
    assert len(batch.rejected) == (expected is None)


def test_the_fast_paths_take_the_common_cases() -> None:
    assert SHAPE is not None, "the schema no longer compiles to a common shape"
    low, high = SHAPE.window.bounds()
    assert SHAPE.check(make_record(), low, high)
    assert by_field(make_record(params={"value": "dark", "componentSubType": "x"})) is not None


def _full_matches() -> list[tuple[str, FullMatch]]:
    found = []
    for schema in (RecordSchema(), ParamsSchema()):
        for name, field in schema.fields.items():
            found += [(name, v) for v in field.validators if isinstance(v, FullMatch)]
    return found


@pytest.mark.parametrize(("name", "check"), _full_matches(), ids=lambda v: str(v)[:20])
def test_each_pattern_keeps_to_its_declared_alphabet(name: str, check: FullMatch) -> None:
    """The declaration the compact form and the shape check rely on: no string the pattern
    accepts holds a character outside the alphabet, whichever code point it is."""
    valid = make_record(params={"componentSubType": "primary"})
    sample = valid[name] if name in valid else valid["params"][name]
    assert check.match(sample) and set(sample) <= check.alphabet
    for code in range(0x110000):
        char = chr(code)
        if char not in check.alphabet:
            assert not check.match(char + sample[1:]), (name, hex(code))


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_strings_a_pattern_accepts_are_made_of_its_alphabet(data: st.DataObject) -> None:
    name, check = data.draw(st.sampled_from(_full_matches()))
    value = data.draw(st.from_regex(check.pattern, fullmatch=True))
    assert set(value) <= check.alphabet, name
    # ... and a character from outside it, anywhere, is refused.
    char = data.draw(st.characters().filter(lambda c: c not in check.alphabet))
    at = data.draw(st.integers(0, len(value)))
    assert not check.match(value[:at] + char + value[at:])


def test_a_schema_that_allows_more_keeps_records_as_data_lines(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert codec.compact_is_safe(), "today's schema declares every stored field plain"

    class LooseParams(ParamsSchema):
        componentId = fields.String(required=True,  # noqa: N815
                                    validate=FullMatch(r'[a-z."\\\t]{1,9}', 'a-z."\\\t',
                                                       "loose"))

    monkeypatch.setattr(codec, "ParamsSchema", LooseParams)
    assert not codec.compact_is_safe()
    loose = Codec(ENCODER_SERVER)
    record = make_record(params={"componentId": 'a"b\\c'})
    [text] = loose.encode([copy.deepcopy(record)])
    assert text.startswith("{") and json.loads(loose.data_line(text))["params"] == json.dumps(
        record["params"], sort_keys=True, separators=(",", ":"))
    # And the shape check, whose values are joined by tabs, leaves such a field to the
    # field-by-field path.
    monkeypatch.setattr(validation, "_PARAMS", LooseParams())
    assert validation.compile_shape() is None


@settings(max_examples=500, deadline=None)
@given(record=st.one_of(mutated_records(), st.builds(make_record)))
def test_every_data_line_is_exactly_to_data(record: dict) -> None:
    """The codec's stored text reads back as what json.dumps(to_data(record)) would mean."""
    sent = record.get("event_id") if isinstance(record, dict) else None
    for valid in validate_batch({"records": [record]}, 10).records:
        [stored] = ENCODER.encode([valid])
        # The browser's event_id, canonical; a new one when it sent none.
        if sent is None:
            assert uuid.UUID(valid["event_id"]).version == 4
        else:
            assert valid["event_id"] == str(uuid.UUID(sent))
        line = ENCODER.data_line(stored)
        assert json.loads(line) == to_data(valid, ENCODER_SERVER)
        assert "\n" not in line and "\n" not in stored
        assert ENCODER.event_id(stored) == valid["event_id"]


@settings(max_examples=200, deadline=None)
@given(records=st.lists(st.one_of(mutated_records(), st.builds(make_record)), max_size=30))
def test_a_row_reads_back_as_its_records_do(records: list[dict]) -> None:
    stored = ENCODER.encode(validate_batch({"records": records}, 100).records)
    if stored:
        read = ENCODER.read_row("\n".join(stored), len(stored))
        assert [(r.event_id, r.data) for r in read] == [
            (ENCODER.event_id(t), ENCODER.data_line(t)) for t in stored]
        assert [r.key for r in read] == [uuid.UUID(r.event_id).int for r in read]


def test_the_compact_form_holds_the_stored_fields_in_their_order() -> None:
    record = make_record()
    assert ENCODER.encode([copy.deepcopy(record)])[0].split("\t") == [
        record["params"][name.removeprefix("params.")] if name.startswith("params.")
        else str(record[name]) for name in STORED_FIELDS]
