"""gunicorn settings for `ui-telemetry serve`: scrubbed logs and the forwarder's life cycle.

Loaded with `gunicorn -c python:relay.serve.gunicorn_conf`. gunicorn's usual access log starts with
the client address and its error log says `Invalid request from ip=...`; the ScrubbingLogger
below makes neither possible.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from gunicorn.glogging import Logger

from .extension import relay_of
from .scrub import access_path, scrub


class ScrubbingLogger(Logger):
    """gunicorn's logger with a fixed, address-free access line and a scrubbed error log."""

    def access(self, resp: Any, req: Any, environ: dict, request_time: timedelta) -> None:
        if not self.access_log_enabled:
            return
        # Method, path without query, status, size, duration: nothing about who asked. A path
        # that matched nothing (404) is any text a client chose, so it is not written.
        status = str(resp.status).split(None, 1)[0]
        millis = request_time.seconds * 1000 + request_time.microseconds // 1000
        path = access_path(environ.get("PATH_INFO", "-"), status)
        self.access_log.info("%s %s %s %s %sms", environ.get("REQUEST_METHOD", "-"),
                             path, status, getattr(resp, "sent", "-"), millis)

    def _scrubbed(self, level: str, msg: Any, *args: Any, **kwargs: Any) -> None:
        text = str(msg) % args if args else str(msg)
        # A traceback could quote a request line; keep the error, drop the exc_info.
        kwargs.pop("exc_info", None)
        getattr(self.error_log, level)(scrub(text), **kwargs)

    def critical(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self._scrubbed("critical", msg, *args, **kwargs)

    def error(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self._scrubbed("error", msg, *args, **kwargs)

    def warning(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self._scrubbed("warning", msg, *args, **kwargs)

    def info(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self._scrubbed("info", msg, *args, **kwargs)

    def debug(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self._scrubbed("debug", msg, *args, **kwargs)

    def exception(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self._scrubbed("error", msg, *args, **kwargs)

    def log(self, lvl: Any, msg: Any, *args: Any, **kwargs: Any) -> None:
        level = lvl if isinstance(lvl, str) else {50: "critical", 40: "error", 30: "warning",
                                                  20: "info"}.get(lvl, "debug")
        self._scrubbed(level.lower(), msg, *args, **kwargs)


logger_class = ScrubbingLogger
# An asynchronous worker: no worker is held by a connection until its request is whole
# (relay.serve.front).
worker_class = "relay.serve.front.RelayWorker"
accesslog = "-"
errorlog = "-"
# Proxy headers are never trusted or parsed: the relay has no use for a client address.
forwarded_allow_ips = ""
proxy_allow_ips = ""


def worker_exit(server: Any, worker: Any) -> None:
    """On SIGTERM, send what can be sent before gunicorn's graceful timeout runs out.

    No start hook: gunicorn loads the app in each worker after the fork, and Relay.init_app
    starts the forwarder there.
    """
    app = getattr(worker, "wsgi", None)
    app = getattr(app, "flask_app", app)  # behind the front (relay.serve.front.Front)
    relay = relay_of(app) if app is not None else None
    if relay is not None:
        relay.forwarder.stop(drain_seconds=max(0.0, server.cfg.graceful_timeout - 2.0))


# gunicorn 27's control socket sits at one fixed path per user: two relays would fight over it,
# and the relay needs no runtime control beyond signals.
control_socket_disable = True
