"""The app factory and the extension object that holds the relay's parts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, Response, request
from flask_cors import CORS
from werkzeug.exceptions import HTTPException

from . import api, pages
from .codec import Codec
from .config import Config, load_config
from .data import ServerInfo
from .forwarder import Forwarder
from .ingest import Answer, internal_error
from .policy import Policy
from .remote_config import RemoteConfig
from .shortcut import IngestShortcut
from .spool import Spool


class Relay:
    """Everything the relay owns, kept on app.extensions["ui_telemetry"]: no module globals.

    Built without an app as well, by `ui-telemetry status` and `inspect`, so that they decide
    and look up exactly as the server does.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        # The relay's before_request hook (set by init_app), which relay.shortcut also runs
        # for the POSTs it answers without Flask.
        self.on_request: Callable[[], None] = lambda: None
        self.spool = Spool(config.spool_path)
        self.codec = Codec(ServerInfo.load(config.data_dir))
        self.remote = RemoteConfig(config)
        self.policy = Policy(self.remote)
        self.forwarder = Forwarder(self.spool, config, self.remote, self.codec, self.policy)

    def init_app(self, app: Flask, *, ui: bool = True) -> None:
        """Install the endpoint, the page-config helper and the CSP; `ui` adds our own pages
        (an app with pages of its own, such as `mlflow server`, passes ui=False)."""
        app.extensions["ui_telemetry"] = self
        prefix = self.config.static_prefix
        app.register_blueprint(api.bp, url_prefix=prefix or None)
        pages.init_app(app, self, ui=ui)
        if self.config.cors_origins:
            CORS(app, origins=list(self.config.cors_origins), methods=["GET", "POST"],
                 resources={self.config.endpoint_path: {}}, allow_headers=["Content-Type"],
                 supports_credentials=False)

        @app.before_request
        def _start_forwarder() -> None:
            # Outside gunicorn (flask run, an embedding app) nothing else starts it; in
            # gunicorn post_worker_init already did, and this is a cheap no-op.
            if app.config.get("UI_TELEMETRY_FORWARDER", True):
                self.forwarder.start()

        self.on_request = _start_forwarder


def _json_errors(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException) -> Any:
        if pages.wants_html():
            return pages.error_page(err.code or 500, err.description or "")
        headers = ()
        if err.code == 405 and err.valid_methods:  # type: ignore[attr-defined]
            headers = (("Allow", ", ".join(err.valid_methods)),)  # type: ignore[attr-defined]
        return api.response(Answer.error(err.code or 500, _plain(err), headers))

    @app.errorhandler(Exception)
    def _unexpected(err: Exception) -> Response:
        return api.response(internal_error(err, request.method, request.path))


def _plain(err: HTTPException) -> str:
    return {
        404: "there is nothing at this address",
        405: f"this address does not accept {request.method}",
        413: "the body is too large",
    }.get(err.code or 0, err.description or (err.name or "error").lower())


def create_app(config: Config | None = None, *, start_forwarder: bool = True,
               **overrides: Any) -> Flask:
    """Build the served UI and the relay. `overrides` replace single Config fields (tests)."""
    config = config or load_config(**overrides)
    app = Flask(__name__, template_folder=pages.TEMPLATE_DIR, static_folder=None)
    app.config["UI_TELEMETRY_FORWARDER"] = start_forwarder
    app.json.sort_keys = False  # type: ignore[attr-defined]
    relay = Relay(config)
    relay.init_app(app)
    _json_errors(app)
    # Our own app has no other before_request hooks to get past (see relay.shortcut).
    app.wsgi_app = IngestShortcut(app.wsgi_app, relay,  # type: ignore[method-assign]
                                  relay.on_request)
    return app
