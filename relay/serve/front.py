"""The front of `ui-telemetry serve`: what stands between the internet and the relay's app.

gunicorn stays the process manager (workers, the graceful drain on SIGTERM, scrubbed logs), and
each worker is asynchronous: uvicorn's, through `RelayWorker`. A connection costs a coroutine,
not a worker, until its request has arrived whole, headers and body; only then does the Flask
app get a thread (`Front`). So a client that trickles its request holds nothing the others
need. On top of uvicorn, `guarded_protocol()` adds what it lacks for a server that faces the
internet:

- a read timeout: a request (headers and body) not received whole within RELAY_READ_TIMEOUT
  seconds of its first byte (or of the connection) closes the connection;
- a cap on open connections (RELAY_MAX_CONNECTIONS, shared among the workers): a connection
  over it is answered 503 at once and closed.

Neither reads the client's address, and `Front` takes it out of every request before the app
sees one: the relay cannot read it even by mistake.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import resource
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import h11
from flask import Flask
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn_worker import UvicornWorker

from ..control.config import load_config
from ..store import counters as c
from .extension import relay_of
from .scrub import access_path, scrub_server_logs

access = logging.getLogger("gunicorn.access")  # gunicorn's access log handlers, if it has one

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_BUSY = json.dumps({"status": "error", "error": "the relay has too many open connections; "
                    "try again in a second"}).encode()
REFUSED = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
           b"Retry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
           % (len(_BUSY), _BUSY))


class _Gone(Exception):
    """The client closed the connection before its request was whole."""


class Front:
    """The ASGI app a worker serves: the Flask app, given a request only once it is whole.

    The body is read first (at most max_body + 1 bytes: enough for the app to answer 413),
    then the WSGI app runs in a thread of the event loop's pool, once, and its whole answer is
    sent from the loop. asgiref's WsgiToAsgi does the same but hands every chunk of the answer
    back to the loop from the thread, which cost a third of the relay's throughput (see
    docs/throughput.md). The request's environ carries no client address.
    """

    def __init__(self, flask_app: Flask, max_body: int, threads: int = 1) -> None:
        self.flask_app = flask_app
        self.max_body = max_body
        # One thread a worker, as gunicorn's sync worker has: the relay's work is CPU and
        # SQLite's write lock, and more threads only contend for both (the GIL included).
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="ui-telemetry-app")

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        try:
            body = await self._body(receive)
        except _Gone:
            return  # nobody is left to answer
        began = time.perf_counter()
        environ = self._environ(scope, body)
        loop = asyncio.get_running_loop()
        status, headers, content = await loop.run_in_executor(self._pool, self._run, environ)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})
        # The access line of `ui-telemetry serve`, as before the front: nothing about who asked.
        access.info("%s %s %s %s %dms", scope["method"], access_path(scope["path"], status),
                    status, len(content), (time.perf_counter() - began) * 1000)

    async def _body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Gone
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            if size > self.max_body:  # the rest is never read: the answer is a 413
                return b"".join(chunks)[:self.max_body + 1]
            if not message.get("more_body"):
                return b"".join(chunks)

    @staticmethod
    def _environ(scope: dict[str, Any], body: bytes) -> dict[str, Any]:
        server = scope.get("server") or ("localhost", 80)
        environ: dict[str, Any] = {
            "REQUEST_METHOD": scope["method"],
            "SCRIPT_NAME": scope.get("root_path", "").encode().decode("latin-1"),
            "PATH_INFO": scope["path"].encode().decode("latin-1"),
            "QUERY_STRING": scope["query_string"].decode("latin-1"),
            "SERVER_NAME": server[0], "SERVER_PORT": str(server[1] or 80),
            "SERVER_PROTOCOL": f"HTTP/{scope['http_version']}",
            "wsgi.version": (1, 0), "wsgi.url_scheme": scope.get("scheme", "http"),
            "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
            "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
            # The body is whole, so its length is known even when it came chunked.
            "CONTENT_LENGTH": str(len(body)),
        }
        for name, value in scope["headers"]:
            key = name.decode("latin-1").upper().replace("-", "_")
            if key in ("CONTENT_TYPE", "CONTENT_LENGTH", "TRANSFER_ENCODING"):
                if key == "CONTENT_TYPE":  # the length is the body's, and it is no longer chunked
                    environ[key] = value.decode("latin-1")
                continue
            key = "HTTP_" + key
            text = value.decode("latin-1")
            environ[key] = f"{environ[key]},{text}" if key in environ else text
        return environ

    def _run(self, environ: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """The WSGI app's whole answer, in a thread of the pool."""
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Callable[[bytes], None]:
            started[:] = [status, headers]
            return chunks.append

        chunks: list[bytes] = []
        result = self.flask_app(environ, start_response)
        try:
            chunks.extend(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        status, headers = started
        return (int(status.split(" ", 1)[0]),
                [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
                b"".join(chunks))


def guarded_protocol(read_timeout: float, max_connections: int,
                     count: Callable[[str], None]) -> type[H11Protocol]:
    """uvicorn's HTTP/1.1 protocol with a read timeout and a connection cap (per worker);
    `count` is told each connection closed, by reason ("slow" or "over_cap")."""

    class Guarded(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                transport.write(REFUSED)
                transport.close()
                count("over_cap")
                return
            self._arm()

        def handle_events(self) -> None:
            super().handle_events()
            if self.conn.their_state not in (h11.IDLE, h11.SEND_BODY):
                self._disarm()  # the request is whole (or the connection is ending)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()  # a kept-alive connection's next request has a deadline too

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(read_timeout, self._too_slow)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_slow(self) -> None:
            self._deadline = None
            if not self.transport.is_closing():
                self.transport.close()  # half a request is owed no answer
                count("slow")

    return Guarded


class RelayWorker(UvicornWorker):
    """gunicorn's worker for `ui-telemetry serve`: uvicorn with the guarded protocol."""

    CONFIG_KWARGS: dict[str, Any] = {
        "loop": "asyncio", "http": "h11", "lifespan": "off",
        # Proxy headers are never read: the relay has no use for a client address.
        "proxy_headers": False, "server_header": False,
        "access_log": False,  # Front writes the access line, without an address
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = load_config()
        per_worker = -(-settings.max_connections // max(1, self.cfg.workers))
        self.config.http = guarded_protocol(settings.read_timeout, per_worker, self._count)
        _allow_files(per_worker + 64)  # a socket each, and the spool's files
        scrub_server_logs()

    def init_signals(self) -> None:
        super().init_signals()
        # uvicorn handles SIGTERM while it serves, then delivers it again to the handler set
        # here. The default one would end the process at once, before gunicorn's worker_exit
        # hook drains the forwarder; this one ends it through gunicorn's own exit path.
        signal.signal(signal.SIGTERM, _exit)

    def _count(self, reason: str) -> None:
        front = self.wsgi
        relay = relay_of(front.flask_app) if isinstance(front, Front) else None
        if relay is not None:  # off the event loop: a count is a SQLite write
            asyncio.get_running_loop().run_in_executor(
                None, relay.spool.count, [(c.CONNECTIONS_CLOSED, reason, 1)])


def _exit(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _allow_files(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        top = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (top, hard))


def create_front() -> Front:
    """The app `ui-telemetry serve` runs: create_app() behind the front."""
    from .app import create_app

    app = create_app()
    return Front(app, relay_of(app).config.max_body_bytes)  # type: ignore[union-attr]
