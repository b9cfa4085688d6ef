"""The endpoint: what it accepts, refuses, stores and forwards, and how it says so."""

from __future__ import annotations

import gzip
import http.client
import json
import platform
import time
import tomllib
import zlib
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from relay.serve.extension import relay_of

from ..conftest import build_app
from ..support import ENDPOINT, REPO, RelayServer, make_record, read_sink, waiting_data


def post(client: FlaskClient, body: object, content_type: str = "application/json",
         **headers: str):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(ENDPOINT, data=data, content_type=content_type, headers=headers)


def spool_rows(client: FlaskClient) -> list[dict]:
    return waiting_data(relay_of(client.application))


def forward(client: FlaskClient) -> list[dict]:
    """Run the forwarder until the spool is empty; return everything the file sink holds."""
    relay = relay_of(client.application)
    assert relay.forwarder.try_lead()
    while relay.spool.depth():
        relay.forwarder.step(force=True)
    return read_sink(relay.config.data_dir)


def metric(client: FlaskClient, name: str) -> str:
    text = client.get("/metrics").get_data(as_text=True)
    return next(line for line in text.splitlines() if line.startswith(name + " "))


def assert_error(resp, status: int, words: str) -> None:
    assert resp.status_code == status
    body = resp.get_json()
    assert body["status"] == "error" and words in body["error"]
    assert "Traceback" not in resp.get_data(as_text=True)


def test_valid_batch_is_accepted_and_spooled(client: FlaskClient) -> None:
    records = [make_record() for _ in range(3)]
    resp = post(client, {"records": records})
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "success", "accepted": 3, "rejected": 0}
    assert [r["event_id"] for r in spool_rows(client)] == [r["event_id"] for r in records]


def test_partial_accept_counts(client: FlaskClient) -> None:
    resp = post(client, {"records": [make_record(), {"nope": 1}, make_record(event_name="x")]})
    assert resp.get_json() == {"status": "success", "accepted": 1, "rejected": 2}
    assert len(spool_rows(client)) == 1


def test_text_plain_is_what_sendbeacon_sends(client: FlaskClient) -> None:
    resp = post(client, {"records": [make_record()]}, "text/plain;charset=UTF-8")
    assert resp.get_json()["accepted"] == 1


@pytest.mark.parametrize("ctype", ["application/x-www-form-urlencoded", "multipart/form-data",
                                   "text/html", "application/xml", ""])
def test_other_content_types_get_415(client: FlaskClient, ctype: str) -> None:
    assert_error(post(client, {"records": [make_record()]}, ctype), 415, "application/json")
    assert spool_rows(client) == []


@pytest.mark.parametrize("body,words", [
    (b"not json", "not valid JSON"), (b"[]", '"records" list'), (b'"x"', '"records" list'),
    (b"{}", '"records" list'), (b'{"records": {}}', '"records" list'),
    (b'{"records": null}', '"records" list'), (b"\xff\xfe{}", "UTF-8"),
    (b"[" * 100_000 + b"]" * 100_000, "JSON"), (b"", "not valid JSON"),
    (b'{"records": [' + b"1" * 5000 + b"]}", "JSON"),
])
def test_envelope_errors_get_400(client: FlaskClient, body: bytes, words: str) -> None:
    assert_error(post(client, body), 400, words)


def test_more_than_1000_records_get_400(client: FlaskClient) -> None:
    assert_error(post(client, {"records": [make_record()] * 1001}), 400, "at most 1000")
    assert spool_rows(client) == []


def test_exactly_1000_records_are_fine(client: FlaskClient) -> None:
    resp = post(client, {"records": [make_record() for _ in range(1000)]})
    assert resp.get_json()["accepted"] == 1000


def body_of_size(size: int) -> bytes:
    """A valid batch of one record, padded (an unknown top-level field) to exactly `size` bytes."""
    empty = json.dumps({"records": [make_record()], "pad": ""}).encode()
    body = empty[:-2] + b"x" * (size - len(empty)) + b'"}'
    assert len(body) == size
    return body


