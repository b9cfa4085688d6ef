"""One POST of records, start to finish, and its answer: the endpoint's core, free of any framework.

ingest() takes the request's WSGI environ and returns an Answer (status, headers, JSON body)
for success and for every refusal alike, counting what it refuses. The Flask view,
the WSGI fast path and the MLflow plugin only send that answer on.

Checks run cheapest and most protective first: Origin, on/off, content type and encoding, size,
JSON, then per-record validation, the config's disabled componentIds and the rate limits
(relay.ingest.limits). Only the body and a few named headers (Origin, Host, Sec-GPC, DNT,
Content-Type, Content-Encoding, Content-Length) are ever read from a request, and none of them
is stored.
"""

from __future__ import annotations

import json
import time
import zlib
from collections import Counter
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from werkzeug.wsgi import get_content_length, get_host, get_input_stream

from ..store import counters as c
from .answer import DISABLED, Answer, internal_error
from .limits import Verdict, admit
from .validation import EnvelopeError, validate_batch

if TYPE_CHECKING:
    from ..serve.app import Relay

ACCEPTED_TYPES = ("application/json", "text/plain")
RETRY_AFTER_FULL = 60


class _Refused(Exception):
    """Raised inside ingest() and turned into its error Answer there, counted by `reason`."""

    def __init__(self, status: int, message: str, reason: str,
                 headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.answer = Answer.error(status, message, headers)
        self.reason = reason


def ingest(relay: Relay, environ: dict) -> Answer:
    """One POST of records, from its WSGI environ, to its answer. It never raises: a refusal
    and a fault of the relay's own are answers too, so no adapter handles either."""
    try:
        return _ingest(relay, environ)
    except _Refused as refused:
        try:
            relay.spool.count([(c.REQUESTS_REJECTED, refused.reason, 1)])
        except Exception as err:  # noqa: BLE001 - the refusal stands; the count is lost
            internal_error(err, "POST", relay.config.endpoint_path)
        return refused.answer
    except Exception as err:  # noqa: BLE001 - a fault of ours, answered in words
        return internal_error(err, "POST", relay.config.endpoint_path)


def _ingest(relay: Relay, environ: dict) -> Answer:
    cfg = relay.config
    _check_origin(cfg.cors_origins, environ.get("HTTP_ORIGIN"), environ)
    # The two headers the policy reads, straight from the environ (a tenth of the cost of
    # werkzeug's header view): Sec-GPC and DNT, nothing else of the request.
    decision = relay.policy.for_request({"Sec-GPC": environ.get("HTTP_SEC_GPC", ""),
                                         "DNT": environ.get("HTTP_DNT", "")})
    if not decision.enabled:
        relay.spool.count([(c.DISABLED, decision.source or "server", 1)])
        return DISABLED
    body = _parse(_read_body(environ, cfg.max_body_bytes))
    try:
        batch = validate_batch(body, cfg.max_records_per_request)
    except EnvelopeError as err:
        raise _Refused(400, str(err), "invalid_envelope") from None
    records, disabled = _enabled(batch.records, relay.remote.get().disabled_events)
    verdict = None
    if relay.limits.active and records:
        records, verdict = _admit(relay, records)
    texts = relay.codec.encode(records)
    counts = [(c.REJECTED, reason, 1) for reason in batch.rejected]
    if disabled:
        counts.append((c.DISABLED_EVENTS, "", disabled))
    if verdict is not None:
        counts += verdict.counts
    if not relay.spool.store(texts, counts, limit=cfg.spool_max_records):
        raise _Refused(503, "the relay's spool is full because the upstream is not taking "
                            "records; try again later", "spool_full",
                       (("Retry-After", str(RETRY_AFTER_FULL)),))
    if verdict is not None and verdict.limited:
        return _limited(verdict, len(texts), len(batch.rejected) + disabled)
    # jsonify's text, written directly: the two numbers are its only variable part.
    return Answer(200, b'{"status":"success","accepted":%d,"rejected":%d}\n'
                  % (len(texts), len(batch.rejected) + disabled))


def _enabled(records: list[dict], disabled_ids: list[str]) -> tuple[list[dict], int]:
    """The records whose componentId the config does not disable, and how many it does."""
    if not disabled_ids:
        return records, 0
    off = set(disabled_ids)
    kept = [r for r in records if r["params"]["componentId"] not in off]
    return kept, len(records) - len(kept)


def _admit(relay: Relay, records: list[dict]) -> tuple[list[dict], Verdict]:
    """The records the rate limits let in, in their order, and the verdict."""
    keys_of = relay.limits.keys
    record_keys = [keys_of(r["installation_id"], r["session_id"]) for r in records]
    demand = Counter(record_keys)
    now = time.time()
    verdict = relay.buckets.take({key for keys in demand for key in keys},
                                 lambda state: admit(demand, state, relay.limits, now))
    if not verdict.limited:
        return records, verdict
    room = dict(verdict.admitted)
    kept = []
    for record, keys in zip(records, record_keys, strict=True):
        if room[keys]:
            room[keys] -= 1
            kept.append(record)
    return kept, verdict


def _limited(verdict: Verdict, accepted: int, rejected: int) -> Answer:
    """429: some records were over a rate limit. The others are stored (and counted as
    accepted). A client sends the whole batch again after Retry-After; what was stored already
    is then a duplicate, which the forwarder sends once."""
    limits = ", ".join(f"{n} over the {name} limit" for name, n in sorted(verdict.limited.items()))
    return Answer.json(429, {
        "status": "error",
        "error": f"too many records: {accepted} stored, {limits}; send them again after "
                 f"{verdict.retry_after} s",
        "accepted": accepted, "rejected": rejected,
        "limited": sum(verdict.limited.values())}, (("Retry-After", str(verdict.retry_after)),))


# -- the request, step by step ----------------------------------------------------------------

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
    raise _Refused(403, "cross-site telemetry is refused: the page that sent this is not "
                        "served by this host and its origin is not listed in RELAY_CORS_ORIGINS",
                   "cross_origin")


def _too_large(max_bytes: int, what: str = "the body") -> _Refused:
    return _Refused(413, f"{what} is larger than {max_bytes // 1024} KiB; "
                         "send fewer records per request", "too_large")


def _read_body(environ: dict, max_bytes: int) -> bytes:
    """The body as sent, decoded when it has a Content-Encoding, at most max_bytes."""
    # The media type as werkzeug's request.mimetype gives it, at a tenth of the cost.
    mimetype = environ.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
    if mimetype not in ACCEPTED_TYPES:
        raise _Refused(415, "send the batch as application/json or text/plain (JSON text), "
                            f"not {mimetype or 'a body without a Content-Type'}",
                       "unsupported_media_type")
    encoding = environ.get("HTTP_CONTENT_ENCODING", "").strip().lower()
    if encoding not in ("", "identity", "gzip", "x-gzip", "deflate"):
        raise _Refused(415, "send the batch as it is, or with Content-Encoding gzip or "
                            f"deflate; the relay does not read {encoding[:40]!r}",
                       "unsupported_encoding")
    length = get_content_length(environ)
    if length is not None and length > max_bytes:
        raise _too_large(max_bytes)
    # Exactly Content-Length bytes, which every WSGI server allows reading directly: werkzeug's
    # guarded stream costs a third of parsing the JSON. Without a length (chunked), the stream.
    raw = (environ["wsgi.input"].read(length) if length is not None
           else get_input_stream(environ, max_content_length=None).read(max_bytes + 1))
    if len(raw) > max_bytes:
        raise _too_large(max_bytes)
    if encoding in ("gzip", "x-gzip"):
        return _decompress(raw, 16 + zlib.MAX_WBITS, "gzip", max_bytes)
    if encoding == "deflate":
        # HTTP's deflate is zlib-wrapped (RFC 9110), but some clients send it raw.
        wrapped = len(raw) >= 2 and raw[0] & 0x0F == 8 and (raw[0] << 8 | raw[1]) % 31 == 0
        return _decompress(raw, zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS, "deflate",
                           max_bytes)
    return raw


def _decompress(raw: bytes, wbits: int, name: str, max_bytes: int) -> bytes:
    # Never more than max_bytes + 1 out, however small the input: a zip bomb stops here.
    inflate = zlib.decompressobj(wbits)
    try:
        out = inflate.decompress(raw, max_bytes + 1)
    except zlib.error:
        raise _Refused(400, f"the body is not valid {name} data, as its Content-Encoding says",
                       "invalid_encoding") from None
    if len(out) > max_bytes:
        raise _too_large(max_bytes, "the body, decompressed,")
    if not inflate.eof:
        raise _Refused(400, f"the {name} body ends too early", "invalid_encoding")
    return out


def _parse(raw: bytes) -> object:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _Refused(400, "the body is not valid UTF-8 text", "invalid_encoding") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise _Refused(400, "the body is not usable JSON: it is nested too deeply",
                       "invalid_json") from None
    except ValueError as err:  # JSONDecodeError, and ints past Python's digit limit
        where = f" (line {err.lineno}, column {err.colno})" if hasattr(err, "lineno") else ""
        raise _Refused(400, f"the body is not valid JSON{where}", "invalid_json") from None
