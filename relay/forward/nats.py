"""nats://HOST:PORT[,HOST:PORT...]/SUBJECT: each record one JetStream message, acknowledged.

Each DATA line is published as one message on SUBJECT with the header `Nats-Msg-Id: <event_id>`,
so the stream's duplicate window removes the repeats that at-least-once delivery allows. A batch
counts as sent only when JetStream acknowledged every message of it (its PubAck); until then the
forwarder keeps the batch in the spool and retries it, and the messages that did get in are
dropped as duplicates by the stream.

nats-py is asyncio: the sink runs its own event loop in a thread of its own, and the forwarder's
thread waits for each batch there. Publishing is asynchronous, with at most MAX_PENDING
acknowledgements outstanding; a send fails when nothing more was acknowledged for the upstream
timeout. The client knows every listed server and reconnects across them.
nats-py is imported only when a nats:// URL is used: `ui-telemetry serve` needs no NATS otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from ..store.codec import StoredRecord
from .base import DONE, Outcome, Sink

MAX_PENDING = 5000  # acknowledgements outstanding at once
# One send() carries up to this many records: several times MAX_PENDING, so that publishing goes
# on while acknowledgements come back, and the pipe empties only once per send.
BATCH_SIZE = 20000
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


class _Batch:
    """The acknowledgements one send() waits for."""

    def __init__(self, token: str, size: int) -> None:
        self.token = token
        self.size = size
        self.acked = 0
        self.window = asyncio.Semaphore(MAX_PENDING)
        self.done = asyncio.Event()
        self.problem: Outcome | None = None
        if size == 0:
            self.done.set()

    def fail(self, problem: Outcome) -> None:
        """The batch is not all in the stream: stop publishing, and say why."""
        if self.problem is None:
            self.problem = problem
        self.done.set()
        self.window.release()  # the publishing loop may be waiting for room


def _error_of(data: bytes) -> str:
    """The description of a JetStream API error answer, in its own words."""
    try:
        error = json.loads(data)["error"]
        return f"{error.get('description', 'no description')} (code {error.get('code')})"
    except (ValueError, KeyError, TypeError, AttributeError):
        return "an answer that is not a PubAck"


class NatsSink(Sink):
    """Publishes each record as one message and waits for every PubAck."""

    batch_size = BATCH_SIZE

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        self.servers, self.subject = parse_nats_url(url)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._nc: Any = None
        self._js: Any = None
        self._inbox = ""
        self._sends = 0
        self._batch: _Batch | None = None

    # -- the event loop, in a thread of its own ---------------------------------------------

    def _run(self, coro: Any, records: int = 0) -> Any:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            threading.Thread(target=self._loop.run_forever, name="ui-telemetry-nats",
                             daemon=True).start()
        # The coroutine bounds its own waits; this only guards against a wedged loop, leaving
        # a batch that goes on being acknowledged (at 100 records/s or more) the time it needs.
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(self.timeout * 3 + 10 + records / 100)
        except BaseException:
            future.cancel()
            raise

    async def _connect(self) -> Any:
        import nats

        if self._nc is not None and not self._nc.is_closed:
            return self._js

        async def quiet(err: Exception) -> None:  # nats-py would log every reconnect attempt
            log.debug("nats: %s", type(err).__name__)

        # Once connected, the client reconnects across the listed servers for ever (and
        # subscribes again); the first connection is bounded, so a cluster that is down is a
        # failed send, retried later.
        self._nc = None
        nc = await asyncio.wait_for(nats.connect(
            servers=self.servers, connect_timeout=min(self.timeout, 5.0),
            allow_reconnect=True, max_reconnect_attempts=-1, reconnect_time_wait=0.5,
            error_cb=quiet, name="ui-telemetry-relay"), self.timeout)
        # Every PubAck comes to one inbox subscription. nats-py's own publish_async makes a
        # future, a token and a semaphore wait for each message, which halves the rate.
        self._inbox = nc.new_inbox() + "."
        await nc.subscribe(self._inbox + "*.*", cb=self._on_ack)
        self._nc = nc
        self._js = nc.jetstream(timeout=self.timeout)
        return self._js

    async def _on_ack(self, msg: Any) -> None:
        """One PubAck (or the server's "no responders"), to the send it answers."""
        batch = self._batch
        token = msg.subject[len(self._inbox):].partition(".")[0]
        if batch is None or token != batch.token:
            return  # a late answer to a send that already gave up
        batch.window.release()
        if msg.headers and msg.headers.get("Status") == "503":
            batch.fail(Outcome.retry("no_stream", self.no_stream()))
        elif b'"error":' in msg.data:
            batch.fail(Outcome.retry("jetstream_error",
                               f"JetStream refused: {_error_of(msg.data)}"))
        else:  # {"stream": ..., "seq": ...}, with "duplicate": true for a repeat
            batch.acked += 1
            if batch.acked == batch.size:
                batch.done.set()

    # -- the sink ---------------------------------------------------------------------------

    def send(self, records: Sequence[StoredRecord]) -> Outcome:
        return self._run(self._send(records), len(records))

    async def _send(self, records: Sequence[StoredRecord]) -> Outcome:
        from nats import errors

        try:
            await self._connect()
        except (errors.NoServersError, OSError, TimeoutError, errors.Error) as err:
            return Outcome.retry("refused",
                           f"no NATS server of {', '.join(self.servers)} answered "
                           f"({type(err).__name__})")
        self._sends += 1
        batch = self._batch = _Batch(str(self._sends), len(records))
        reply = f"{self._inbox}{batch.token}."
        publish = self._nc.publish

        async def publish_all() -> None:
            window = batch.window
            for i, record in enumerate(records):
                if window.locked():  # MAX_PENDING outstanding: wait for one to come back
                    await asyncio.wait_for(window.acquire(), self.timeout)
                else:
                    await window.acquire()  # at once (no task, as wait_for would make)
                if batch.problem is not None:
                    return
                await publish(self.subject, record.data.encode(), reply=f"{reply}{i}",
                              headers={"Nats-Msg-Id": record.event_id})
            while not batch.done.is_set():
                before = batch.acked
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(batch.done.wait(), self.timeout)
                if batch.acked == before and not batch.done.is_set():
                    raise TimeoutError

        try:
            # The timeout is on progress, not on the whole batch: a slow cluster that goes on
            # acknowledging is not a failure, one that acknowledges nothing for it is.
            await publish_all()
        except TimeoutError:
            return Outcome.retry("timeout",
                           f"JetStream acknowledged {batch.acked} of {len(records)} messages "
                           f"and then nothing for {self.timeout:g} s (a node down, or no "
                           "quorum); the batch is kept and retried")
        except errors.Error as err:
            return Outcome.retry("network", f"NATS: {type(err).__name__}")
        finally:
            self._batch = None
        return batch.problem or DONE

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
        """Close the connection and end the event loop's thread."""
        if self._nc is not None and self._loop is not None:
            with contextlib.suppress(Exception):  # a connection that is already gone
                self._run(self._nc.close())
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop = None
