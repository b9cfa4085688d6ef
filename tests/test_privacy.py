"""Privacy: canaries sent every way a client could leak itself, searched for in every output.

Runs against real gunicorn (`ui-telemetry serve`), with the client socket bound to 127.0.0.77
so the client address is distinguishable from the server's own.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import ENDPOINT, CaptureUpstream, RelayServer, http_post, make_record, wait_for

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


def test_no_canary_reaches_any_output(server: tuple[RelayServer, CaptureUpstream]) -> None:
    srv, upstream = server
    responses = []
    for _ in range(3):
        status, body = http_post(srv.port, f"{ENDPOINT}?token={QUERY_CANARY}",
                                 {"records": [poisoned_record(), make_record()]},
                                 CANARIES, source=CLIENT_ADDRESS)
        assert status == 200 and body["accepted"] == 2
        responses.append(json.dumps(body))
    # Also an error path and a 404 path, which log differently.
    status, body = http_post(srv.port, f"/nope?x={QUERY_CANARY}", {"records": []}, CANARIES,
                             source=CLIENT_ADDRESS)
    responses.append(json.dumps(body))
    status, body = http_post(srv.port, ENDPOINT, b"{bad json " + QUERY_CANARY.encode(),
                             CANARIES, source=CLIENT_ADDRESS)
    assert status == 400
    responses.append(json.dumps(body))

    wait_for(lambda: len(upstream.data()) == 6)
    srv.stop()
    outputs = {
        "upstream bodies": json.dumps([c.body for c in upstream.requests]),
        "upstream headers": json.dumps([c.headers for c in upstream.requests]),
        "server log": srv.logs(),
        "responses": "\n".join(responses),
    }
    for path in srv.data_dir.rglob("*"):
        if path.is_file():
            outputs[str(path)] = path.read_bytes().decode("latin-1")
    assert "POST " + ENDPOINT in outputs["server log"]  # the log is there to be searched
    for name, text in outputs.items():
        for canary in canary_strings():
            assert canary not in text, f"{canary!r} leaked into {name}"


def test_malformed_http_does_not_log_the_client_address(
        server: tuple[RelayServer, CaptureUpstream]) -> None:
    srv, _ = server
    for garbage in (b"GARBAGE\r\n\r\n", b"GET /x?" + QUERY_CANARY.encode() + b" HTTP/9.9\r\n\r\n",
                    b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5,
                                      source_address=(CLIENT_ADDRESS, 0)) as s:
            s.sendall(garbage)
            s.recv(1024)
    wait_for(lambda: "Invalid request" in srv.logs(), timeout=10)
    logs = srv.logs()
    assert "ip=[scrubbed]" in logs
    assert CLIENT_ADDRESS not in logs and QUERY_CANARY not in logs


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