@pytest.mark.parametrize("chunked", [False, True], ids=["Content-Length", "chunked"])
def test_the_body_limit_is_exact_under_gunicorn(tmp_path: Path, chunked: bool) -> None:
    server = RelayServer(tmp_path / "data").start()
    try:
        for size, status in ((1024 * 1024, 200), (1024 * 1024 + 1, 413)):
            body = body_of_size(size)
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            conn.request("POST", ENDPOINT, body=iter([body]) if chunked else body,
                         headers={"Content-Type": "text/plain"}, encode_chunked=chunked)
            resp = conn.getresponse()
            answer = json.loads(resp.read())
            conn.close()
            assert resp.status == status, (size, answer)
            if status == 200:
                assert answer["accepted"] == 1
            else:
                assert "larger than 1024 KiB" in answer["error"]
    finally:
        server.stop()


def test_body_over_1_mib_gets_413(client: FlaskClient) -> None:
    body = b'{"records": [], "pad": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    assert_error(post(client, body), 413, "larger than 1024 KiB")


@pytest.mark.parametrize("encoding", ["gzip", "x-gzip", "deflate", "deflate-raw"])
def test_compressed_bodies_are_decoded(client: FlaskClient, encoding: str) -> None:
    records = [make_record(), make_record()]
    raw = json.dumps({"records": records}).encode()
    if encoding.endswith("gzip"):
        body = gzip.compress(raw)
    elif encoding == "deflate":
        body = zlib.compress(raw)  # HTTP's deflate: zlib-wrapped
    else:
        packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)  # what some clients send instead
        body, encoding = packer.compress(raw) + packer.flush(), "deflate"
    resp = post(client, body, **{"Content-Encoding": encoding})
    assert resp.get_json() == {"status": "success", "accepted": 2, "rejected": 0}
    assert [r["event_id"] for r in spool_rows(client)] == [r["event_id"] for r in records]


def test_a_zip_bomb_gets_413_and_stores_nothing(client: FlaskClient) -> None:
    bomb = gzip.compress(b'{"records": [], "pad": "' + b"x" * (8 << 20) + b'"}')
    assert len(bomb) < 64 * 1024
    assert_error(post(client, bomb, **{"Content-Encoding": "gzip"}), 413,
                 "decompressed, is larger than 1024 KiB")
    assert spool_rows(client) == []


def test_a_body_that_is_not_what_its_encoding_says_gets_400(client: FlaskClient) -> None:
    plain = json.dumps({"records": [make_record()]}).encode()
    assert_error(post(client, plain, **{"Content-Encoding": "gzip"}), 400, "not valid gzip")
    assert_error(post(client, gzip.compress(plain)[:-12], **{"Content-Encoding": "gzip"}), 400,
                 "ends too early")
    assert spool_rows(client) == []


@pytest.mark.parametrize("encoding", ["br", "compress", "zstd", "gzip, br"])
def test_other_content_encodings_get_415(client: FlaskClient, encoding: str) -> None:
    body = json.dumps({"records": [make_record()]}).encode()
    assert_error(post(client, body, **{"Content-Encoding": encoding}), 415,
                 "Content-Encoding gzip or deflate")
    assert spool_rows(client) == []


def test_identity_encoding_is_the_body_as_it_is(client: FlaskClient) -> None:
    body = json.dumps({"records": [make_record()]}).encode()
    assert post(client, body, **{"Content-Encoding": "identity"}).get_json()["accepted"] == 1


def test_nan_and_huge_numbers_reject_only_their_record(client: FlaskClient) -> None:
    good = make_record()
    huge = "1" + "0" * 400
    body = f'{{"records": [{json.dumps(good)}, {{"timestamp_ns": NaN}}, ' \
           f'{{"timestamp_ns": {huge}}}]}}'
    body = body.encode()
    assert post(client, body).get_json() == {"status": "success", "accepted": 1, "rejected": 2}


