"""Why the spool keeps a row per POST and checks event ids in the forwarder. Prints figures.

    python bench/spool_designs.py [--requests 2000] [--known 300000]

Commits 20-record requests to a fresh SQLite file (WAL, synchronous=NORMAL, a checkpoint every
500 requests, as the forwarder takes one a second), after --known event ids were recorded:

1. a row per record, each id checked against a unique index on the way in (the first design);
2. a row per POST, no index: what relay/spool.py does, the forwarder skipping known ids.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

RECORD = "x" * 230  # about what relay.store.codec keeps for one record


def connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA wal_autocheckpoint=0")
    return db


def per_record(db: sqlite3.Connection, known: int) -> Callable[[list[str]], None]:
    db.executescript("""
        CREATE TABLE records (id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL,
                              received_at REAL NOT NULL, data TEXT NOT NULL);
        CREATE TABLE seen (event_id TEXT NOT NULL UNIQUE, seen_at REAL NOT NULL);
        CREATE TRIGGER records_seen AFTER INSERT ON records BEGIN
            INSERT INTO seen VALUES (NEW.event_id, NEW.received_at); END;""")
    db.execute("BEGIN")
    db.executemany("INSERT INTO seen VALUES (?, 0)", [(str(uuid.uuid4()),) for _ in range(known)])
    db.execute("COMMIT")

    def store(ids: list[str]) -> None:
        now = time.time()
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO records (event_id, received_at, data) SELECT ?1, ?2, ?3 "
                       "WHERE NOT EXISTS (SELECT 1 FROM seen WHERE event_id = ?1)",
                       [(i, now, RECORD) for i in ids])
        db.execute("COMMIT")
    return store


def per_post(db: sqlite3.Connection, known: int) -> Callable[[list[str]], None]:
    db.execute("CREATE TABLE batches (id INTEGER PRIMARY KEY AUTOINCREMENT, received_at REAL, "
               "n INTEGER, data TEXT)")

    def store(ids: list[str]) -> None:
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO batches (received_at, n, data) VALUES (?, ?, ?)",
                   (time.time(), len(ids), "\n".join(f"{i}\t{RECORD}" for i in ids)))
        db.execute("COMMIT")
    return store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--known", type=int, default=300_000)
    args = parser.parse_args()
    print(f"per 20-record request, {args.requests} requests, {args.known} ids known before:")
    for name, design in (("row per record + unique id index", per_record),
                         ("row per POST (relay/spool.py)", per_post)):
        db = connect(Path(tempfile.mkdtemp(prefix="spool-design-")) / "spool.sqlite3")
        store = design(db, args.known)
        requests = [[str(uuid.uuid4()) for _ in range(20)] for _ in range(args.requests)]
        t0 = time.perf_counter()
        for n, ids in enumerate(requests, 1):
            store(ids)
            if n % 500 == 0:
                db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        took = (time.perf_counter() - t0) / args.requests * 1e3
        print(f"   {name:34} {took:.3f} ms")
        db.close()


if __name__ == "__main__":
    main()
