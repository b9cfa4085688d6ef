"""`ui-telemetry consume nats://HOST:PORT[,...]/SUBJECT`: a JetStream stream into the usage store.

A durable pull consumer (it remembers where it is across restarts) fetches a batch, the store
commits it, and only then is each message acknowledged. A consumer killed anywhere in that
loses nothing: what was not acknowledged is delivered again after the ack wait, and the store's
event_id key keeps a record that was committed but not acknowledged from counting twice.

A message that is not a DATA line is told to JetStream never to come back (`term`), and counted;
its content is never printed. `--once` stops when the consumer has nothing pending and nothing
waiting for an acknowledgement, which includes what a killed consumer left unacknowledged: it
waits out the ack wait for JetStream to deliver that again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..forward.nats import parse_nats_url
from .store import ROLL_UP_EVERY, UsageStore, opened

DURABLE = "ui-telemetry-usage"
ACK_WAIT = 30.0
FETCH = 5000
_TEXT_FIELDS = ("installation_id", "session_id", "params")


@dataclass
class Tally:
    messages: int = 0  # committed and acknowledged, redeliveries included
    refused: int = 0  # not a DATA line: terminated


class _Pull:
    """Pull requests of a consumer, answered on one inbox by a callback; the next batch is
    asked for before the one at hand is committed, so that the stream and the store work at
    the same time.

    nats-py's own `fetch` waits for each message with a task and a timeout of its own, which
    held the consumer to a fifth of the rate at which the relay fills the stream.
    """

    def __init__(self, nc: Any, api_subject: str, batch: int, wait: float = 1.0) -> None:
        self.nc = nc
        self.api_subject = api_subject
        self.inbox = nc.new_inbox()
        self.batch = batch
        self.wait = wait
        self.msgs: list[Any] = []
        self.done = asyncio.Event()

    async def start(self) -> None:
        await self.nc.subscribe(self.inbox, cb=self._on_msg, pending_msgs_limit=-1,
                                pending_bytes_limit=-1)
        await self._request()

    async def _on_msg(self, msg: Any) -> None:
        if not msg.reply:  # a status (no messages, request expired): this pull is over
            self.done.set()
            return
        self.msgs.append(msg)
        if len(self.msgs) >= self.batch:
            self.done.set()

    async def _request(self) -> None:
        self.msgs = []
        self.done.clear()
        request = {"batch": self.batch, "expires": int(self.wait * 1e9)}
        await self.nc.publish(self.api_subject, json.dumps(request).encode(),
                              reply=self.inbox)

    async def next(self) -> list[Any]:
        """The messages of the pull made before (up to a batch, within `wait` seconds), and
        the next pull made."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.done.wait(), self.wait + 5)
        msgs = self.msgs
        await self._request()
        return msgs


class ConsumeError(Exception):
    """Why the consumer cannot start, in words."""


