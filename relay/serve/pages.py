"""The served UI: pages, static files, the page-config helper and the Content-Security-Policy.

`ui_telemetry_config()` is a Jinja global, so any Flask app that installs the relay (the real
`mlflow server` included) can embed the config block in its own templates.
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    render_template,
    request,
    send_from_directory,
)
from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup

from ..ingest.schema import COMPONENT_TYPES, EVENT_TYPES, describe
from ..store.data import DATA_FIELDS
from .demo import EXPERIMENTS, MODELS, PROMPTS, RUNS, TABS
from .extension import current_relay

if TYPE_CHECKING:
    from .app import Relay

_PACKAGE = Path(__file__).resolve().parent.parent


def _shipped(name: str) -> str:
    """Inside a wheel, templates/ and static/ are package data of `relay`; in a checkout they
    sit at the top of the repository, beside it."""
    inside = _PACKAGE / name
    return str(inside if inside.is_dir() else _PACKAGE.parent / name)


TEMPLATE_DIR = _shipped("templates")
STATIC_DIR = _shipped("static")

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
       "frame-ancestors 'none'")
SECURITY_HEADERS = (("Content-Security-Policy", CSP), ("X-Content-Type-Options", "nosniff"),
                    ("Referrer-Policy", "no-referrer"))

bp = Blueprint("ui_telemetry_pages", __name__)


def page_config() -> dict[str, Any]:
    """What the browser module needs, decided for this request."""
    r = current_relay()
    state = r.remote.get()
    decision = r.policy.for_request(request.headers)
    endpoint = r.config.endpoint_path
    # Relative to the page, so the module still finds the relay behind a sub-path proxy.
    base = request.path if request.path.endswith("/") else posixpath.dirname(request.path)
    relative = posixpath.relpath(endpoint, base or "/")
    return {
        "disabled": not decision.enabled,
        "reason": decision.reason,
        "endpoint": relative,
        "rolloutPercentage": state.rollout_percentage,
        "disabledEvents": state.disabled_events,
        "flushIntervalMs": r.config.ui_flush_interval_ms,
    }


def ui_telemetry_config() -> Markup:
    """The page config as an inert JSON block: data, never executable script."""
    # htmlsafe: "<", ">", "&" and "'" are \u-escaped, so no value can close the tag.
    payload = htmlsafe_json_dumps(page_config())
    tag = f'<script type="application/json" id="ui-telemetry-config">{payload}</script>'
    return Markup(tag)  # noqa: S704 - payload is htmlsafe JSON


def wants_html() -> bool:
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html" and "/ajax-api/" not in request.path


def error_page(status: int, message: str) -> tuple[str, int]:
    return render_template("error.html", status=status, message=message), status


def _render(template: str, **context: Any) -> str:
    return render_template(template, active=template.removesuffix(".html"), **context)




@bp.get("/")
def home() -> str:
    return _render("home.html", experiments=EXPERIMENTS)


@bp.get("/experiments")
def experiments() -> str:
    return _render("experiments.html", experiments=EXPERIMENTS)


@bp.get("/experiments/<experiment_id>")
def experiment(experiment_id: str) -> str:
    found = next((e for e in EXPERIMENTS if e["id"] == experiment_id), None)
    if found is None:
        abort(404, "there is no such experiment")
    return render_template("experiment.html", active="experiments", experiment=found,
                           runs=RUNS, tabs=TABS)


@bp.get("/models")
def models() -> str:
    return _render("models.html", models=MODELS)


@bp.get("/prompts")
def prompts() -> str:
    return _render("prompts.html", prompts=PROMPTS)


@bp.get("/settings")
def settings() -> str:
    return _render("settings.html")


@bp.get("/usage-tracking")
def usage() -> str:
    return _render("usage.html", fields=list(describe()), component_types=COMPONENT_TYPES,
                   event_types=EVENT_TYPES, upstream_fields=DATA_FIELDS)


@bp.get("/static/<path:filename>")
def static(filename: str) -> Response:
    if not filename.startswith(("js/", "css/", "img/")):
        abort(404)
    return send_from_directory(STATIC_DIR, filename, max_age=300)


def init_app(app: Flask, relay: Relay, *, ui: bool, security_headers: bool) -> None:
    """The page-config helper always; our pages and the security headers when asked."""
    if ui:
        app.register_blueprint(bp, url_prefix=relay.config.static_prefix or None)
    app.add_template_global(ui_telemetry_config)
    app.add_template_global(lambda: relay.config.static_prefix, "static_prefix")
    if not security_headers:
        return

    @app.after_request
    def _headers(resp: Response) -> Response:
        # A response with a policy of its own (an embedding app's) keeps it whole. One check
        # and one extend: three setdefault calls cost a tenth of an ingest POST.
        if "Content-Security-Policy" not in resp.headers:
            resp.headers.extend(SECURITY_HEADERS)
        return resp
