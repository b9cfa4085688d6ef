"""The durable spool: SQLite in WAL mode, shared by every gunicorn worker.

A POST is acknowledged only after its records are committed here, so the commit is the ack.
Counters live in the same file, updated in the same transactions, so every worker's /metrics
tells the same story and nothing is counted for records that were not stored.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    received_at REAL NOT NULL,
    data TEXT NOT NULL
);
-- Rowids grow with time, so expiry walks from the front without an index on seen_at: an index
-- there cost a third of the time of every POST.
CREATE TABLE IF NOT EXISTS seen (
    event_id TEXT NOT NULL UNIQUE,
    seen_at REAL NOT NULL
);
-- Every stored record marks its event_id as seen, so a retried batch is not stored twice,
-- even after the first copy was forwarded and deleted.
CREATE TRIGGER IF NOT EXISTS records_seen AFTER INSERT ON records BEGIN
    INSERT INTO seen (event_id, seen_at) VALUES (NEW.event_id, NEW.received_at);
END;
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

Count = tuple[str, str, int]  # (counter name, label value, increment)


@dataclass(frozen=True)
class Waiting:
    id: int
    received_at: float
    data: str


class Spool:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connection().executescript(SCHEMA)  # IF NOT EXISTS: racing workers agree

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
            self._local.db = db
        return db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    @staticmethod
    def _count(db: sqlite3.Connection, counts: Iterable[Count]) -> None:
        db.executemany(
            "INSERT INTO counters (name, label, value) VALUES (?, ?, ?) "
            "ON CONFLICT (name, label) DO UPDATE SET value = value + excluded.value",
            [c for c in counts if c[2]],
        )

    def count(self, counts: Iterable[Count]) -> None:
        with self._transaction() as db:
            self._count(db, counts)

    def store(self, items: list[tuple[str, str]], counts: Iterable[Count] = ()) -> int:
        """Commit (event_id, data) pairs; an event_id seen before is skipped.

        Returns how many were new. Counters are updated in the same transaction.
        """
        now = time.time()
        with self._transaction() as db:
            # One statement for the batch; the trigger marks ids seen row by row, so a
            # duplicate inside the same batch is skipped too.
            new = db.executemany(
                "INSERT INTO records (event_id, received_at, data) SELECT ?1, ?2, ?3 "
                "WHERE NOT EXISTS (SELECT 1 FROM seen WHERE event_id = ?1)",
                [(event_id, now, data) for event_id, data in items]).rowcount
            self._count(db, [*counts, ("received", "", new),
                             ("duplicates", "", len(items) - new)])
        return new

    def depth_upper_bound(self) -> int:
        """An O(log n) bound on the backlog, cheap enough for every POST."""
        # Two scalar subqueries: SQLite answers a lone min() or max() from the b-tree's ends,
        # but "max(id) - min(id)" in one aggregate scans the whole table.
        row = self._connection().execute(
            "SELECT (SELECT max(id) FROM records) - (SELECT min(id) FROM records) + 1"
        ).fetchone()
        return row[0] or 0

    def depth(self) -> int:
        return self._connection().execute("SELECT count(*) FROM records").fetchone()[0]

    def oldest(self) -> float | None:
        row = self._connection().execute(
            "SELECT received_at FROM records ORDER BY id LIMIT 1").fetchone()
        return row[0] if row else None

    def peek(self, limit: int) -> list[Waiting]:
        rows = self._connection().execute(
            "SELECT id, received_at, data FROM records ORDER BY id LIMIT ?", (limit,))
        return [Waiting(*row) for row in rows]

    def last(self, limit: int) -> list[Waiting]:
        rows = self._connection().execute(
            "SELECT id, received_at, data FROM records ORDER BY id DESC LIMIT ?", (limit,))
        return [Waiting(*row) for row in rows][::-1]

    def has_at_least(self, n: int) -> bool:
        return self._connection().execute(
            "SELECT 1 FROM records ORDER BY id LIMIT 1 OFFSET ?", (n - 1,)).fetchone() is not None

    def remove(self, batch: list[Waiting], counts: Iterable[Count] = ()) -> None:
        """Forget a batch from peek() that was delivered (or given up on), counting why.

        peek() returns the lowest ids, and new rows only get higher ones (AUTOINCREMENT), so
        the batch is exactly the rows between its first and last id: one range delete.
        """
        with self._transaction() as db:
            db.execute("DELETE FROM records WHERE id BETWEEN ? AND ?", (batch[0].id, batch[-1].id))
            self._count(db, counts)

    def checkpoint(self) -> None:
        """Fold the WAL into the database; readers are never blocked (PASSIVE)."""
        self._connection().execute("PRAGMA wal_checkpoint(PASSIVE)")

    def expire(self, max_age: float) -> int:
        """Drop records waiting longer than max_age, and forget event ids a little later."""
        now = time.time()
        with self._transaction() as db:
            dropped = db.execute("DELETE FROM records WHERE received_at < ?",
                                 (now - max_age,)).rowcount
            # A browser retries for at most the 7-day timestamp window: keep ids a day longer.
            # min(rowid) with a WHERE stops at the first young row: only the expired prefix
            # is read.
            db.execute(
                "DELETE FROM seen WHERE rowid < coalesce("
                "(SELECT min(rowid) FROM seen WHERE seen_at >= ?), "
                "(SELECT max(rowid) + 1 FROM seen))",
                (now - max(max_age, 7 * 86400) - 86400,))
            self._count(db, [("dropped", "expired", dropped)])
        return dropped

    def counters(self) -> dict[tuple[str, str], int]:
        rows = self._connection().execute("SELECT name, label, value FROM counters")
        return {(name, label): value for name, label, value in rows}

    def set_state(self, key: str, value: object) -> None:
        with self._transaction() as db:
            db.execute("INSERT INTO state (key, value) VALUES (?, ?) ON CONFLICT (key) "
                       "DO UPDATE SET value = excluded.value", (key, json.dumps(value)))

    def get_state(self, key: str) -> object:
        row = self._connection().execute(
            "SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None
