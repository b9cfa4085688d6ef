"""http(s)://: MLflow's ingestion format, POST {"records": [{"data": DATA, "partition-key": ...}]}.

The request is built from nothing but the records: its only headers are the ones named in
send() and the two http.client adds (Host, Accept-Encoding: identity).
"""

from __future__ import annotations

import email.utils
import http.client
import socket
import time
import uuid
from collections.abc import Sequence
from urllib.parse import urlsplit

from ..store.codec import StoredRecord
from ..store.data import user_agent
from .base import DONE, Outcome, Sink

RETRYABLE_STATUSES = {408, 429}
STOP_STATUSES = {400, 401, 403, 404}  # MLflow's rule: stop until the config is refreshed


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class HttpSink(Sink):
    """One POST a batch; the answer's status decides the Outcome."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        parts = urlsplit(url)
        self._https = parts.scheme.lower() == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.user_agent = user_agent()

    @staticmethod
    def body(records: Sequence[StoredRecord]) -> bytes:
        """The request body. Each DATA line is JSON already: spliced in, not parsed again."""
        items = ",".join(f'{{"data":{r.data},"partition-key":"{uuid.uuid4().hex}"}}'
                         for r in records)
        return f'{{"records":[{items}]}}'.encode()

    def send(self, records: Sequence[StoredRecord]) -> Outcome:
        body = self.body(records)
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        conn = cls(self._host, self._port, timeout=self.timeout)
        try:
            conn.request("POST", self._target, body=body, headers={
                "Content-Type": "application/json",
                "User-Agent": self.user_agent,
                "Accept": "application/json",
                "Connection": "close",
            })
            resp = conn.getresponse()
            resp.read(64 * 1024)
            status = resp.status
            retry_after = parse_retry_after(resp.getheader("Retry-After"))
        except TimeoutError:
            return Outcome.retry("timeout", f"no answer within {self.timeout:g} s")
        except ConnectionRefusedError:
            return Outcome.retry("refused", "connection refused")
        except (OSError, http.client.HTTPException) as err:
            kind = "dns" if isinstance(err, socket.gaierror) else "network"
            return Outcome.retry(kind, f"{type(err).__name__}: {err}")
        finally:
            conn.close()
        return outcome_of(status, retry_after)


def outcome_of(status: int, retry_after: float | None = None) -> Outcome:
    """What an upstream's HTTP status means for the batch."""
    if 200 <= status < 300:
        return DONE
    kind, detail = f"http_{status}", f"upstream answered HTTP {status}"
    if status in STOP_STATUSES or status < 400:  # a redirect: the URL is wrong, as with a 404
        return Outcome.stop(kind, detail)
    if status in RETRYABLE_STATUSES or status >= 500:
        return Outcome.retry(kind, detail, retry_after)
    return Outcome.drop(kind, detail)
