"""The durable spool: SQLite in WAL mode, shared by every gunicorn worker.

A POST is acknowledged only after its records are committed here, so the commit is the ack.
Counters live in the same file, updated in the same transactions, so every worker's /metrics
tells the same story and nothing is counted for records that were not stored.
"""

from __future__ import annotations

import fcntl
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import counters as c
from .codec import KEY_BYTES
from .data import BATCH_SIZE

FORMAT = 1  # PRAGMA user_version: bump, and migrate, whenever a table below changes
SCHEMA = """
-- One row per POST (split at ROW_LIMIT records): a request costs one insert, however many
-- records it carries. `total` is the running count of records stored, this row's included, so
-- the depth in records is two O(log n) lookups: last total - (first total - first n).
-- No AUTOINCREMENT: its counter is one more page written by every POST (2.7% of throughput).
-- A new row still gets an id above every row in the table (SQLite's max + 1), which is all
-- remove() needs; an id is used again only after every row from it on was deleted. A table
-- made with AUTOINCREMENT reads and works the same.
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    n INTEGER NOT NULL,
    total INTEGER NOT NULL,
    data TEXT NOT NULL  -- one record a line, as relay.codec wrote them
);
-- The event ids of delivered records (codec.pack()ed), one row per delivered batch: the
-- forwarder keeps them in memory to skip a record it has delivered before. Appending here is
-- sequential: a unique index on ids, checked on every POST, cost more than everything else
-- a POST does (random UUIDs dirty a different page each).
CREATE TABLE IF NOT EXISTS delivered (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    event_ids BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT NOT NULL,
    label TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (name, label)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
"""

# A row holds at most an upstream batch, so the forwarder always sends whole rows.
ROW_LIMIT = BATCH_SIZE

Count = tuple[str, str, int]  # (counter name, label value, increment)

# Records waiting: the last row's running total minus what the rows before the first one held.
# Scalar subqueries, so SQLite answers each from one end of the b-tree: O(log n).
_DEPTH = ("coalesce((SELECT total FROM batches ORDER BY id DESC LIMIT 1) - "
          "(SELECT total - n FROM batches ORDER BY id LIMIT 1), 0)")
# ?1 received_at, ?2 n, ?3 data; `total` continues the last row's.
_INSERT = ("INSERT INTO batches (received_at, n, total, data) SELECT ?1, ?2, "
           "coalesce((SELECT total FROM batches ORDER BY id DESC LIMIT 1), 0) + ?2, ?3")
_UNLESS_FULL = f" WHERE ?4 IS NULL OR {_DEPTH} + ?2 <= ?4"  # ?4 the limit, or None
_SELECT_DEPTH = f"SELECT {_DEPTH}"
# Delivered rows that delivered_since() no longer reaches: newer rows hold ?1 bytes of ids.
# Without this, a busy relay's table grows by a key a record for the whole retention time.
_TRIM_DELIVERED = ("DELETE FROM delivered WHERE id <= (SELECT max(id) FROM (SELECT id, "
                   "sum(length(event_ids)) OVER (ORDER BY id DESC) - length(event_ids) AS newer "
                   "FROM delivered) WHERE newer >= ?1)")


class SpoolFormatError(RuntimeError):
    """The spool file was written by a newer (or unknown) version of the relay."""


@dataclass(frozen=True)
class Row:
    """One stored row: up to ROW_LIMIT records that arrived in one POST."""

    id: int
    n: int
    data: str  # one record a line, as relay.codec wrote them


