"""The relay's Flask routes: the endpoint (GET its config, POST records), /health and /metrics.

Each view is a thin adapter: the POST hands the request's environ to relay.ingest and sends its
Answer as it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Blueprint, Response, current_app, jsonify, request

from .config import ENDPOINT
from .ingest import Answer, ingest
from .metrics import render

if TYPE_CHECKING:
    from .app import Relay

bp = Blueprint("ui_telemetry_api", __name__)


def relay() -> Relay:
    return current_app.extensions["ui_telemetry"]


def response(answer: Answer) -> Response:
    return Response(answer.body, answer.status, list(answer.headers),
                    mimetype="application/json")


@bp.get(ENDPOINT)
def get_config() -> Response:
    r = relay()
    state = r.remote.get()
    decision = r.policy.for_request(request.headers)
    return jsonify(disable_ui_telemetry=not decision.enabled,
                   disable_ui_events=state.disabled_events,
                   ui_rollout_percentage=state.rollout_percentage)


@bp.post(ENDPOINT)
def post_records() -> Response:
    return response(ingest(relay(), request.environ))


@bp.get("/health")
def health() -> Response:
    r = relay()
    r.spool.depth()  # proves the spool can be read
    return jsonify(status="ok", telemetry="on" if r.policy.server().enabled else "off")


@bp.get("/metrics")
def metrics() -> Response:
    r = relay()
    return Response(render(r.spool, lambda: r.policy.server().enabled),
                    mimetype="text/plain; version=0.0.4")
