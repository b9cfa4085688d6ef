"""The forwarder: drains the spool to the sink, one batch at a time, from one process only.

Every gunicorn worker runs a Forwarder thread, but only the holder of an exclusive flock on the
data directory sends. The kernel releases the lock when its holder dies, so another worker takes
over after a kill -9, and no two workers ever send the same rows in normal operation.
"""

from __future__ import annotations

import fcntl
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import IO

from ..control.config import Config
from ..control.policy import Policy
from ..control.remote_config import RemoteConfig
from ..store import counters as c
from ..store.codec import Codec, StoredRecord, pack
from ..store.seen import SeenIds
from ..store.spool import Count, Row, Spool
from . import make_sink
from .base import Action, Outcome, Sink

MIN_BACKOFF = 1.0
MAX_BACKOFF = 60.0
EXPIRE_EVERY = 60.0
CHECKPOINT_EVERY = 1.0
IDLE_POLL = 0.5
HEARTBEAT_EVERY = 5.0
FORWARDER_SEEN = "forwarder_seen"  # spool state: when a forwarder thread last said it runs
log = logging.getLogger("relay")


class Backoff:
    """1 s doubling to 60 s, with jitter; an upstream's Retry-After wins."""

    def __init__(self, rng: Callable[[], float] = random.random) -> None:
        self.failures = 0
        self._rng = rng

    def next_delay(self, retry_after: float | None = None) -> float:
        self.failures += 1
        if retry_after is not None:
            return min(retry_after, 3600.0)
        ceiling = min(MAX_BACKOFF, MIN_BACKOFF * 2 ** (self.failures - 1))
        # Jitter in the upper half: spreads retries without ever retrying sooner than half.
        return ceiling * (0.5 + 0.5 * self._rng())

    def reset(self) -> None:
        self.failures = 0


