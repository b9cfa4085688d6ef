"""The usage store: forwarded records in DuckDB, each event_id once.

DuckDB is columnar: the figures are aggregates over a few columns of many millions of rows. One
process writes a store at a time (DuckDB's rule); the file sink's JSONL is loaded incrementally:
the store keeps, in the same transaction as the rows, how far into which file it has read, so a
load killed midway leaves both as they were, and the next one reads only what is new.

The figures count distinct installations per week, component and event type. Counted from the
events, each report would scan every event again; so the events are also rolled up into
`weekly` (one row per week, installation, component, event type and version, with its count of
events), `weekly_components` (each installation once a week for each component it used) and
`weekly_sessions` (each session once a week), which the report reads: several times smaller
than the events (docs/insight.md has the figures). `rolled_up` says up to which row the
rollup holds the events; a file load brings it up to date, `consume` every ROLL_UP_EVERY
records, and the report always before it counts.

A line without its newline (the sink is writing it) is left for the next load. A file that was
rotated (another inode) or truncated (shorter than what was read) is read from its start again;
the event_id keeps what was loaded before from counting twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import duckdb

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    event_id UUID NOT NULL,  -- each once: see _INSERT
    timestamp_ns BIGINT NOT NULL,
    installation_id UUID NOT NULL,  -- see _INSERT
    session_id UUID NOT NULL,
    component_id VARCHAR NOT NULL,
    component_type VARCHAR NOT NULL,
    event_type VARCHAR NOT NULL,
    version VARCHAR
);
CREATE TABLE IF NOT EXISTS weekly (
    week DATE NOT NULL,  -- the Monday (UTC) of the event's ISO week
    installation_id UUID NOT NULL,
    component_id VARCHAR NOT NULL,
    component_type VARCHAR NOT NULL,
    event_type VARCHAR NOT NULL,
    version VARCHAR,
    events BIGINT NOT NULL  -- one row a key: a rollup adds to the counts of keys it finds
);
CREATE TABLE IF NOT EXISTS weekly_components (  -- who used what: one row a week each
    week DATE NOT NULL,
    component_id VARCHAR NOT NULL,
    component_type VARCHAR NOT NULL,
    installation_id UUID NOT NULL
);
CREATE TABLE IF NOT EXISTS weekly_sessions (week DATE NOT NULL, session_id UUID NOT NULL);
CREATE TABLE IF NOT EXISTS rolled_up (next_row BIGINT NOT NULL);  -- events' row id, or none: 0
CREATE TABLE IF NOT EXISTS loaded (
    source VARCHAR PRIMARY KEY,  -- a file's path
    identity VARCHAR NOT NULL,   -- its device and inode: another one means a rotated file
    offset_bytes BIGINT NOT NULL -- how far it was read, to the end of a whole line
);
"""

# DATA's fields as the JSONL holds them; params is a JSON string, as MLflow sends it. Each
# event_id once: a record already in the store, or twice in the file, is left out. An anti-join
# costs a scan of one column; a primary key would double the load's time and keep an index of
# every id in memory, which a store of hundreds of millions of rows cannot afford. It is safe
# because one process writes at a time (`opened`).
# The ids browsers make are UUIDs: kept as such (16 bytes, not 36 characters), they halve the
# time the figures take to count distinct installations. An id of another form
# (the schema allows 1 to 64 characters) is kept as the UUID of its MD5, which tells ids apart
# as well.
_INSERT = """
INSERT INTO events
SELECT event_id, any_value(timestamp_ns),
       any_value(coalesce(TRY_CAST(installation_id AS UUID), CAST(md5(installation_id) AS UUID))),
       any_value(coalesce(TRY_CAST(session_id AS UUID), CAST(md5(session_id) AS UUID))),
       any_value(fields[1]), any_value(fields[2]), any_value(fields[3]), any_value(version)
FROM (SELECT *,  -- params parsed once for its three fields
             json_extract_string(params, ['$.componentId', '$.componentType', '$.eventType'])
             AS fields
      FROM read_json(?, format = 'newline_delimited', columns = {
          event_id: 'UUID', timestamp_ns: 'BIGINT', installation_id: 'VARCHAR',
          session_id: 'VARCHAR', params: 'VARCHAR', version: 'VARCHAR'})) AS incoming
WHERE NOT EXISTS (SELECT 1 FROM events WHERE events.event_id = incoming.event_id)
GROUP BY event_id
"""

