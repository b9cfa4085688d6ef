"""The relay's Flask routes: the endpoint (GET its config, POST records), /health and /metrics.

Each view is a thin adapter: the POST hands the request's environ to the relay and sends its
Answer as it is.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from ..control.config import ENDPOINT
from ..ingest.answer import Answer
from .extension import current_relay
from .metrics import render

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
