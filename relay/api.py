"""The endpoint the browser posts to, plus /health and /metrics.

Checks run cheapest and most protective first: Origin, on/off, content type, size, JSON, then
per-record validation. Only the body and a few named headers (Origin, Host, Sec-GPC, DNT,
Content-Type, Content-Length) are ever read from a request, and none of them is stored.

ingest() is the POST, written against the WSGI environ alone, so that the Flask view below and
relay.shortcut (which answers the usual POST before Flask's request machinery) run the same code.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.datastructures import EnvironHeaders
from werkzeug.wsgi import get_content_length, get_host

from .metrics import render
from .policy import first_off, request_decision
from .validation import EnvelopeError, validate_batch

if TYPE_CHECKING:
    from .app import Relay

ENDPOINT = "/ajax-api/3.0/mlflow/ui-telemetry"
ACCEPTED_TYPES = ("application/json", "text/plain")
RETRY_AFTER_FULL = 60
DISABLED = '{"status":"disabled"}\n'  # what jsonify(status="disabled") writes

bp = Blueprint("ui_telemetry_api", __name__)


class ApiError(Exception):
    def __init__(self, status: int, message: str, reason: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason
        self.headers = headers or {}


def relay() -> Relay:
    return current_app.extensions["ui_telemetry"]


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    resp = jsonify(status="error", error=message)
    resp.status_code = status
    resp.headers.update(headers or {})
    return resp


@bp.errorhandler(ApiError)
def _api_error(err: ApiError) -> Response:
    relay().spool.count([("requests_rejected", err.reason, 1)])
    return error_response(err.status, err.message, err.headers)


def _netloc(scheme: str, host: str) -> str:
    host = host.lower()
    default = {"http": ":80", "https": ":443"}.get(scheme, "")
    return host.removesuffix(default) if default else host


def _check_origin(allowed: tuple[str, ...], origin: str | None, environ: dict) -> None:
    if origin is None:
        return  # not a browser's cross-site request (curl, a server, a same-origin beacon)
    if origin.rstrip("/") in allowed:
        return
    parts = urlsplit(origin)
    scheme = parts.scheme.lower()
    if parts.netloc and _netloc(scheme, parts.netloc) == _netloc(scheme, get_host(environ)):
        return
    raise ApiError(403, "cross-site telemetry is refused: the page that sent this is not served "
                        "by this host and its origin is not listed in RELAY_CORS_ORIGINS",
                   "cross_origin")


def _too_large(max_bytes: int) -> ApiError:
    return ApiError(413, f"the body is larger than {max_bytes // 1024} KiB; "
                         "send fewer records per request", "too_large")


def _read_body(environ: dict, max_bytes: int, read_stream: Callable[[int], bytes]) -> Any:
    # The media type as werkzeug's request.mimetype gives it, at a tenth of the cost.
    mimetype = environ.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
    if mimetype not in ACCEPTED_TYPES:
        raise ApiError(415, "send the batch as application/json or text/plain (JSON text), "
                            f"not {mimetype or 'a body without a Content-Type'}",
                       "unsupported_media_type")
    length = get_content_length(environ)
    if length is not None and length > max_bytes:
        raise _too_large(max_bytes)
    # Exactly Content-Length bytes, which every WSGI server allows reading directly: werkzeug's
    # guarded stream costs a third of parsing the JSON. Without a length (chunked), the stream.
    raw = (environ["wsgi.input"].read(length) if length is not None
           else read_stream(max_bytes + 1))
    if len(raw) > max_bytes:
        raise _too_large(max_bytes)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "the body is not valid UTF-8 text", "invalid_encoding") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise ApiError(400, "the body is not usable JSON: it is nested too deeply",
                       "invalid_json") from None
    except ValueError as err:  # JSONDecodeError, and ints past Python's digit limit
        where = f" (line {err.lineno}, column {err.colno})" if hasattr(err, "lineno") else ""
        raise ApiError(400, f"the body is not valid JSON{where}", "invalid_json") from None


@bp.get(ENDPOINT)
def get_config() -> Response:
    r = relay()
    state = r.remote.get()
    decision = first_off(r.server_decision(), request_decision(request.headers))
    return jsonify(disable_ui_telemetry=not decision.enabled,
                   disable_ui_events=state.disabled_events,
                   ui_rollout_percentage=state.rollout_percentage)


def ingest(r: Relay, environ: dict, read_stream: Callable[[int], bytes]) -> str:
    """One POST of records, from its WSGI environ: the JSON text of the 200 answer, or ApiError.

    `read_stream` reads a body sent without a Content-Length (chunked), at most n bytes.
    """
    cfg = r.config
    headers = EnvironHeaders(environ)  # what Flask's request.headers is
    _check_origin(cfg.cors_origins, headers.get("Origin"), environ)
    decision = first_off(r.server_decision(), request_decision(headers))
    if not decision.enabled:
        r.spool.count([("disabled", decision.source or "server", 1)])
        return DISABLED
    body = _read_body(environ, cfg.max_body_bytes, read_stream)
    try:
        batch = validate_batch(body, cfg.max_records_per_request)
    except EnvelopeError as err:
        raise ApiError(400, str(err), "invalid_envelope") from None
    encode = r.data_encoder.stored
    texts = []
    for record, text in zip(batch.records, batch.stored, strict=True):
        if text is None:  # not the common shape, whose check already wrote it
            # Relay-assigned when the browser gave none; stored, so every retry reuses it.
            record["event_id"] = record["event_id"] or str(uuid.uuid4())
            text = encode(record)
        texts.append(text)
    if not r.spool.store(texts, [("rejected", reason, 1) for reason in batch.rejected],
                         limit=cfg.spool_max_records):
        raise ApiError(503, "the relay's spool is full because the upstream is not taking "
                            "records; try again later", "spool_full",
                       {"Retry-After": str(RETRY_AFTER_FULL)})
    # jsonify's output, without its cost: the numbers are the only variable part.
    return f'{{"status":"success","accepted":{len(texts)},"rejected":{len(batch.rejected)}}}\n'


@bp.post(ENDPOINT)
def post_records() -> Response:
    return Response(ingest(relay(), request.environ, request.stream.read),
                    mimetype="application/json")


@bp.get("/health")
def health() -> Response:
    r = relay()
    r.spool.depth()  # proves the spool can be read
    return jsonify(status="ok", telemetry="on" if r.server_decision().enabled else "off")


@bp.get("/metrics")
def metrics() -> Response:
    r = relay()
    return Response(render(r.spool, lambda: r.server_decision().enabled),
                    mimetype="text/plain; version=0.0.4")