# The Monday (UTC) of a timestamp's ISO week: a macro of each connection, so that the load and
# the report count weeks alike.
_WEEK_OF = """CREATE OR REPLACE TEMP MACRO week_of(ns) AS
    CAST(date_trunc('week', CAST(make_timestamp(ns // 1000) AS DATE)) AS DATE)"""

# Events are only appended, by one writer at a time: the rows not yet rolled up are those from
# `rolled_up.next_row` ($start) to the last ($end). A key's count grows where the key is there
# already, and the key is added where not. New rows go in in week order, so that a rollup of
# recent records reads mostly the row groups of their own weeks ($since: the first of them).
_FRESH = """CREATE OR REPLACE TEMP TABLE fresh AS
    SELECT week_of(timestamp_ns) AS week, installation_id, component_id, component_type,
           event_type, version, count(*) AS events
    FROM events WHERE rowid >= $start AND rowid < $end GROUP BY ALL ORDER BY week"""
_ROLL_UP = [
    """MERGE INTO weekly AS w USING fresh AS f
       ON w.week >= $since AND w.week = f.week AND w.installation_id = f.installation_id
          AND w.component_id = f.component_id AND w.component_type = f.component_type
          AND w.event_type = f.event_type AND w.version IS NOT DISTINCT FROM f.version
       WHEN MATCHED THEN UPDATE SET events = w.events + f.events
       WHEN NOT MATCHED THEN INSERT BY NAME""",
    """INSERT INTO weekly_components SELECT * FROM (SELECT DISTINCT week, component_id,
       component_type, installation_id FROM fresh) AS f WHERE NOT EXISTS
       (SELECT 1 FROM weekly_components AS w
        WHERE w.week >= $since AND w.week = f.week AND w.component_id = f.component_id
          AND w.component_type = f.component_type AND w.installation_id = f.installation_id)
       ORDER BY week""",
    """INSERT INTO weekly_sessions SELECT * FROM (SELECT DISTINCT week_of(timestamp_ns) AS week,
       session_id FROM events WHERE rowid >= $start AND rowid < $end) AS f WHERE NOT EXISTS
       (SELECT 1 FROM weekly_sessions AS w
        WHERE w.week >= $since AND w.week = f.week AND w.session_id = f.session_id)
       ORDER BY week""",
    "DROP TABLE fresh",
    "DELETE FROM rolled_up",
    "INSERT INTO rolled_up VALUES ($end)",
]
ROLL_UP_EVERY = 50_000  # records of `consume`: a rollup costs about as much for 5,000 as for this


