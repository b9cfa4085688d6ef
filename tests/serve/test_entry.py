"""relay.serve.entry: the WSGI entry keeps the forwarder running and answers endpoint POSTs
before Flask (the fast path). Both ways of answering are held to the same written answers."""

from __future__ import annotations

import http.client
import json
import zlib
from pathlib import Path

import pytest
from flask import Flask

from relay.control.config import load_config
from relay.serve.app import Relay
from relay.serve.entry import Entry
from relay.serve.extension import relay_of

from ..conftest import build_app
from ..support import ENDPOINT, RelayServer, make_record


def flask_view_only(app: Flask) -> Flask:
    """The app with the fast path turned off: every POST through Flask's view."""
    assert isinstance(app.wsgi_app, Entry)
    app.wsgi_app.fast_path = None
    return app


@pytest.fixture(params=["fast path", "flask view"])
def make(request: pytest.FixtureRequest, tmp_path: Path):
    def build(env: dict[str, str] | None = None) -> Flask:
        app = build_app(tmp_path / "data", env)
        return app if request.param == "fast path" else flask_view_only(app)
    return build


def post(app: Flask, body: bytes, ctype: str = "application/json", path: str = ENDPOINT,
         **headers: str):
    return app.test_client().post(path, data=body, content_type=ctype, headers=headers)


def records(*items: dict) -> bytes:
    return json.dumps({"records": list(items)}).encode()


def test_a_partial_accept_is_answered_with_its_counts_and_the_security_headers(make) -> None:
    resp = post(make(), records(make_record(), {"event_name": "x"}))
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "success", "accepted": 1, "rejected": 1}
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.headers["Content-Length"] == str(len(resp.get_data()))
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(("body", "ctype", "headers", "status", "words"), [
    (b'{"records": 3}', "application/json", {}, 400, 'a "records" list'),
    (b"{", "text/plain", {}, 400, "not valid JSON (line 1, column 2)"),
    (records(make_record()), "text/html", {}, 415, "not text/html"),
    (records(make_record()), "text/plain", {"Content-Encoding": "br"}, 415, "'br'"),
    (b" " * (1024 * 1024 + 1), "text/plain", {}, 413, "larger than 1024 KiB"),
    (zlib.compress(b"x"), "text/plain", {"Content-Encoding": "deflate"}, 400, "not valid JSON"),
    (records(make_record()), "text/plain", {"Origin": "https://evil.example"}, 403,
     "cross-site telemetry is refused"),
])
def test_a_refusal_is_answered_in_words(make, body: bytes, ctype: str, headers: dict,
                                        status: int, words: str) -> None:
    resp = post(make(), body, ctype, **headers)
    assert resp.status_code == status
    assert resp.get_json()["status"] == "error" and words in resp.get_json()["error"]
    assert resp.headers["Content-Security-Policy"]


@pytest.mark.parametrize("signal", [{"DNT": "1"}, {"Sec-GPC": "1"}])
def test_a_privacy_signal_is_answered_disabled_and_nothing_is_kept(make, signal) -> None:
    app = make()
    resp = post(app, records(make_record()), **signal)
    assert (resp.status_code, resp.get_json()) == (200, {"status": "disabled"})
    assert relay_of(app).spool.depth() == 0


def test_a_full_spool_is_a_503_with_retry_after(make) -> None:
    app = make({"RELAY_SPOOL_MAX_RECORDS": "1"})
    assert post(app, records(make_record())).status_code == 200
    resp = post(app, records(make_record()))
    assert resp.status_code == 503 and resp.headers["Retry-After"] == "60"
    assert "spool is full" in resp.get_json()["error"]


def test_under_a_prefix_the_endpoint_moves_with_it(make) -> None:
    app = make({"RELAY_STATIC_PREFIX": "/mlflow"})
    assert post(app, records(make_record()), path=f"/mlflow{ENDPOINT}").get_json()["accepted"] == 1
    assert post(app, records(make_record())).status_code == 404


def test_a_fault_of_ours_is_a_500_in_words_and_nothing_leaks(make, caplog) -> None:
    app = make()

    def broken(*_: object, **__: object) -> bool:
        raise RuntimeError("secret request text")
    relay_of(app).spool.store = broken  # type: ignore[method-assign]
    resp = post(app, records(make_record()))
    assert resp.status_code == 500
    assert resp.get_json()["error"].startswith("the relay hit an internal error")
    assert "secret request text" not in resp.get_data(as_text=True) + caplog.text
    assert "internal error RuntimeError" in caplog.text


def test_every_post_to_the_endpoint_is_answered_once_without_flask(tmp_path: Path) -> None:
    app = build_app(tmp_path)
    reached: list[str] = []
    app.before_request(lambda: reached.append("flask") and None)
    client = app.test_client()
    ok = client.post(ENDPOINT, json={"records": [make_record()]})
    assert ok.status_code == 200 and reached == []
    bad = client.post(ENDPOINT, data=b'{"records": 3}', content_type="application/json")
    assert bad.status_code == 400
    assert reached == []
    # Counted once: ingest is never run a second time.
    assert relay_of(app).spool.counters()[("requests_rejected", "invalid_envelope")] == 1
    # Anything else is Flask's.
    assert client.get(ENDPOINT).status_code == 200 and reached == ["flask"]


def test_a_chunked_body_is_read_by_the_fast_path_under_gunicorn(tmp_path: Path) -> None:
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


def test_the_forwarder_runs_from_init_app_and_is_started_again_by_a_request(
        tmp_path: Path) -> None:
    app = build_app(tmp_path, start_forwarder=True)
    forwarder = relay_of(app).forwarder
    try:
        assert forwarder.running
        forwarder.stop()
        assert not forwarder.running
        assert app.test_client().get("/health").get_json()["forwarder"] == "running"
    finally:
        forwarder.stop()


def test_an_embedding_app_keeps_its_own_hooks_in_front_of_the_endpoint(tmp_path: Path) -> None:
    # mlflow server guards routes with before_request hooks (authentication): without
    # `shortcut`, no POST gets past them.
    host = Flask("embedding")
    Relay(load_config({"RELAY_DATA_DIR": str(tmp_path)})).init_app(host, ui=False,
                                                                    forward=False)
    host.before_request(lambda: ("sign in first", 401))
    resp = host.test_client().post(ENDPOINT, json={"records": [make_record()]})
    assert resp.status_code == 401
    assert relay_of(host).spool.depth() == 0
