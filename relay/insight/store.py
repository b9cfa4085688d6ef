"""The usage store: forwarded records in DuckDB, each event_id once.

DuckDB is columnar: the figures are aggregates over a few columns of many millions of rows. One
process writes a store at a time (DuckDB's rule); the file sink's JSONL is loaded incrementally:
the store keeps, in the same transaction as the rows, how far into which file it has read, so a
load killed midway leaves both as they were, and the next one reads only what is new. A line
without its newline (the sink is writing it) is left for the next load. A file that was rotated
(another inode) or truncated (shorter than what was read) is read from its start again; the
event_id keeps what was loaded before from counting twice.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    event_id UUID PRIMARY KEY,
    timestamp_ns BIGINT NOT NULL,
    installation_id VARCHAR NOT NULL,
    session_id VARCHAR NOT NULL,
    component_id VARCHAR NOT NULL,
    component_type VARCHAR NOT NULL,
    event_type VARCHAR NOT NULL,
    version VARCHAR
);
CREATE TABLE IF NOT EXISTS loaded (
    source VARCHAR PRIMARY KEY,  -- a file's path
    identity VARCHAR NOT NULL,   -- its device and inode: another one means a rotated file
    offset_bytes BIGINT NOT NULL -- how far it was read, to the end of a whole line
);
"""

# DATA's fields as the JSONL holds them; params is a JSON string, as MLflow sends it.
_INSERT = """
INSERT OR IGNORE INTO events
SELECT event_id, timestamp_ns, installation_id, session_id,
       json_extract_string(params, '$.componentId'),
       json_extract_string(params, '$.componentType'),
       json_extract_string(params, '$.eventType'),
       version
FROM read_json(?, format = 'newline_delimited', columns = {
    event_id: 'UUID', timestamp_ns: 'BIGINT', installation_id: 'VARCHAR',
    session_id: 'VARCHAR', params: 'VARCHAR', version: 'VARCHAR'})
"""


@contextmanager
def opened(path: Path, read_only: bool = False, wait: float = 60.0) -> Iterator[UsageStore]:
    """The store at `path`, held by this process alone while the block runs.

    DuckDB lets one process open a file for writing, and no other process open it at all
    meanwhile: the relay's workers, `report` and `consume` take turns through a lock file
    beside it, each holding the store only for one load or one report.
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
        store = UsageStore(path, read_only=read_only)
        try:
            yield store
        finally:
            store.close()
            fcntl.flock(lock, fcntl.LOCK_UN)


class UsageStore:
    """One DuckDB file; `read_only` for a reader beside the one writer."""

    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path = path
        if not read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.db = duckdb.connect(str(path), read_only=read_only)
        if not read_only:
            self.db.execute(SCHEMA)

    def count(self) -> int:
        return self.db.execute("SELECT count(*) FROM events").fetchone()[0]

    def load_file(self, path: Path) -> int:
        """Load what is new in a JSONL file of DATA lines; return how many lines were read."""
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
            f.seek(start)
            data = f.read()
        whole = data[:data.rfind(b"\n") + 1]  # a line still being written waits
        self.load_lines(whole, ("INSERT OR REPLACE INTO loaded VALUES (?, ?, ?)",
                                [source, identity, start + len(whole)]))
        return whole.count(b"\n")

    def load_lines(self, lines: bytes, also: tuple[str, list[object]] | None = None) -> None:
        """Insert whole DATA lines (each ending in a newline), and run `also` in the same
        transaction: both are committed, or neither."""
        if not lines:
            return
        # read_json is DuckDB's fast parallel reader, and it reads files.
        with tempfile.NamedTemporaryFile(suffix=".jsonl", dir=self.path.parent) as part:
            part.write(lines)
            part.flush()
            self.db.execute("BEGIN TRANSACTION")
            try:
                self.db.execute(_INSERT, [part.name])
                if also:
                    self.db.execute(*also)
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        self.db.close()
