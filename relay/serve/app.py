"""The relay as a Flask extension, and the app factory of `ui-telemetry serve`.

Relay.init_app() is the only place a Flask app is wired: our own app (create_app) and MLflow's
(relay.mlflow.plugin) differ only in the options they pass.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any

from flask import Flask, Response, request
from flask_cors import CORS
from werkzeug.exceptions import HTTPException

from ..control.config import Config, load_config
from ..control.policy import Policy
from ..control.remote_config import RemoteConfig
from ..forward.forwarder import Forwarder
from ..ingest.answer import Answer, internal_error
from ..ingest.endpoint import ingest
from ..ingest.limits import Bucket, Limits
from ..store.buckets import SharedBuckets
from ..store.codec import Codec
from ..store.data import ServerInfo
from ..store.spool import Spool
from . import pages, routes
from .entry import Entry
from .extension import EXTENSION

AnswerFilter = Callable[[Answer], Answer]


class Relay:
    """Everything the relay owns, kept on app.extensions: no module globals.

    Built without an app as well, by `ui-telemetry status` and `inspect`, so that they decide
    and look up exactly as the server does.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.spool = Spool(config.spool_path)
        self.codec = Codec(ServerInfo.load(config.data_dir))
        self.remote = RemoteConfig(config)
        self.policy = Policy(self.remote)
        self.forwarder = Forwarder(self.spool, config, self.remote, self.codec, self.policy)
        self.limits = Limits(Bucket(*config.rate_limit) if config.rate_limit else None,
                             Bucket(*config.max_records_per_s) if config.max_records_per_s
                             else None)
        self.answer_filter: AnswerFilter | None = None
        self._forward = False

    @cached_property
    def buckets(self) -> SharedBuckets:
        """The rate limits' shared buckets, mapped on the first POST that needs them: `status`,
        `inspect` and `report` build a Relay too, and have no use for them."""
        return SharedBuckets(self.config.data_dir / "buckets.bin")

    def init_app(self, app: Flask, *, ui: bool = True, security_headers: bool = True,
                 shortcut: bool = False, forward: bool = True,
                 endpoint_views: tuple[str, str] | None = None, admin_prefix: str = "",
                 answer_filter: AnswerFilter | None = None) -> None:
        """Install the relay on `app`.

        ui: our pages and error pages (an app with pages of its own passes False).
        security_headers: our Content-Security-Policy on every answer that has none.
        shortcut: answer endpoint POSTs in front of Flask (only for an app whose
            before_request hooks are the relay's: an embedding app may guard its routes).
        forward: run the forwarder in this process (tests turn it off).
        endpoint_views: take over these two existing views (GET and POST) instead of adding
            the endpoint: MLflow's, whose URL rules already match the path.
        admin_prefix: where /health and /metrics go, under the static prefix.
        answer_filter: rewrites every endpoint answer (MLflow's worker retries non-2xx).
        """
        app.extensions[EXTENSION] = self
        self.answer_filter = answer_filter
        self._forward = forward
        prefix = self.config.static_prefix
        if endpoint_views is None:
            app.register_blueprint(routes.endpoint, url_prefix=prefix or None)
        else:
            get_view, post_view = endpoint_views
            app.view_functions[get_view] = routes.get_config
            app.view_functions[post_view] = routes.post_records
        app.register_blueprint(routes.admin, url_prefix=f"{prefix}{admin_prefix}" or None)
        pages.init_app(app, self, ui=ui, security_headers=security_headers)
        if ui:
            _json_errors(app)
        if self.config.cors_origins and endpoint_views is None:
            # Only for our own endpoint: an app whose views we take over (MLflow) answers
            # CORS for its routes itself.
            CORS(app, origins=list(self.config.cors_origins), methods=["GET", "POST"],
                 resources={self.config.endpoint_path: {}}, allow_headers=["Content-Type"],
                 supports_credentials=False)
        # With CORS origins set, flask-cors adds its headers to every answer: then the
        # endpoint is Flask's alone.
        fast_path = self.config.endpoint_path if shortcut and not self.config.cors_origins \
            else None
        app.wsgi_app = Entry(app.wsgi_app, self, fast_path)  # type: ignore[method-assign]
        self.keep_forwarding()

    def keep_forwarding(self) -> None:
        """Start the forwarder in this process, or again after a fork (a thread does not
        survive one); a cheap no-op while it runs. The only place it is started."""
        if self._forward:
            self.forwarder.start()

    def answer(self, environ: dict) -> Answer:
        """An endpoint POST's answer, as this app's clients must get it."""
        answer = ingest(self, environ)
        return self.answer_filter(answer) if self.answer_filter else answer


def _json_errors(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException) -> Any:
        if pages.wants_html():
            return pages.error_page(err.code or 500, err.description or "")
        headers = ()
        if err.code == 405 and err.valid_methods:  # type: ignore[attr-defined]
            headers = (("Allow", ", ".join(err.valid_methods)),)  # type: ignore[attr-defined]
        return routes.response(Answer.error(err.code or 500, _plain(err), headers))

    @app.errorhandler(Exception)
    def _unexpected(err: Exception) -> Response:
        # Pages, /health and /metrics; the endpoint's ingest() answers its own faults.
        return routes.response(internal_error(err, request.method, request.path))


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
    app.json.sort_keys = False  # type: ignore[attr-defined]
    Relay(config).init_app(app, shortcut=True, forward=start_forwarder)
    return app