def _is_data(raw: bytes) -> bool:
    """Whether the store can take the line: the fields and types its columns need."""
    try:
        record = json.loads(raw)
        params = json.loads(record["params"])
        uuid.UUID(record["event_id"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return False
    return all(isinstance(record.get(f), str) for f in _TEXT_FIELDS) \
        and isinstance(record.get("timestamp_ns"), int) \
        and isinstance(record.get("version", ""), str | None) \
        and isinstance(params, dict) and all(
            isinstance(params.get(k), str)
            for k in ("componentId", "componentType", "eventType"))


class _Turns:
    """The store, held for a turn of up to `hold` seconds of batches, then let go.

    Opening and closing the store for each batch cost as much as committing it. Between turns
    it waits `gap` seconds, longer than the others' wait for the lock (`opened` tries every
    50 ms), so that the relay's workers and `report` still get their turn.
    """

    def __init__(self, usage_path: Path, hold: float = 1.0, gap: float = 0.06) -> None:
        self.usage_path = usage_path
        self.hold = hold
        self.gap = gap
        self.turn: contextlib.ExitStack | None = None
        self.until = 0.0

    def store(self) -> UsageStore:
        if self.turn and time.monotonic() > self.until:
            self.release()
            time.sleep(self.gap)
        if not self.turn:
            self.turn = contextlib.ExitStack()
            self._store = self.turn.enter_context(opened(self.usage_path))
            self.until = time.monotonic() + self.hold
        return self._store

    def release(self) -> None:
        if self.turn:
            self.turn.close()
            self.turn = None


def _commit(turns: _Turns, msgs: list[Any]) -> set[int]:
    """Commit a batch to the store; return the ids of the messages that are not DATA lines."""
    lines = [m.data.rstrip(b"\n") for m in msgs]
    store = turns.store()
    try:
        store.load_lines(b"".join(line + b"\n" for line in lines))
        refused = set()
    except Exception:  # noqa: BLE001 - DuckDB refuses the batch as a whole: sort it out
        good = [_is_data(line) for line in lines]
        store.load_lines(b"".join(line + b"\n" for line, ok in zip(lines, good,
                                                                   strict=True) if ok))
        refused = {id(m) for m, ok in zip(msgs, good, strict=True) if not ok}
    # Rolled up in larger steps than a batch; what is left waits for the end or the report.
    store.roll_up(at_least=ROLL_UP_EVERY)
    return refused


async def consume(url: str, usage_path: Path, *, once: bool = False, durable: str = DURABLE,
                  ack_wait: float = ACK_WAIT, fetch: int = FETCH,
                  report: Any = None) -> Tally:
    import nats
    from nats.js import api
    from nats.js.errors import NotFoundError

    servers, subject = parse_nats_url(url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def quiet(err: Exception) -> None:
        pass

    try:
        nc = await nats.connect(servers=servers, connect_timeout=5, max_reconnect_attempts=-1,
                                reconnect_time_wait=0.5, error_cb=quiet,
                                name="ui-telemetry-consume")
    except Exception as err:
        raise ConsumeError(f"no NATS server of {', '.join(servers)} answered "
                           f"({type(err).__name__})") from None
    tally = Tally()
    turns = _Turns(usage_path)
    try:
        js = nc.jetstream(timeout=10)
        try:
            stream = await js.find_stream_name_by_subject(subject)
        except NotFoundError:
            raise ConsumeError(f"no JetStream stream holds the subject {subject!r}") from None
        config = api.ConsumerConfig(
            durable_name=durable, ack_policy=api.AckPolicy.EXPLICIT, ack_wait=ack_wait,
            max_ack_pending=max(fetch * 4, 20_000), filter_subject=subject,
            deliver_policy=api.DeliverPolicy.ALL)
        # Creates it, or updates the ack wait of the one that is there; one whose settings
        # cannot change is used as it is.
        with contextlib.suppress(nats.js.errors.BadRequestError):
            await js.add_consumer(stream, config)
        pull = _Pull(nc, f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}", fetch)
        await pull.start()
        last = time.monotonic()
        while not stop.is_set():
            msgs = await pull.next()
            if msgs:
                refused = await asyncio.to_thread(_commit, turns, msgs)
                for m in msgs:
                    await nc.publish(m.reply, b"+TERM" if id(m) in refused else b"+ACK")
                await nc.flush()
                tally.messages += len(msgs) - len(refused)
                tally.refused += len(refused)
                if report and time.monotonic() - last >= 10:
                    report(tally)
                    last = time.monotonic()
            else:
                turns.release()  # nothing came: the others may have the store
            if not msgs and once:
                info = await js.consumer_info(stream, durable)
                if info.num_pending == 0 and info.num_ack_pending == 0:
                    break
        await asyncio.to_thread(lambda: turns.store().roll_up())
    finally:
        turns.release()
        await nc.close()
    return tally


def run(url: str, usage_path: Path, **options: Any) -> int:
    """The `consume` command: 0 when it stopped as asked, 2 when it could not start."""
    def progress(t: Tally) -> None:
        print(f"ui-telemetry: {t.messages} message(s) consumed so far", file=sys.stderr)

    try:
        tally = asyncio.run(consume(url, usage_path, report=progress, **options))
    except (ConsumeError, ValueError) as err:
        print(f"ui-telemetry: {err}", file=sys.stderr)
        return 2
    refused = (f"; {tally.refused} message(s) that were not records terminated"
               if tally.refused else "")
    print(f"ui-telemetry: consumed {tally.messages} message(s) into {usage_path}{refused}")
    return 0
