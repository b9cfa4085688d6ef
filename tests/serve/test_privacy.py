"""Privacy: canaries sent every way a client could leak itself, searched for in every output.

Runs against real gunicorn (`ui-telemetry serve`), with the client socket bound to 127.0.0.77
so the client address is distinguishable from the server's own.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.serve.scrub import scrub

from ..support import (
    ENDPOINT,
    CaptureUpstream,
    RelayServer,
    http_post,
    make_record,
    read_sink,
    wait_for,
)

CLIENT_ADDRESS = "127.0.0.77"
CANARIES = {
    "X-Forwarded-For": "203.0.113.91",
    "Forwarded": "for=198.51.100.17;proto=https",
    "X-Real-IP": "192.0.2.55",
    "Cookie": "session=cookiecanary4711",
    "User-Agent": "Mozilla/5.0 UAcanary0815",
    "Referer": "https://intranet.example/secret-project-refcanary",
    "Authorization": "Bearer authcanary2323",
}
QUERY_CANARY = "querycanary9999"
PATH_CANARY = "pathcanary7777"
HEADER_CANARY = "headercanary5555"
FIELD_CANARIES = ("fieldcanary-ip-10.9.8.7", "freetext canary with spaces", "me@canary.example")


def canary_strings() -> list[str]:
    words = [CLIENT_ADDRESS, QUERY_CANARY, *FIELD_CANARIES, "203.0.113.91", "198.51.100.17",
             "192.0.2.55", "cookiecanary4711", "UAcanary0815", "refcanary", "authcanary2323"]
    return words


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[RelayServer, CaptureUpstream]]:
    upstream = CaptureUpstream()
    srv = RelayServer(tmp_path / "data", {"RELAY_INGESTION_URL": upstream.url}, workers=2)
    srv.start()
    yield srv, upstream
    srv.stop()
    upstream.close()


def poisoned_record() -> dict:
    record = make_record(params={"value": FIELD_CANARIES[1], "url": FIELD_CANARIES[0],
                                 "text": FIELD_CANARIES[2]})
    record.update({"ip": FIELD_CANARIES[0], "user_agent": FIELD_CANARIES[1],
                   "email": FIELD_CANARIES[2]})
    return record


def post_raw(port: int, path: str, body: bytes) -> str:
    """POST from CLIENT_ADDRESS with every canary header; the whole answer, headers and all."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30,
                                      source_address=(CLIENT_ADDRESS, 0))
    conn.request("POST", path, body=body, headers={"Content-Type": "text/plain", **CANARIES})
    resp = conn.getresponse()
    text = f"{resp.status} {resp.reason}\n{resp.msg}\n{resp.read().decode('latin-1')}"
    conn.close()
    return text


def files_of(data_dir: Path) -> dict[str, str]:
    return {str(path): path.read_bytes().decode("latin-1")
            for path in data_dir.rglob("*") if path.is_file()}


@pytest.mark.parametrize("sink", ["http", "file"])
def test_no_canary_reaches_any_output(tmp_path: Path, sink: str) -> None:
    upstream = CaptureUpstream()
    env = {"RELAY_FLUSH_INTERVAL": "1h"}  # records wait in the spool until SIGTERM drains them
    if sink == "http":
        env["RELAY_INGESTION_URL"] = upstream.url
    srv = RelayServer(tmp_path / "data", env, workers=2).start()
    try:
        def good() -> bytes:
            return json.dumps({"records": [poisoned_record(), make_record()]}).encode()

        answers = [post_raw(srv.port, f"{ENDPOINT}?token={QUERY_CANARY}", good())
                   for _ in range(3)]
        assert all(a.startswith("200 ") and '"accepted":2' in a for a in answers)
        # Error paths and a 404, which log differently.
        answers.append(post_raw(srv.port, f"/nope-{QUERY_CANARY}?x={QUERY_CANARY}", good()))
        answers.append(post_raw(srv.port, ENDPOINT, b"{bad json " + QUERY_CANARY.encode()))
        assert answers[-1].startswith("400 ")
        # The spool before anything left it: no page of it was ever freed or reused.
        waiting = files_of(srv.data_dir)
        assert any("spool.sqlite3" in name for name in waiting)
    finally:
        srv.stop()  # SIGTERM: the forwarder drains the spool to the sink
    delivered = upstream.data() if sink == "http" else read_sink(srv.data_dir)
    assert len(delivered) == 6
    upstream.close()
    outputs = {
        "upstream bodies": json.dumps([c.body for c in upstream.requests]),
        "upstream headers": json.dumps([c.headers for c in upstream.requests]),
        "server log": srv.logs(),
        "responses (status, headers, body)": "\n".join(answers),
        **{f"{name} (waiting)": text for name, text in waiting.items()},
        **files_of(srv.data_dir),
    }
    assert "POST " + ENDPOINT in outputs["server log"]  # the log is there to be searched
    if sink == "file":
        assert "forwarded.jsonl" in "".join(outputs)
    for name, text in outputs.items():
        for canary in canary_strings():
            assert canary not in text, f"{canary!r} leaked into {name}"


