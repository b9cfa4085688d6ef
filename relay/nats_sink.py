"""nats://HOST:PORT[,HOST:PORT...]/SUBJECT: each record one JetStream message, acknowledged.

Each DATA line is published as one message on SUBJECT with the header `Nats-Msg-Id: <event_id>`,
so the stream's duplicate window removes the repeats that at-least-once delivery allows. A batch
counts as sent only when JetStream acknowledged every message of it (its PubAck); until then the
forwarder keeps the batch in the spool and retries it, and the messages that did get in are
dropped as duplicates by the stream.

nats-py is asyncio: the sink runs its own event loop in a thread of its own, and the forwarder's
thread waits for each batch there. Publishing is asynchronous, with at most MAX_PENDING
acknowledgements outstanding. The client knows every listed server and reconnects across them.
nats-py is imported only when a nats:// URL is used: `ui-telemetry serve` needs no NATS otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any
from urllib.parse import unquote, urlsplit

from .sinks import DONE, Outcome

MAX_PENDING = 1000  # acknowledgements outstanding at once
# One send() carries up to this many records: more than MAX_PENDING, so that publishing goes on
# while the first acknowledgements come back, rather than stopping to wait for each batch.
BATCH_SIZE = 5000
log = logging.getLogger("relay")


def parse_nats_url(url: str) -> tuple[list[str], str]:
    """(server URLs, subject) of nats://h1:p1,h2:p2/SUBJECT; ValueError in words when wrong."""
    parts = urlsplit(url)
    subject = unquote(parts.path.lstrip("/"))
    hosts = [h.strip() for h in parts.netloc.split(",") if h.strip()]
    if parts.scheme.lower() != "nats" or not hosts or not subject or " " in subject \
            or "/" in subject or any(c in subject for c in "*>"):
        raise ValueError(f"{url!r} is not nats://HOST:PORT[,HOST:PORT...]/SUBJECT with one "
                         "plain subject (no spaces, wildcards or slashes)")
    return [f"nats://{h}" for h in hosts], subject


class NatsSink:
    batch_size = BATCH_SIZE

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        self.servers, self.subject = parse_nats_url(url)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._nc: Any = None
        self._js: Any = None

    # -- the event loop, in a thread of its own ---------------------------------------------

    def _run(self, coro: Any) -> Any:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            threading.Thread(target=self._loop.run_forever, name="ui-telemetry-nats",
                             daemon=True).start()
        # The coroutine bounds its own waits; this one only guards against a wedged loop.
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(self.timeout * 3 + 10)

    async def _connect(self) -> Any:
        import nats

        if self._nc is not None and not self._nc.is_closed:
            return self._js

        async def quiet(err: Exception) -> None:  # nats-py would log every reconnect attempt
            log.debug("nats: %s", type(err).__name__)

        # Once connected, the client reconnects across the listed servers for ever; the first
        # connection is bounded, so a cluster that is down is a failed send, retried later.
        self._nc = None
        self._nc = await asyncio.wait_for(nats.connect(
            servers=self.servers, connect_timeout=min(self.timeout, 5.0),
            allow_reconnect=True, max_reconnect_attempts=-1, reconnect_time_wait=0.5,
            error_cb=quiet, name="ui-telemetry-relay"), self.timeout)
        self._js = self._nc.jetstream(timeout=self.timeout,
                                      publish_async_max_pending=MAX_PENDING)
        return self._js

    # -- the sink ---------------------------------------------------------------------------

    def send(self, data_lines: list[str], event_ids: list[str]) -> Outcome:
        return self._run(self._send(data_lines, event_ids))

    async def _send(self, data_lines: list[str], event_ids: list[str]) -> Outcome:
        from nats import errors
        from nats.js import errors as js_errors

        try:
            js = await self._connect()
        except (errors.NoServersError, OSError, TimeoutError, errors.Error) as err:
            return Outcome(False, "retry", "refused",
                           f"no NATS server of {', '.join(self.servers)} answered "
                           f"({type(err).__name__})")
        futures: list[asyncio.Future] = []

        async def publish_all() -> None:
            # publish_async waits while MAX_PENDING acknowledgements are outstanding.
            for line, event_id in zip(data_lines, event_ids, strict=True):
                futures.append(await js.publish_async(
                    self.subject, line.encode(), headers={"Nats-Msg-Id": event_id}))
            await asyncio.gather(*futures)

        try:
            await asyncio.wait_for(publish_all(), self.timeout)
        except js_errors.NoStreamResponseError:
            # No stream answered: none captures the subject, or the cluster is recovering.
            return Outcome(False, "retry", "no_stream", self.no_stream())
        except (TimeoutError, js_errors.TooManyStalledMsgsError):
            acked = sum(1 for f in futures if f.done() and not f.cancelled()
                        and f.exception() is None)
            return Outcome(False, "retry", "timeout",
                           f"JetStream acknowledged {acked} of {len(data_lines)} messages "
                           f"within {self.timeout:g} s (a node down, or no quorum); the "
                           "batch is kept and retried")
        except js_errors.APIError as err:
            return Outcome(False, "retry", "jetstream_error", f"JetStream refused: {err}")
        except errors.Error as err:
            return Outcome(False, "retry", "network", f"NATS: {type(err).__name__}")
        finally:
            for future in futures:
                if not future.done():
                    future.cancel()
        return DONE

    def no_stream(self) -> str:
        return (f"no JetStream stream captures the subject {self.subject!r}: create one "
                "(see the README); the records are held in the spool until it exists")

    def check(self) -> str | None:
        """A problem with this upstream in words, or None: asks JetStream which stream
        captures the subject."""
        return self._run(self._check())

    async def _check(self) -> str | None:
        from nats import errors
        from nats.js import errors as js_errors

        try:
            js = await self._connect()
        except (errors.NoServersError, OSError, TimeoutError, errors.Error) as err:
            return f"no NATS server of {', '.join(self.servers)} answered ({type(err).__name__})"
        try:
            await asyncio.wait_for(js.find_stream_name_by_subject(self.subject), self.timeout)
        except js_errors.NotFoundError:
            return self.no_stream()
        except (TimeoutError, errors.Error, js_errors.Error) as err:
            return f"JetStream did not say which stream captures {self.subject!r} " \
                   f"({type(err).__name__})"
        return None

    def close(self) -> None:
        if self._nc is not None and self._loop is not None:
            with contextlib.suppress(Exception):  # a connection that is already gone
                self._run(self._nc.close())
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop = None
