"""Real parts for tests: a capture upstream on 127.0.0.1 and a real `ui-telemetry serve`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from relay.control.config import ENDPOINT

REPO = Path(__file__).resolve().parent.parent
__all__ = ["ENDPOINT"]  # the relay's own, for the tests that post to it


def make_record(**overrides: Any) -> dict[str, Any]:
    params = {"componentId": "mlflow.experiments.create-button",
              "componentViewId": str(uuid.uuid4()), "componentType": "button",
              "eventType": "onClick"}
    params.update(overrides.pop("params", {}))
    record = {"installation_id": str(uuid.uuid4()), "session_id": str(uuid.uuid4()),
              "event_name": "ui_event", "timestamp_ns": time.time_ns(), "params": params,
              "event_id": str(uuid.uuid4())}
    record.update(overrides)
    return record


def in_threads(target: Any, n: int, timeout: float = 60) -> None:
    """Run `target` in n threads at once and wait for all of them."""
    threads = [threading.Thread(target=target) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Captured:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class CaptureUpstream:
    """An HTTP upstream that records what it receives. `mode` picks how it answers:
    ok, fail500, throttle (429 + Retry-After), hang, every_other, status:<code>."""

    mode: str = "ok"
    retry_after: int = 1
    hang_seconds: float = 5.0
    requests: list[Captured] = field(default_factory=list)
    attempts: int = 0
    port: int = 0

    def __post_init__(self) -> None:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with upstream.lock:
                    upstream.attempts += 1
                    attempt = upstream.attempts
                    mode = upstream.mode
                if mode == "hang":
                    time.sleep(upstream.hang_seconds)
                    return
                status = 200
                if mode == "fail500" or (mode == "every_other" and attempt % 2 == 1):
                    status = 500
                elif mode == "throttle":
                    status = 429
                elif mode.startswith("status:"):
                    status = int(mode.split(":")[1])
                if status == 200:
                    with upstream.lock:
                        upstream.requests.append(
                            Captured(self.path, dict(self.headers.items()), json.loads(body)))
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", str(upstream.retry_after))
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/ingest"

    def data(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r["data"] for c in self.requests for r in c.body["records"]]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def stop_group(proc: subprocess.Popen[bytes] | None, grace: float = 30) -> None:
    """SIGTERM a server's process group, and SIGKILL it if it is not gone within `grace` s."""
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def wait_for(predicate: Any, timeout: float = 20.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


class RelayServer:
    """`ui-telemetry serve` in a subprocess (real gunicorn), logs captured to a file."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None, workers: int = 1,
                 port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.log_path = data_dir.parent / f"{data_dir.name}-server.log"
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK")}
        self.env.update({"RELAY_DATA_DIR": str(data_dir), "RELAY_IGNORE_CI": "true",
                         "RELAY_FLUSH_INTERVAL": "0.2s", "PYTHONPATH": str(REPO)})
        self.env.update(env or {})
        self.workers = workers
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RelayServer:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "relay.serve.cli", "serve", "--port", str(self.port),
             "--workers", str(self.workers), "--graceful-timeout", "10"],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
            start_new_session=True)
        log.close()
        wait_for(self._healthy, timeout=30)
        return self

    def _healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"server exited: {self.logs()}")
        try:
            with urllib.request.urlopen(self.base + "/health", timeout=1) as r:
                return r.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def kill9(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        stop_group(self.proc)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def post(self, body: Any, headers: dict[str, str] | None = None,
             path: str = ENDPOINT, source: str | None = None) -> tuple[int, dict[str, Any]]:
        return http_post(self.port, path, body, headers, source)


def http_post(port: int, path: str, body: Any, headers: dict[str, str] | None = None,
              source: str | None = None) -> tuple[int, dict[str, Any]]:
    """POST with http.client; `source` binds the client socket (e.g. 127.0.0.77)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30,
                                      source_address=(source, 0) if source else None)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn.request("POST", path, body=data,
                 headers={"Content-Type": "application/json", **(headers or {})})
    resp = conn.getresponse()
    raw = resp.read()
    conn.close()
    return resp.status, json.loads(raw) if raw else {}


def waiting_data(relay: Any) -> list[dict[str, Any]]:
    """Every record waiting in a relay's spool, as the DATA the forwarder will send."""
    return [json.loads(record.data) for row in relay.spool.peek(10**9)
            for record in relay.codec.read_row(row.data, row.n)]


def read_sink(data_dir: Path) -> list[dict[str, Any]]:
    path = data_dir / "forwarded.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class ConfigServer:
    """Serves MLflow-shaped remote config JSON on 127.0.0.1; `payload=None` answers 503."""

    def __init__(self, payload: dict[str, Any] | None) -> None:
        self.payload = payload
        self.hits: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                owner.hits.append(self.path)
                if owner.payload is None:
                    self.send_response(503)
                    self.end_headers()
                    return
                body = json.dumps(owner.payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/config/{{version}}.json"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