def test_a_retried_batch_is_forwarded_once(client: FlaskClient) -> None:
    batch = {"records": [make_record(), make_record()]}
    assert post(client, batch).get_json()["accepted"] == 2
    # The browser retries because it never saw the answer: same answer, delivered once.
    assert post(client, batch).get_json()["accepted"] == 2
    delivered = [r["event_id"] for r in forward(client)]
    assert sorted(delivered) == sorted(r["event_id"] for r in batch["records"])
    assert metric(client, "ui_telemetry_records_duplicate_total") == \
        "ui_telemetry_records_duplicate_total 2.0"
    assert metric(client, "ui_telemetry_records_forwarded_total") == \
        "ui_telemetry_records_forwarded_total 2.0"


def test_a_duplicate_inside_one_batch_is_forwarded_once(client: FlaskClient) -> None:
    record = make_record()
    assert post(client, {"records": [record, record]}).get_json()["accepted"] == 2
    assert [r["event_id"] for r in forward(client)] == [record["event_id"]]


def test_every_record_of_mixed_and_repeated_batches_is_forwarded_once_in_order(
        client: FlaskClient) -> None:
    plain = [make_record() for _ in range(3)]
    rare = make_record(params={"componentSubType": "primary", "value": "dark"})  # a DATA line
    batches = [plain, [*plain[:2], make_record()], [rare, plain[2]], [make_record(), rare]]
    for batch in batches:
        assert post(client, {"records": batch}).get_json()["rejected"] == 0
    expected = list(dict.fromkeys(r["event_id"] for batch in batches for r in batch))
    lines = forward(client)
    assert [line["event_id"] for line in lines] == expected
    assert json.loads(lines[4]["params"]) == rare["params"]
    assert lines[0]["params"] == json.dumps(plain[0]["params"], sort_keys=True,
                                            separators=(",", ":"))


