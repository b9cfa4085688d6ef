"""relay.shortcut: the ingest POST answered before Flask, exactly as the Flask view answers it."""

from __future__ import annotations

import http.client
import json
from pathlib import Path

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.app import Relay
from relay.config import load_config
from relay.shortcut import IngestShortcut

from .conftest import build_app
from .support import ENDPOINT, RelayServer, make_record
from .test_fuzz import bodies, content_types

# Origin, the privacy signals, sizes: the headers that steer the endpoint.
header_sets = st.fixed_dictionaries({}, optional={
    "Origin": st.sampled_from(["http://localhost", "http://localhost:80", "https://evil.example",
                               "http://allowed.example", "null", ""]),
    "DNT": st.sampled_from(["1", "0"]),
    "Sec-GPC": st.sampled_from(["1", " 1 "]),
})


def flask_only(app: Flask) -> Flask:
    """The same app with the shortcut taken out: every request through Flask's machinery."""
    assert isinstance(app.wsgi_app, IngestShortcut)
    app.wsgi_app = app.wsgi_app.app  # type: ignore[method-assign]
    return app


def answer(app: Flask, body: bytes, ctype: str, headers: dict[str, str],
           path: str = ENDPOINT) -> tuple[int, dict[str, str], bytes]:
    resp = app.test_client().post(path, data=body, content_type=ctype, headers=headers)
    return resp.status_code, dict(resp.headers), resp.get_data()


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> tuple[Flask, Flask]:
    return (build_app(tmp_path_factory.mktemp("with")),
            flask_only(build_app(tmp_path_factory.mktemp("without"))))


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=bodies, ctype=content_types, headers=header_sets)
def test_every_post_is_answered_as_flask_answers_it(twins: tuple[Flask, Flask], body: bytes,
                                                    ctype: str, headers: dict[str, str]) -> None:
    shortcut, flask = twins
    assert answer(shortcut, body, ctype, headers) == answer(flask, body, ctype, headers)
    # ... and leaves the same spool behind: the records kept, every counter.
    spools = [app.extensions["ui_telemetry"].spool for app in twins]
    assert spools[0].counters() == spools[1].counters()
    assert spools[0].depth() == spools[1].depth()


@pytest.mark.parametrize("env", [{}, {"RELAY_CORS_ORIGINS": "http://allowed.example"},
                                 {"DO_NOT_TRACK": "true"}, {"RELAY_SPOOL_MAX_RECORDS": "1"},
                                 {"RELAY_STATIC_PREFIX": "/mlflow"}])
def test_settings_that_change_the_answer_change_it_alike(tmp_path: Path, env: dict[str, str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    if "DO_NOT_TRACK" in env:
        monkeypatch.setenv("DO_NOT_TRACK", "true")
    path = env.get("RELAY_STATIC_PREFIX", "") + ENDPOINT
    shortcut = build_app(tmp_path / "with", env)
    flask = flask_only(build_app(tmp_path / "without", env))
    body = json.dumps({"records": [make_record(), {"event_name": "x"}]}).encode()
    for headers in ({}, {"Origin": "http://allowed.example"}, {"Origin": "http://localhost"}):
        for _ in range(2):  # a spool of 1 record is full after the first: 503, Retry-After
            assert answer(shortcut, body, "application/json", headers, path) == \
                answer(flask, body, "application/json", headers, path)


def test_every_post_to_the_endpoint_is_answered_once_without_flask(tmp_path: Path) -> None:
    app = build_app(tmp_path)
    reached: list[str] = []
    app.before_request(lambda: reached.append("flask") and None)
    client = app.test_client()
    relay = app.extensions["ui_telemetry"]
    ok = client.post(ENDPOINT, json={"records": [make_record()]})
    assert ok.status_code == 200 and reached == []
    assert ok.headers["Content-Security-Policy"] and ok.headers["X-Content-Type-Options"]
    # Errors too: the same answer type, counted once (ingest is never run a second time).
    bad = client.post(ENDPOINT, data=b'{"records": 3}', content_type="application/json")
    assert bad.status_code == 400 and "records" in bad.get_json()["error"]
    assert bad.headers["Content-Security-Policy"]
    big = client.post(ENDPOINT, data=b" " * (2 << 20), content_type="application/json")
    assert big.status_code == 413
    assert reached == []
    assert relay.spool.counters()[("requests_rejected", "invalid_envelope")] == 1
    assert relay.spool.counters()[("requests_rejected", "too_large")] == 1
    # Anything else is Flask's.
    assert client.get(ENDPOINT).status_code == 200 and reached == ["flask"]


def test_a_chunked_body_is_read_by_the_shortcut_under_gunicorn(tmp_path: Path) -> None:
    server = RelayServer(tmp_path / "data").start()
    try:
        body = json.dumps({"records": [make_record(), make_record()]}).encode()
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("POST", ENDPOINT, body=iter([body[:100], body[100:]]),
                     headers={"Content-Type": "text/plain"}, encode_chunked=True)
        resp = conn.getresponse()
        assert resp.status == 200 and json.loads(resp.read())["accepted"] == 2
        conn.close()
    finally:
        server.stop()


def test_the_shortcut_starts_the_forwarder_as_the_flask_hook_does(tmp_path: Path) -> None:
    app = build_app(tmp_path)
    app.config["UI_TELEMETRY_FORWARDER"] = True
    forwarder = app.extensions["ui_telemetry"].forwarder
    try:
        assert app.test_client().post(ENDPOINT, json={"records": [make_record()]}).status_code \
            == 200
        assert forwarder._thread is not None and forwarder._thread.is_alive()
    finally:
        forwarder.stop()


def test_an_embedding_app_keeps_its_own_hooks_in_front_of_the_endpoint(tmp_path: Path) -> None:
    # mlflow server guards routes with before_request hooks (authentication): init_app() does
    # not install the shortcut, so no POST gets past them.
    host = Flask("embedding")
    Relay(load_config({"RELAY_DATA_DIR": str(tmp_path)})).init_app(host, ui=False)
    host.before_request(lambda: ("sign in first", 401))
    assert not isinstance(host.wsgi_app, IngestShortcut)
    resp = host.test_client().post(ENDPOINT, json={"records": [make_record()]})
    assert resp.status_code == 401
    assert host.extensions["ui_telemetry"].spool.depth() == 0
