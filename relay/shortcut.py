"""The ingest POST answered before Flask's request machinery, with the same ingest() answer.

Flask's request machinery (the request context, URL matching, hooks, the Response object) costs
a fifth of all the relay's work on an ingest POST (figures in docs/throughput.md). This WSGI
layer, which create_app() puts in front of the app for `ui-telemetry serve`, answers every POST
to the endpoint with relay.ingest's Answer plus the headers every response of the app carries;
everything else goes to Flask.

It is installed only by create_app(), whose app has no before_request hooks but the relay's own,
which it runs too. Relay.init_app() never installs it: an app that embeds the relay (mlflow
server) may guard its routes with hooks (authentication) that a request must not get past.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from .ingest import ingest, internal_error
from .pages import SECURITY_HEADERS

if TYPE_CHECKING:
    from .app import Relay

WSGIApp = Callable[[dict, Callable[..., Any]], Iterable[bytes]]
_STATUS_LINES = {s.value: f"{s.value} {s.phrase}" for s in HTTPStatus}


class IngestShortcut:
    def __init__(self, app: WSGIApp, relay: Relay, on_request: Callable[[], None]) -> None:
        self.app = app  # Flask's wsgi_app
        self.relay = relay
        self.on_request = on_request  # what the relay's before_request hook does
        # With CORS origins set, flask-cors adds its headers to every answer (even without an
        # Origin header, its always_send): then the endpoint is Flask's alone.
        self.path = None if relay.config.cors_origins else relay.config.endpoint_path

    def __call__(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST" or environ.get("PATH_INFO") != self.path:
            return self.app(environ, start_response)
        try:
            self.on_request()
            answer = ingest(self.relay, environ)
        except Exception as err:  # noqa: BLE001 - a fault of ours, answered as Flask would
            answer = internal_error(err, "POST", environ["PATH_INFO"])
        start_response(_STATUS_LINES[answer.status], [
            ("Content-Type", "application/json"), ("Content-Length", str(len(answer.body))),
            *answer.headers, *SECURITY_HEADERS])
        return [answer.body]