def golden(relay_dir: Path, **fields: object) -> dict:
    """The upstream record, written out field by field: nothing here comes from the relay's
    code, so a changed fixed field (schema_version, source_sdk, ...) fails the test."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    return {**fields, "status": "success", "duration_ms": 0,
            "server_installation_id": (relay_dir / "installation_id").read_text().strip(),
            "source_sdk": "ui-telemetry-relay", "version": pyproject["project"]["version"],
            "schema_version": 2, "python_version": platform.python_version(),
            "operating_system": platform.platform()}


GOLDEN_IDS = {"event_id": "0b6f3c1e-9a2d-4c7b-8e5f-1d2c3b4a5f60",
              "installation_id": "5d1e7f00-2c3b-4a59-9e8d-7c6b5a493827",
              "session_id": "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"}
GOLDEN_VIEW = "c0ffee00-1234-4abc-9def-001122334455"


def test_the_upstream_record_is_exactly_the_golden_one(tmp_path: Path) -> None:
    client = build_app(tmp_path).test_client()
    now = time.time_ns()
    common = {"componentId": "mlflow.experiments.create-button", "componentType": "button",
              "componentViewId": GOLDEN_VIEW, "eventType": "onClick"}
    # The usual record, an upper-case id without dashes, and one with optional params:
    # each of the stored forms.
    records = [
        {**GOLDEN_IDS, "event_name": "ui_event", "timestamp_ns": now, "params": common},
        {**GOLDEN_IDS, "event_id": "0B6F3C1E9A2D4C7B8E5F1D2C3B4A5F61", "event_name": "ui_event",
         "timestamp_ns": now + 1, "params": common},
        {**GOLDEN_IDS, "event_id": "0b6f3c1e-9a2d-4c7b-8e5f-1d2c3b4a5f62",
         "event_name": "ui_event", "timestamp_ns": now + 2,
         "params": {**common, "componentSubType": "primary", "value": "dark"}},
    ]
    assert post(client, {"records": records}).get_json()["accepted"] == 3
    got = forward(client)
    base = {"event_name": "ui_event", "installation_id": GOLDEN_IDS["installation_id"],
            "session_id": GOLDEN_IDS["session_id"]}
    params = ('{"componentId":"mlflow.experiments.create-button","componentType":"button",'
              f'"componentViewId":"{GOLDEN_VIEW}","eventType":"onClick"}}')
    assert got == [
        golden(tmp_path, event_id="0b6f3c1e-9a2d-4c7b-8e5f-1d2c3b4a5f60", timestamp_ns=now,
               params=params, **base),
        golden(tmp_path, event_id="0b6f3c1e-9a2d-4c7b-8e5f-1d2c3b4a5f61", timestamp_ns=now + 1,
               params=params, **base),
        golden(tmp_path, event_id="0b6f3c1e-9a2d-4c7b-8e5f-1d2c3b4a5f62", timestamp_ns=now + 2,
               params='{"componentId":"mlflow.experiments.create-button",'
                      '"componentSubType":"primary","componentType":"button",'
                      f'"componentViewId":"{GOLDEN_VIEW}","eventType":"onClick",'
                      '"value":"dark"}', **base),
    ]
    # MLflow's field order, in every line of the sink.
    order = ["event_id", "event_name", "timestamp_ns", "params", "status", "duration_ms",
             "installation_id", "session_id", "server_installation_id", "source_sdk", "version",
             "schema_version", "python_version", "operating_system"]
    assert all(list(line) == order for line in got)


def test_a_retry_after_forwarding_is_not_forwarded_again(client: FlaskClient) -> None:
    batch = {"records": [make_record()]}
    post(client, batch)
    assert len(forward(client)) == 1
    post(client, batch)
    assert len(forward(client)) == 1
    assert metric(client, "ui_telemetry_records_duplicate_total") == \
        "ui_telemetry_records_duplicate_total 1.0"


def test_a_retry_after_a_restart_is_not_forwarded_again(tmp_path: Path) -> None:
    batch = {"records": [make_record(), make_record()]}
    first = build_app(tmp_path).test_client()
    post(first, batch)
    assert len(forward(first)) == 2
    relay_of(first.application).forwarder.release()
    # A new process on the same data directory learns what the last one delivered.
    second = build_app(tmp_path).test_client()
    post(second, {"records": [*batch["records"], make_record()]})
    assert len(forward(second)) == 3


def test_relay_assigns_an_event_id_when_absent(client: FlaskClient) -> None:
    record = make_record()
    del record["event_id"]
    post(client, {"records": [record, dict(record)]})
    ids = [r["event_id"] for r in spool_rows(client)]
    assert len(ids) == 2 and len(set(ids)) == 2


@pytest.mark.parametrize("method", ["put", "delete", "patch"])
def test_other_methods_get_405(client: FlaskClient, method: str) -> None:
    resp = getattr(client, method)(ENDPOINT)
    assert_error(resp, 405, method.upper())
    assert "POST" in resp.headers["Allow"]


def test_get_returns_mlflow_shaped_config(client: FlaskClient) -> None:
    assert client.get(ENDPOINT).get_json() == {
        "disable_ui_telemetry": False, "disable_ui_events": [], "ui_rollout_percentage": 100}


def test_local_config_rollout_and_disabled_events(tmp_path: Path) -> None:
    app = build_app(tmp_path, {"RELAY_UI_ROLLOUT_PERCENTAGE": "25",
                               "RELAY_DISABLE_UI_EVENTS": "mlflow.a, mlflow.b"})
    assert app.test_client().get(ENDPOINT).get_json() == {
        "disable_ui_telemetry": False, "disable_ui_events": ["mlflow.a", "mlflow.b"],
        "ui_rollout_percentage": 25}


def test_static_prefix_moves_every_route(tmp_path: Path) -> None:
    app = build_app(tmp_path, {"RELAY_STATIC_PREFIX": "/mlflow/"})
    client = app.test_client()
    assert client.post("/mlflow" + ENDPOINT, json={"records": [make_record()]}).status_code == 200
    assert client.get("/mlflow/health").status_code == 200
    assert client.post(ENDPOINT, json={"records": []}).status_code == 404
    # The page's endpoint is relative, so a proxy that mounts the app elsewhere still works.
    page = client.get("/mlflow/settings").get_data(as_text=True)
    assert '"endpoint": "ajax-api/3.0/mlflow/ui-telemetry"' in page


@pytest.mark.parametrize("origin,host,status", [
    ("http://localhost:5000", "localhost:5000", 200),
    ("http://example.com", "example.com:80", 200),
    ("https://evil.example", "localhost:5000", 403),
    ("http://localhost:5001", "localhost:5000", 403),
    ("null", "localhost:5000", 403),
])
def test_cross_site_posts_are_refused(client: FlaskClient, origin: str, host: str,
                                      status: int) -> None:
    resp = client.post(ENDPOINT, json={"records": [make_record()]},
                       headers={"Origin": origin, "Host": host})
    assert resp.status_code == status
    if status == 403:
        assert_error(resp, 403, "RELAY_CORS_ORIGINS")
        assert origin not in resp.get_data(as_text=True)
        assert spool_rows(client) == []


def test_listed_origin_may_post_and_gets_cors_headers(tmp_path: Path) -> None:
    app = build_app(tmp_path, {"RELAY_CORS_ORIGINS": "https://ui.example.org"})
    resp = app.test_client().post(ENDPOINT, json={"records": [make_record()]},
                                  headers={"Origin": "https://ui.example.org",
                                           "Host": "relay.internal"})
    assert resp.status_code == 200
    assert resp.headers["Access-Control-Allow-Origin"] == "https://ui.example.org"


def test_no_cors_headers_unless_configured(client: FlaskClient) -> None:
    resp = client.get(ENDPOINT, headers={"Origin": "https://ui.example.org"})
    assert "Access-Control-Allow-Origin" not in resp.headers


def test_spool_full_answers_503_with_retry_after(tmp_path: Path) -> None:
    app = build_app(tmp_path, {"RELAY_SPOOL_MAX_RECORDS": "3"})
    client = app.test_client()
    assert post(client, {"records": [make_record() for _ in range(3)]}).status_code == 200
    resp = post(client, {"records": [make_record()]})
    assert_error(resp, 503, "full")
    assert int(resp.headers["Retry-After"]) > 0


def test_health_and_metrics(client: FlaskClient) -> None:
    assert client.get("/health").get_json() == {"status": "ok", "telemetry": "on",
                                                 "forwarder": "stopped"}
    post(client, {"records": [make_record(), {"x": 1}]})
    post(client, b"nope")
    text = client.get("/metrics").get_data(as_text=True)
    assert "ui_telemetry_records_received_total 1.0" in text
    assert 'ui_telemetry_records_rejected_total{reason="event_name"} 1.0' in text
    assert 'ui_telemetry_requests_rejected_total{reason="invalid_json"} 1.0' in text
    assert "ui_telemetry_spool_depth 1.0" in text
    assert "ui_telemetry_enabled 1.0" in text


def test_pages_carry_a_strict_csp_and_inert_config(client: FlaskClient) -> None:
    resp = client.get("/settings")
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in resp.headers["Content-Security-Policy"]
    html = resp.get_data(as_text=True)
    assert '<script type="application/json" id="ui-telemetry-config">' in html


def test_the_counters_add_up(client: FlaskClient) -> None:
    def value(name: str) -> float:
        line = metric(client, name)
        return float(line.rsplit(" ", 1)[1])

    batch = {"records": [make_record(), make_record(), {"x": 1}]}
    post(client, batch)
    post(client, batch)  # a retry: stored again, forwarded once
    assert value("ui_telemetry_records_received_total") == 4
    assert value("ui_telemetry_spool_depth") == 4
    forward(client)
    assert value("ui_telemetry_records_received_total") == 4
    assert value("ui_telemetry_records_forwarded_total") == 2
    assert value("ui_telemetry_records_duplicate_total") == 2
    assert value("ui_telemetry_spool_depth") == 0