class Spool:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        db = self._connection()
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, FORMAT):
            raise SpoolFormatError(
                f"{path} is in spool format {version}, and this relay reads format {FORMAT}: "
                "run the relay version that wrote it until the spool is empty, or move the "
                "file away")
        db.executescript(SCHEMA)  # IF NOT EXISTS: racing workers agree
        db.execute(f"PRAGMA user_version = {FORMAT}")

    # One connection per thread: the request thread and the forwarder never share one.
    def _connection(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a commit survives the process being killed (kill -9);
            # only a power cut could lose the last transactions. FULL would fsync each POST.
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=30000")
            # Copying the WAL back into the database (and its fsync) is the forwarder's job,
            # via checkpoint(): a POST should not pay for it when it crosses the threshold.
            db.execute("PRAGMA wal_autocheckpoint=0")
            # Debian's SQLite zeroes every freed page by default, which more than doubles what
            # the forwarder's delete writes (and the lock is held while it does). Records hold
            # nothing personal, and the file sink keeps the same records anyway: state it, so
            # every build behaves alike.
            db.execute("PRAGMA secure_delete=OFF")
            self._local.db = db
            # Writers queue on a flock first. SQLite's own busy handler sleeps 1 ms, then 2,
            # then 5... when the write lock is taken, which idles the CPU under load; the
            # kernel wakes a flock waiter the moment the holder lets go.
            self._local.lock = open(self.lock_path, "a")  # noqa: SIM115 - the thread's own
        return db

    def settings(self) -> dict[str, object]:
        """The durability settings of this thread's connection, as SQLite reports them."""
        db = self._connection()
        return {name: db.execute(f"PRAGMA {name}").fetchone()[0] for name in (
            "journal_mode", "synchronous", "busy_timeout", "wal_autocheckpoint",
            "secure_delete")}

    @contextmanager
    def _locked(self) -> Iterator[sqlite3.Connection]:
        """The connection, while this thread holds the writers' flock."""
        db = self._connection()
        lock = self._local.lock.fileno()
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield db
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._locked() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                # A COMMIT that failed (locked, disk full) leaves the transaction open, and
                # every later BEGIN on this connection would fail: always end it here.
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    @staticmethod
    def _count(db: sqlite3.Connection, counts: Iterable[Count]) -> None:
        counts = [c for c in counts if c[2]]
        if counts:
            db.executemany(
                "INSERT INTO counters (name, label, value) VALUES (?, ?, ?) "
                "ON CONFLICT (name, label) DO UPDATE SET value = value + excluded.value",
                counts)

    def count(self, counts: Iterable[Count]) -> None:
        with self._transaction() as db:
            self._count(db, counts)

    def store(self, records: list[str], counts: Iterable[Count] = (),
              limit: int | None = None) -> bool:
        """Commit records (one line of text each).

        Counters in `counts` are updated in the same transaction. With `limit`, nothing is
        stored (and False returned) when the spool would then hold more records than that.
        A record whose event_id was stored before is stored again: the forwarder skips it.
        """
        now = time.time()
        counts = [c for c in counts if c[2]]
        chunks = [records[i:i + ROW_LIMIT] for i in range(0, len(records), ROW_LIMIT)]
        rows = [(now, len(chunk), "\n".join(chunk)) for chunk in chunks]
        if len(rows) == 1 and not counts:
            # The usual POST: one statement, which is a transaction of its own (SQLite takes
            # the write lock before reading, as BEGIN IMMEDIATE does), with the spool-full
            # check in its WHERE: about 20 µs less than BEGIN, depth, insert and COMMIT.
            with self._locked() as db:
                inserted = db.execute(_INSERT + _UNLESS_FULL, (*rows[0], limit)).rowcount
            return inserted == 1
        with self._transaction() as db:
            if limit is not None and self._depth(db) + len(records) > limit:
                return False
            db.executemany(_INSERT, rows)
            self._count(db, counts)
        return True

    @staticmethod
    def _depth(db: sqlite3.Connection) -> int:
        return db.execute(_SELECT_DEPTH).fetchone()[0]

    def depth(self) -> int:
        """Records waiting, in O(log n)."""
        return self._depth(self._connection())

    def oldest(self) -> float | None:
        row = self._connection().execute(
            "SELECT received_at FROM batches ORDER BY id LIMIT 1").fetchone()
        return row[0] if row else None

    def peek(self, max_records: int) -> list[Row]:
        """The oldest whole rows holding at most max_records records (at least one row)."""
        rows: list[Row] = []
        held = 0
        cursor = self._connection().execute(
            "SELECT id, n, data FROM batches ORDER BY id")
        for row_id, n, data in cursor:
            if rows and held + n > max_records:
                break
            rows.append(Row(row_id, n, data))
            held += n
            if held >= max_records:
                break
        cursor.close()
        return rows

    def last(self, limit: int) -> list[str]:
        """The newest `limit` waiting records (their stored text), oldest first."""
        lines: list[str] = []
        cursor = self._connection().execute("SELECT data FROM batches ORDER BY id DESC")
        for (data,) in cursor:
            lines[:0] = data.split("\n")
            if len(lines) >= limit:
                break
        cursor.close()
        return lines[-limit:]

    def remove(self, rows: list[Row], counts: Iterable[Count] = (),
               delivered: bytes = b"") -> None:
        """Forget rows from peek() that were delivered (or given up on), counting why.

        peek() returns the lowest ids, and a row stored meanwhile gets a higher id than any in
        the table, the peeked ones included (they stay until now), so the batch is exactly the
        rows between its first and last id: one range delete.
        `delivered` (codec.pack()ed keys) is remembered in the same transaction.
        """
        with self._transaction() as db:
            db.execute("DELETE FROM batches WHERE id BETWEEN ? AND ?", (rows[0].id, rows[-1].id))
            if delivered:
                db.execute("INSERT INTO delivered (at, event_ids) VALUES (?, ?)",
                           (time.time(), delivered))
            self._count(db, counts)

    def delivered_since(self, since: float, limit: int) -> Iterator[tuple[float, bytes]]:
        """(when, packed keys) delivered after `since`, newest first, about `limit` ids."""
        held = 0
        cursor = self._connection().execute(
            "SELECT at, event_ids FROM delivered WHERE at >= ? ORDER BY id DESC", (since,))
        for at, blob in cursor:
            if held >= limit:
                break
            held += len(blob) // KEY_BYTES
            yield at, blob
        cursor.close()

    def checkpoint(self) -> None:
        """Fold the WAL into the database, so that the next writer starts it over.

        SQLite starts the WAL over only once every frame in it is folded, and under steady
        POSTs some always arrive while a checkpoint runs, so a WAL checkpointed only that
        way grows without end. So the bulk is folded while writers go on, and the frames
        they added meanwhile with the writers' lock held, briefly.
        """
        db = self._connection()
        db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        with self._locked():
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def expire(self, max_age: float, remember: float, max_ids: int | None = None) -> int:
        """Drop records waiting longer than max_age, and delivered ids older than remember or
        beyond the newest max_ids (what delivered_since() would still read)."""
        now = time.time()
        with self._transaction() as db:
            cutoff = now - max_age
            dropped = db.execute("SELECT coalesce(sum(n), 0) FROM batches WHERE received_at < ?",
                                 (cutoff,)).fetchone()[0]
            db.execute("DELETE FROM batches WHERE received_at < ?", (cutoff,))
            db.execute("DELETE FROM delivered WHERE at < ?", (now - remember,))
            if max_ids is not None:
                db.execute(_TRIM_DELIVERED, (max_ids * KEY_BYTES,))
            self._count(db, [(c.DROPPED, "expired", dropped)])
        return dropped

    def counters(self) -> dict[tuple[str, str], int]:
        """Every counter, RECEIVED worked out rather than counted, and WAITING.

        Each stored record leaves the spool exactly once, as forwarded, duplicate or dropped,
        so received = those + what waits: one write less on every POST. All are read in one
        transaction, so a batch leaving meanwhile is not counted twice or missed, and the
        figures of one scrape add up.
        """
        db = self._connection()
        db.execute("BEGIN")
        try:
            values = {(name, label): value for name, label, value in
                      db.execute("SELECT name, label, value FROM counters")}
            waiting = self._depth(db)
        finally:
            db.execute("COMMIT")
        left = sum(v for (name, _), v in values.items()
                   if name in c.LEFT_THE_SPOOL)
        values[(c.RECEIVED, "")] = left + waiting
        values[(c.WAITING, "")] = waiting
        return values

    def set_state(self, key: str, value: object) -> None:
        with self._transaction() as db:
            db.execute("INSERT INTO state (key, value) VALUES (?, ?) ON CONFLICT (key) "
                       "DO UPDATE SET value = excluded.value", (key, json.dumps(value)))

    def get_state(self, key: str) -> object:
        row = self._connection().execute(
            "SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None