class Forwarder:
    """Drains the spool into the sink of the current upstream URL, in its own thread."""

    def __init__(self, spool: Spool, config: Config, remote: RemoteConfig, codec: Codec,
                 policy: Policy,
                 sink_factory: Callable[[str, float], Sink] = make_sink,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.spool = spool
        self.codec = codec
        self.config = config
        self.remote = remote
        self.policy = policy
        self.sink_factory = sink_factory
        self.clock = clock
        self.backoff = Backoff()
        self._sink: Sink | None = None
        self._lock_file: IO[str] | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._drain_until: float | None = None
        self._retry_at = 0.0
        self._stopped_at: float | None = None  # config generation when an upstream said stop
        self._last_send = clock()
        self._next_expire = 0.0
        self._next_checkpoint = 0.0
        self.seen = SeenIds()

    # -- leadership -----------------------------------------------------------------------

    def try_lead(self) -> bool:
        if self._lock_file is not None:
            return True
        path = self.config.data_dir / "forwarder.lock"
        f = open(path, "a+")  # noqa: SIM115 - held open for as long as we lead
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            return False
        self._lock_file = f
        self.seen.load(self.spool)  # what the previous leader delivered
        return True

    def release(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    # -- the thread -----------------------------------------------------------------------

    def start(self) -> None:
        """Start in this process (after gunicorn's fork: a thread does not survive a fork)."""
        # In a forked child the parent's thread reports not alive (threading resets it), so
        # this check needs no getpid(): a system call on every request, since this runs there.
        if self._thread is not None and self._thread.is_alive():
            return
        self._lock_file = None  # a lock inherited through fork is not ours
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="ui-telemetry-forwarder",
                                        daemon=True)
        self._thread.start()

    def stop(self, drain_seconds: float = 0.0) -> None:
        """Stop the thread; first send what can be sent within drain_seconds."""
        self._drain_until = self.clock() + drain_seconds
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(drain_seconds + self.config.upstream_timeout + 1)
        if not self.running:
            self._close_sink()  # the thread closes it as it ends; steps run by hand leave it
        self.release()

    @property
    def running(self) -> bool:
        """True while this process's forwarder thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        failures = Backoff()
        next_beat = 0.0
        while not self._stop.is_set():
            try:
                if self.clock() >= next_beat:  # for `ui-telemetry status`, another process
                    self.spool.set_state(FORWARDER_SEEN, time.time())
                    next_beat = self.clock() + HEARTBEAT_EVERY
                if not self.try_lead():
                    self._stop.wait(1.0)
                    continue
                delay = self.step()
                failures.reset()
            except Exception as err:  # noqa: BLE001 - the thread must outlive a bad moment
                delay = failures.next_delay()
                self._note_error("internal", f"{type(err).__name__}: {err}")
            self._stop.wait(delay)
        if self._lock_file is not None:
            try:
                self.drain(self._drain_until or self.clock())
            except Exception as err:  # noqa: BLE001 - what is not sent stays in the spool
                log.error("forwarder: the drain stopped early: %s", type(err).__name__)
        self._close_sink()

    # -- the work ---------------------------------------------------------------------------

    def upstream_url(self) -> str:
        """Where records go now: the remote config's ingestion_url, else the local setting."""
        return self.remote.get().ingestion_url or self.config.local_ingestion_url

    def _sink_for(self, url: str) -> Sink:
        if self._sink is None or self._sink.url != url:
            self._close_sink()  # a NATS sink holds a connection and a thread
            self._sink = self.sink_factory(url, self.config.upstream_timeout)
        return self._sink

    def _close_sink(self) -> None:
        sink, self._sink = self._sink, None
        if sink is not None:
            try:
                sink.close()
            except Exception as err:  # noqa: BLE001 - a sink that cannot close is let go
                log.error("forwarder: closing the sink failed: %s", type(err).__name__)

    def step(self, force: bool = False) -> float:
        """Send at most one batch if it is time; return how long to wait before the next step."""
        now = self.clock()
        if now >= self._next_expire:
            self.spool.expire(self.config.spool_max_age, self.seen.remember,
                              self.seen.max_ids)
            self._next_expire = now + EXPIRE_EVERY
        if now >= self._next_checkpoint:
            self.spool.checkpoint()
            self._next_checkpoint = now + CHECKPOINT_EVERY
        if not self.policy.server().enabled:
            return 1.0  # hold the backlog while telemetry is off; max age still applies
        if self._stopped_at is not None:
            if self.remote.generation == self._stopped_at:
                return 1.0
            self._stopped_at = None
        if now < self._retry_at:
            return min(self._retry_at - now, 1.0)
        size = self.config.batch_size
        due = force or now - self._last_send >= self.config.flush_interval
        if not due and self.spool.depth() < size:
            return min(IDLE_POLL, self.config.flush_interval)
        sink = self._sink_for(self.upstream_url())
        rows = self.spool.peek(max(size, sink.batch_size))
        self._last_send = now
        if not rows:
            return min(IDLE_POLL, self.config.flush_interval)
        records = self._new_records(rows)
        held = sum(row.n for row in rows)
        duplicates = (c.DUPLICATES, "", held - len(records))
        if not records:
            self.spool.remove(rows, [duplicates])
            return 0.0
        outcome = sink.send(records)
        if outcome.ok:
            self.backoff.reset()
            keys = [r.key for r in records]
            self.spool.remove(rows, [(c.FORWARDED, "", len(records)), duplicates], pack(keys))
            self.seen.add(keys)
            return 0.0 if self.spool.depth() >= size else \
                min(IDLE_POLL, self.config.flush_interval)
        self._on_failure(outcome, rows, [(c.DROPPED, "upstream_rejected", len(records)),
                                         duplicates])
        return 0.0 if outcome.action is Action.DROP else 1.0

    def _new_records(self, rows: list[Row]) -> list[StoredRecord]:
        """The records of these rows not delivered before, each once."""
        records: list[StoredRecord] = []
        fresh: set[int] = set()
        seen = self.seen
        for row in rows:
            row_records = self.codec.read_row(row.data, row.n)
            keys = {r.key for r in row_records}
            if len(keys) == row.n and seen.isdisjoint(keys) and fresh.isdisjoint(keys):
                fresh |= keys  # the usual row, all new: taken whole
                records += row_records
                continue
            for r in row_records:
                if r.key not in seen and r.key not in fresh:
                    fresh.add(r.key)
                    records.append(r)
        return records

    def _on_failure(self, outcome: Outcome, rows: list[Row], dropped: list[Count]) -> None:
        self._note_error(outcome.kind, outcome.detail)
        if outcome.action is Action.RETRY:
            self._retry_at = self.clock() + self.backoff.next_delay(outcome.retry_after)
        elif outcome.action is Action.STOP:
            if not self.remote.url:
                # A local config has nothing to refresh: look again after the retry period.
                self._retry_at = self.clock() + self.config.config_retry_seconds
            else:
                self._stopped_at = self.remote.generation  # resume when the config refreshes
        else:
            self.spool.remove(rows, dropped)

    def _note_error(self, kind: str, detail: str) -> None:
        """Count and keep the error for /metrics and `status`; a spool that cannot take the
        note (locked, full disk) must not end the thread, so that failure is only logged."""
        try:
            self.spool.count([(c.UPSTREAM_ERRORS, kind, 1)])
            self.spool.set_state("last_error",
                                 {"kind": kind, "detail": detail, "at": time.time()})
        except Exception as err:  # noqa: BLE001
            log.error("forwarder: %s (and it could not be noted: %s)", kind,
                      type(err).__name__)

    def drain(self, deadline: float) -> None:
        """Send everything now, until the spool is empty, the upstream fails or time is up."""
        while self.clock() < deadline:
            before = self.spool.depth()
            if before == 0 or self._retry_at > deadline:
                break
            if self.clock() < self._retry_at:
                time.sleep(min(self._retry_at - self.clock(), 0.2))
                continue
            self.step(force=True)
            after = self.spool.depth()
            if after >= before and self._retry_at <= self.clock():
                break  # nothing moved and nothing to wait for (telemetry off, or stopped)
