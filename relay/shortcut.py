"""The usual ingest POST, answered before Flask's request machinery; anything else goes to Flask.

Flask's request machinery (the request context, URL matching, hooks, the Response object) cost
0.18 ms of server CPU a POST in the throughput benchmark, 0.86 against 0.68 ms: a fifth of all
the relay's work, and more than its validation. This WSGI layer, which create_app() puts in front of
the app for `ui-telemetry serve`, runs the very same api.ingest() for a POST to the endpoint
with a Content-Length within the limit (unless CORS origins are set), adds the headers every
response of the app carries, and answers. Whatever else, and any POST that ingest() answers
with an error, goes to Flask, which answers it as if the shortcut were not there (the body is
kept for it to read again).

Not installed by Relay.init_app(): an app that embeds the relay (mlflow server) may guard its
routes with before_request hooks (authentication) that a request must not get past.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from werkzeug.wsgi import get_content_length

from .api import ENDPOINT, ingest
from .pages import SECURITY_HEADERS

if TYPE_CHECKING:
    from .app import Relay

WSGIApp = Callable[[dict, Callable[..., Any]], Iterable[bytes]]


class IngestShortcut:
    def __init__(self, app: WSGIApp, relay: Relay, on_request: Callable[[], None]) -> None:
        self.app = app  # Flask's wsgi_app
        self.relay = relay
        self.on_request = on_request  # what the app's before_request hooks of the relay do
        # With CORS origins set, flask-cors adds its headers to every answer (even without an
        # Origin header, its always_send): then the endpoint is Flask's alone.
        self.path = None if relay.config.cors_origins else \
            f"{relay.config.static_prefix}{ENDPOINT}"

    def __call__(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST" or environ.get("PATH_INFO") != self.path:
            return self.app(environ, start_response)
        length = get_content_length(environ)
        if length is None or length > self.relay.config.max_body_bytes:
            return self.app(environ, start_response)  # chunked, or a 413 to word
        body = io.BytesIO(environ["wsgi.input"].read(length))
        environ["wsgi.input"] = body
        try:
            self.on_request()
            answer = ingest(self.relay, environ, body.read).encode()
        except Exception:  # noqa: BLE001 - an error to word, or a fault: Flask answers it
            body.seek(0)
            return self.app(environ, start_response)
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(answer))), *SECURITY_HEADERS])
        return [answer]
