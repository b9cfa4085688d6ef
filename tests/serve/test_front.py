"""relay.serve.front under `ui-telemetry serve`: slow clients hold no worker, a read timeout
closes them, and connections over the cap are refused at once. Real gunicorn on 127.0.0.1."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..support import RelayServer, http_post, in_threads, make_record, wait_for

SLOW_START = b"POST /ajax-api/3.0/mlflow/ui-telemetry HTTP/1.1\r\nHost: relay\r\n"


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[RelayServer]:
    # One worker, as `ui-telemetry serve` starts by default: the case a slow client could stall.
    srv = RelayServer(tmp_path / "data", {"RELAY_READ_TIMEOUT": "2s"}).start()
    yield srv
    srv.stop()


def metric(srv: RelayServer, name: str) -> float:
    import urllib.request

    with urllib.request.urlopen(srv.base + "/metrics", timeout=10) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def slow_connections(port: int, n: int) -> list[socket.socket]:
    """n connections that began a request and send the rest a header line at a time."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(SLOW_START)
        socks.append(s)
    return socks


def closed_by_server(s: socket.socket, within: float = 5) -> bool:
    """True when the server closes the connection within `within` s (what it sent first, the
    rest of an earlier answer, is read and let go)."""
    s.settimeout(within)
    try:
        while s.recv(4096):
            pass
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return True


@pytest.mark.parametrize("n", [1, 100])
def test_slow_connections_hold_nothing_and_are_closed_after_the_read_timeout(
        relay: RelayServer, n: int) -> None:
    socks = slow_connections(relay.port, n)
    try:
        began = time.monotonic()
        # Ordinary POSTs go on while the slow requests trickle in.
        for _ in range(10):
            status, body = relay.post({"records": [make_record()]})
            assert (status, body["accepted"]) == (200, 1)
            for s in socks:
                s.sendall(b"X-Trickle: 1\r\n")
        assert time.monotonic() - began < 2, "a POST waited for a slow client"
        assert all(closed_by_server(s) for s in socks)
        assert time.monotonic() - began < 2 + 5
    finally:
        for s in socks:
            s.close()
    wait_for(lambda: metric(relay, 'ui_telemetry_connections_closed_total{reason="slow"}') == n,
             timeout=10)


def test_a_slow_body_is_closed_too_and_nothing_of_it_is_stored(relay: RelayServer) -> None:
    with socket.create_connection(("127.0.0.1", relay.port), timeout=5) as s:
        s.sendall(SLOW_START + b"Content-Type: text/plain\r\nContent-Length: 500\r\n\r\n{")
        assert closed_by_server(s)
    assert metric(relay, "ui_telemetry_spool_depth") == 0
    assert relay.post({"records": [make_record()]})[0] == 200


def test_a_kept_alive_connection_gets_a_deadline_for_each_request(relay: RelayServer) -> None:
    with socket.create_connection(("127.0.0.1", relay.port), timeout=5) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: relay\r\n\r\n")
        assert b"200 OK" in s.recv(4096)
        s.sendall(b"GET /health HTTP/1.1\r\n")  # the next request, never finished
        assert closed_by_server(s)


def test_connections_over_the_cap_are_refused_at_once(tmp_path: Path) -> None:
    srv = RelayServer(tmp_path / "data", {"RELAY_MAX_CONNECTIONS": "20",
                                          "RELAY_READ_TIMEOUT": "30s"}).start()
    socks = slow_connections(srv.port, 20)
    try:
        extra = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        began = time.monotonic()
        answer = extra.recv(4096)
        assert answer.startswith(b"HTTP/1.1 503 Service Unavailable")
        assert b"Retry-After: 1" in answer and b"too many open connections" in answer
        assert time.monotonic() - began < 1
        extra.close()
    finally:
        for s in socks:
            s.close()
    # The slots free as the slow ones go: the relay answers again.
    wait_for(lambda: http_post(srv.port, "/ajax-api/3.0/mlflow/ui-telemetry",
                               {"records": [make_record()]})[0] == 200, timeout=10)
    assert metric(srv, 'ui_telemetry_connections_closed_total{reason="over_cap"}') >= 1
    srv.stop()


def test_posts_from_many_threads_while_slow_clients_wait_all_arrive(relay: RelayServer) -> None:
    socks = slow_connections(relay.port, 50)
    stored: list[int] = []

    def client() -> None:
        for _ in range(20):
            status, body = relay.post({"records": [make_record() for _ in range(5)]})
            assert status == 200
            stored.append(body["accepted"])

    try:
        in_threads(client, 4)
    finally:
        for s in socks:
            s.close()
    assert sum(stored) == 400