def test_malformed_http_does_not_log_the_client_address(
        server: tuple[RelayServer, CaptureUpstream]) -> None:
    srv, _ = server
    for garbage in (b"GARBAGE\r\n\r\n", b"GET /x?" + QUERY_CANARY.encode() + b" HTTP/9.9\r\n\r\n",
                    b"GET /" + PATH_CANARY.encode() + b" HTTP/9.9\r\n\r\n",
                    b"G\x01T /" + PATH_CANARY.encode() + b" HTTP/1.1\r\n\r\n",
                    b"GET / HTTP/1.1\r\nHost: x\r\nBad " + HEADER_CANARY.encode() + b"\r\n\r\n",
                    b"GET / HTTP/1.1\r\nHost: x\r\n" + HEADER_CANARY.encode()
                    + b"\x01: y\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5,
                                      source_address=(CLIENT_ADDRESS, 0)) as s:
            s.sendall(garbage)
            s.recv(1024)
    wait_for(lambda: srv.logs().count("Invalid HTTP request received") >= 4, timeout=10)
    logs = srv.logs()
    for canary in (CLIENT_ADDRESS, QUERY_CANARY, PATH_CANARY, HEADER_CANARY):
        assert canary not in logs, f"{canary!r} is in the server log"


def test_upstream_sees_only_allowed_headers_and_data_fields(
        server: tuple[RelayServer, CaptureUpstream]) -> None:
    srv, upstream = server
    http_post(srv.port, ENDPOINT, {"records": [poisoned_record()]}, CANARIES,
              source=CLIENT_ADDRESS)
    wait_for(lambda: upstream.requests)
    allowed = {"content-type", "content-length", "host", "user-agent", "accept",
               "accept-encoding", "connection"}
    for captured in upstream.requests:
        assert {h.lower() for h in captured.headers} <= allowed
        assert captured.headers["User-Agent"].startswith("ui-telemetry-relay/")
        for item in captured.body["records"]:
            assert set(item) == {"data", "partition-key"}
            assert len(item["partition-key"]) == 32
            assert set(item["data"]) == {
                "event_id", "event_name", "timestamp_ns", "params", "status", "duration_ms",
                "installation_id", "session_id", "server_installation_id", "source_sdk",
                "version", "schema_version", "python_version", "operating_system"}
            assert set(json.loads(item["data"]["params"])) == {
                "componentId", "componentViewId", "componentType", "eventType"}


@pytest.mark.parametrize(("line", "kept"), [
    ("Rejected request with invalid Host header: hostcanary.example:5000",
     "Rejected request with invalid Host header"),
    ("Blocked cross-origin request from http://origincanary.example",
     "Blocked cross-origin request"),
])
def test_mlflows_refusals_keep_no_header_value(line: str, kept: str) -> None:
    # MLflow's host and origin checks log the value they refused; inside `mlflow server` the
    # plugin's filter keeps only what happened.
    assert scrub(line) == kept


@pytest.mark.parametrize(("line", "kept"), [
    ("connection from 203.0.113.7 closed", "connection from [address] closed"),
    ("peer 2001:db8::1 reset", "peer [address] reset"),
    ("peer ::ffff:192.0.2.1 reset", "peer [address] reset"),
    ("to fe80::1%eth0 and 10.0.0.1:5000", "to [address]%eth0 and [address]:5000"),
])
def test_a_bare_address_anywhere_in_a_message_is_scrubbed(line: str, kept: str) -> None:
    assert scrub(line) == kept