@contextmanager
def opened(path: Path, wait: float = 60.0) -> Iterator[UsageStore]:
    """The store at `path`, held by this process alone while the block runs.

    DuckDB lets one process open a file for writing, and no other process open it at all
    meanwhile: the relay's workers, `report` and `consume` take turns through a lock file
    beside it, each holding the store only for one load or one report (`consume`: a turn of
    batches of up to a second).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a+b") as lock:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the usage store {path} stayed busy for {wait:g} s "
                                       "(another report or consume holds it)") from None
                time.sleep(0.05)
        store = UsageStore(path)
        try:
            yield store
        finally:
            store.close()
            fcntl.flock(lock, fcntl.LOCK_UN)


class UsageStore:
    """One DuckDB file, open for writing: even the report writes, since it rolls up first."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = duckdb.connect(str(path))
        self.db.execute("SET enable_progress_bar = false")  # no output of its own
        self.db.execute(_WEEK_OF)
        had = {t for (t,) in self.db.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        self.db.execute(SCHEMA)  # a store made before the rollup gets it, from row 0
        if "weekly" in had and "weekly_components" not in had:
            # made when the rollup had no table of its own for components
            self.db.execute("INSERT INTO weekly_components SELECT DISTINCT week, component_id, "
                            "component_type, installation_id FROM weekly")

    def count(self) -> int:
        return self.db.execute("SELECT count(*) FROM events").fetchone()[0]

    def load_file(self, path: Path) -> int:
        """Load what is new in a JSONL file of DATA lines, and bring the rollup up to date;
        return how many new records."""
        added = self._load_file(path)
        self.roll_up()
        return added

    def _load_file(self, path: Path) -> int:
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            return 0
        identity = f"{stat.st_dev}:{stat.st_ino}"
        source = str(path.resolve())
        row = self.db.execute("SELECT identity, offset_bytes FROM loaded WHERE source = ?",
                              [source]).fetchone()
        start = row[1] if row and row[0] == identity and stat.st_size >= row[1] else 0
        with open(path, "rb") as f:
            end = _end_of_last_line(f, start, stat.st_size)  # a line being written waits
            if end == start:
                return 0
            mark = ("INSERT OR REPLACE INTO loaded VALUES (?, ?, ?)", [source, identity, end])
            if start == 0 and end == stat.st_size:
                # The whole file, read in place: a copy of gigabytes would cost more than the
                # load. Lines appended meanwhile may be read too, and are left out next time
                # by their event_id; a line caught half-written fails the read, and the range
                # is then read from a copy.
                with contextlib.suppress(duckdb.Error):
                    return self._insert(str(path), mark)
            # DuckDB reads files: a copy of the range that is whole, made by the kernel
            # (copy_file_range), without passing through Python.
            with tempfile.NamedTemporaryFile(suffix=".jsonl", dir=self.path.parent) as part:
                offset = start
                while offset < end:
                    done = os.copy_file_range(f.fileno(), part.fileno(), end - offset, offset)
                    if done == 0:
                        raise OSError(f"{path} became shorter while it was read")
                    offset += done
                return self._insert(part.name, mark)

    def load_lines(self, lines: bytes) -> int:
        """Insert whole DATA lines (each ending in a newline); return how many were new. The
        rollup waits for `roll_up`."""
        if not lines:
            return 0
        # read_json is DuckDB's fast parallel reader, and it reads files.
        with tempfile.NamedTemporaryFile(suffix=".jsonl", dir=self.path.parent) as part:
            part.write(lines)
            part.flush()
            return self._insert(part.name)

    def _insert(self, jsonl: str, also: tuple[str, list[object]] | None = None) -> int:
        """The records of a JSONL file, and `also`, in one transaction: both or neither."""
        with self._transaction():
            added = self.db.execute(_INSERT, [jsonl]).fetchone()[0]
            if also:
                self.db.execute(*also)
        return added

    def roll_up(self, at_least: int = 1) -> int:
        """Bring the rollup up to date when `at_least` events wait for it; return how many."""
        row = self.db.execute("SELECT next_row FROM rolled_up").fetchone()
        start = row[0] if row else 0
        end = self.db.execute("SELECT coalesce(max(rowid) + 1, 0) FROM events").fetchone()[0]
        if end - start < at_least:
            return 0
        with self._transaction():
            self.db.execute(_FRESH, {"start": start, "end": end})
            since = self.db.execute("SELECT min(week) FROM fresh").fetchone()[0]
            for sql in _ROLL_UP:
                self.db.execute(sql, bind(sql, {"start": start, "end": end, "since": since}))
        return end - start

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """Every statement of the block, or none."""
        self.db.execute("BEGIN TRANSACTION")
        try:
            yield
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.db.close()


def bind(sql: str, values: dict[str, Any]) -> dict[str, Any]:
    """The values that `sql` names as $name: DuckDB refuses a value the statement does not use.
    (No name may begin another one, as $week would begin $week_ns.)"""
    return {k: v for k, v in values.items() if f"${k}" in sql}


def _end_of_last_line(f: BinaryIO, start: int, size: int, chunk: int = 1 << 16) -> int:
    """The offset just past the last newline in [start, size), or start when there is none."""
    high = size
    while high > start:
        low = max(start, high - chunk)
        f.seek(low)
        at = f.read(high - low).rfind(b"\n")
        if at >= 0:
            return low + at + 1
        high = low
    return start
