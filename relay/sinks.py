"""Where records go: an http(s) upstream in MLflow's ingestion format, a JSON-lines file, or a
NATS JetStream stream (relay.nats_sink).

A sink answers every send with an Outcome; it never raises for an upstream's failure. The
upstream request is built from nothing but the records: no header of any browser request exists
at this layer to leak.
"""

from __future__ import annotations

import email.utils
import http.client
import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from .data import package_version

RETRYABLE_STATUSES = {408, 429}
STOP_STATUSES = {400, 401, 403, 404}  # MLflow's rule: stop until the config is refreshed


@dataclass(frozen=True)
class Outcome:
    ok: bool
    # "retry": try again later; "stop": pause until the config is refreshed; "drop": give up
    # on this batch (an answer that no retry can change).
    action: str = "done"
    kind: str = ""  # metric label: http_500, timeout, refused, ...
    detail: str = ""
    retry_after: float | None = None


DONE = Outcome(True)


class Sink(Protocol):
    url: str
    batch_size: int  # the most records one send() carries

    def send(self, data_lines: list[str], event_ids: list[str]) -> Outcome:
        """Deliver the DATA lines (event_ids: each line's, in order)."""

    def check(self) -> str | None:
        """A problem with this upstream, in words, that `ui-telemetry status` reports."""


class FileSink:
    """file:///path.jsonl: one DATA object a line, fsynced before the spool forgets it."""

    batch_size = 500

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = file_url_path(url)

    def send(self, data_lines: list[str], event_ids: list[str]) -> Outcome:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write("\n".join(data_lines) + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as err:
            return Outcome(False, "retry", "file_error", f"cannot write {self.path}: "
                           f"{err.strerror or err}")
        return DONE

    def check(self) -> str | None:
        directory = self.path.parent
        if directory.exists() and not os.access(directory, os.W_OK):
            return f"cannot write to {directory}"
        return None


def file_url_path(url: str) -> Path:
    return Path(unquote(urlsplit(url).path))


def parse_retry_after(value: str | None) -> float | None:
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


class HttpSink:
    """http(s)://: POST {"records": [{"data": DATA, "partition-key": <32 hex>}]}."""

    batch_size = 500  # MLflow's: its ingestion takes at most this many records a request

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        parts = urlsplit(url)
        self._https = parts.scheme.lower() == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.user_agent = f"ui-telemetry-relay/{package_version()}"

    def body(self, data_lines: list[str]) -> bytes:
        # DATA is already JSON in the spool: splice it in rather than parse and re-dump.
        items = ",".join(f'{{"data":{line},"partition-key":"{uuid.uuid4().hex}"}}'
                         for line in data_lines)
        return f'{{"records":[{items}]}}'.encode()

    def send(self, data_lines: list[str], event_ids: list[str]) -> Outcome:
        body = self.body(data_lines)
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        conn = cls(self._host, self._port, timeout=self.timeout)
        try:
            # http.client adds Host and Accept-Encoding; everything else is named here.
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
            return Outcome(False, "retry", "timeout", f"no answer within {self.timeout:g} s")
        except ConnectionRefusedError:
            return Outcome(False, "retry", "refused", "connection refused")
        except (OSError, http.client.HTTPException) as err:
            kind = "dns" if isinstance(err, socket.gaierror) else "network"
            return Outcome(False, "retry", kind, f"{type(err).__name__}: {err}")
        finally:
            conn.close()
        if 200 <= status < 300:
            return DONE
        detail = f"upstream answered HTTP {status}"
        if status in STOP_STATUSES:
            return Outcome(False, "stop", f"http_{status}", detail)
        if status in RETRYABLE_STATUSES or status >= 500:
            return Outcome(False, "retry", f"http_{status}", detail, retry_after)
        if status < 400:  # a redirect: the URL is wrong, as with a 404
            return Outcome(False, "stop", f"http_{status}", detail)
        return Outcome(False, "drop", f"http_{status}", detail)


    def check(self) -> str | None:
        return None  # not probed: a request would be a delivery


def make_sink(url: str, timeout: float) -> Sink:
    scheme = url.split("://", 1)[0].lower()
    if scheme == "file":
        return FileSink(url)
    if scheme == "nats":
        from .nats_sink import NatsSink

        return NatsSink(url, timeout)
    return HttpSink(url, timeout)

