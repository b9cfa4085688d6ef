"""The relay's Flask routes: the endpoint (GET its config, POST records), /health and /metrics.

Each view is a thin adapter: the POST hands the request's environ to the relay and sends its
Answer as it is.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from ..control.config import ENDPOINT
from ..forward.file import sink_file
from ..ingest.answer import Answer
from .extension import current_relay
from .metrics import render
from .pages import SECURITY_HEADERS

endpoint = Blueprint("ui_telemetry_endpoint", __name__)
admin = Blueprint("ui_telemetry_admin", __name__)


def response(answer: Answer) -> Response:
    """An Answer as a Flask response."""
    return Response(answer.body, answer.status, list(answer.headers),
                    mimetype="application/json")


@endpoint.get(ENDPOINT)
def get_config() -> Response:
    """The UI config in MLflow's shape, decided for this request."""
    r = current_relay()
    state = r.remote.get()
    decision = r.policy.for_request(request.headers)
    return jsonify(disable_ui_telemetry=not decision.enabled,
                   disable_ui_events=state.disabled_events,
                   ui_rollout_percentage=state.rollout_percentage)


@endpoint.post(ENDPOINT)
def post_records() -> Response:
    """A batch of records: validated, stored, answered."""
    return response(current_relay().answer(request.environ))


@admin.get("/health")
def health() -> Response:
    """ok when the spool can be read; says whether telemetry is on and the forwarder runs."""
    r = current_relay()
    r.spool.depth()  # proves the spool can be read
    return jsonify(status="ok", telemetry="on" if r.policy.server().enabled else "off",
                   forwarder="running" if r.forwarder.running else "stopped")


@admin.get("/metrics")
def metrics() -> Response:
    """Prometheus text: the counters of every worker, from the spool."""
    r = current_relay()
    return Response(render(r.spool, lambda: r.policy.server().enabled),
                    mimetype="text/plain; version=0.0.4")


# The usage dashboard, live. Its files link one another by relative names, as in the static
# site of `ui-telemetry report`: usage -> usage.css, usage.json, usage-<table>.csv. Its figures
# are those that are safe to publish (K, no ids), so it is as open as /health.
_USAGE_TYPES = {"css": "text/css", "json": "application/json", "csv": "text/csv"}


def _usage_answer(name: str) -> Response:
    from ..insight.site import load_and_count, render, stylesheet

    r = current_relay()
    if name == "usage.css":  # no figures needed
        text: str | None = stylesheet()
    else:
        _, figures = load_and_count(r.config.usage_path, sink_file(r.forwarder.upstream_url()),
                                    r.config.usage_min_installations)
        text = render(figures, "index.html" if name == "usage" else name,
                      title="Usage of this MLflow server")
    if text is None:
        return Response("no such usage file\n", 404, mimetype="text/plain")
    kind = _USAGE_TYPES.get(name.rpartition(".")[2], "text/html")
    resp = Response(text, mimetype=kind)
    # Inside MLflow our headers are not added to every answer: this page brings its own.
    for header, value in SECURITY_HEADERS:
        resp.headers.setdefault(header, value)
    resp.headers["Cache-Control"] = "no-store"
    return resp


@admin.get("/usage")
def usage_page() -> Response:
    """The usage dashboard of this relay's records."""
    return _usage_answer("usage")


@admin.get("/<any('usage.json', 'usage.css'):name>")
def usage_file(name: str) -> Response:
    return _usage_answer(name)


@admin.get("/usage-<table>.csv")
def usage_csv(table: str) -> Response:
    return _usage_answer(f"usage-{table}.csv")
