"""Property-based: no request body, content type or header gives a 5xx, a hang or a traceback."""

from __future__ import annotations

import copy
import json

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from relay.schema import RecordSchema, _fast_load, load_record

from .conftest import build_app
from .support import ENDPOINT, make_record

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
def mutated_records(draw: st.DrawFn) -> dict:
    record = make_record()
    for _ in range(draw(st.integers(0, 3))):
        record[draw(field_names)] = draw(json_values)
    if isinstance(record.get("params"), dict):
        for _ in range(draw(st.integers(0, 3))):
            record["params"][draw(param_names)] = draw(json_values)
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
    stored = {json.loads(w.data)["event_id"]
              for w in fuzz_app.extensions["ui_telemetry"].spool.last(20)}
    assert pristine["event_id"] in stored


@settings(max_examples=1000, deadline=None)
@given(record=st.one_of(mutated_records(), st.builds(make_record), json_values))
def test_fast_path_agrees_with_marshmallow(record: object) -> None:
    """load_record's shortcut must answer exactly as RecordSchema().load() would."""
    try:
        expected = RecordSchema().load(copy.deepcopy(record))
    except ValidationError:
        expected = None
    fast = _fast_load(copy.deepcopy(record))
    if fast is not None:
        assert fast == expected
    try:
        got = load_record(copy.deepcopy(record))
    except ValidationError:
        got = None
    assert got == expected


def test_fast_path_takes_the_common_case() -> None:
    assert _fast_load(make_record()) is not None
    assert _fast_load(make_record(params={"value": "dark", "componentSubType": "x"})) is not None
