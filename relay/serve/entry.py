"""The relay's WSGI entry: keeps the forwarder running, and may answer endpoint POSTs itself.

Flask's request machinery (the request context, URL matching, hooks, the Response object) costs
a fifth of all the relay's work on an ingest POST (figures in docs/throughput.md). With a fast
path, this layer answers every POST to the endpoint with the relay's Answer plus the headers
every response of the app carries; everything else goes to Flask.

Relay.init_app() gives it a fast path only when asked (`shortcut`, which create_app() sets):
an app that embeds the relay (mlflow server) may guard its routes with hooks (authentication)
that a request must not get past.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from .pages import SECURITY_HEADERS

if TYPE_CHECKING:
    from .app import Relay

WSGIApp = Callable[[dict, Callable[..., Any]], Iterable[bytes]]
_STATUS_LINES = {s.value: f"{s.value} {s.phrase}" for s in HTTPStatus}


class Entry:
    """Wraps app.wsgi_app."""

    def __init__(self, app: WSGIApp, relay: Relay, fast_path: str | None) -> None:
        self.app = app  # Flask's wsgi_app
        self.relay = relay
        self.fast_path = fast_path  # the endpoint's path, or None: Flask answers everything

    def __call__(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        self.relay.keep_forwarding()
        if environ.get("REQUEST_METHOD") != "POST" or environ.get("PATH_INFO") != self.fast_path:
            return self.app(environ, start_response)
        answer = self.relay.answer(environ)
        start_response(_STATUS_LINES[answer.status], [
            ("Content-Type", "application/json"), ("Content-Length", str(len(answer.body))),
            *answer.headers, *SECURITY_HEADERS])
        return [answer.body]
