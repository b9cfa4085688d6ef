"""A POST answered 200 survives kill -9 of the whole server."""

from __future__ import annotations

import http.client
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from relay.store.spool import Spool, SpoolFormatError

from ..support import CaptureUpstream, RelayServer, make_record, read_sink, wait_for


def test_acknowledged_records_survive_kill_9_file_sink(tmp_path: Path) -> None:
    data = tmp_path / "data"
    # A 1-hour flush interval: nothing is forwarded before the kill, all of it waits in the spool.
    srv = RelayServer(data, {"RELAY_FLUSH_INTERVAL": "1h"}).start()
    sent = []
    for _ in range(5):
        batch = [make_record() for _ in range(20)]
        status, body = srv.post({"records": batch})
        assert status == 200 and body["accepted"] == 20
        sent += [r["event_id"] for r in batch]
    srv.kill9()
    assert read_sink(data) == []
    srv = RelayServer(data, {"RELAY_FLUSH_INTERVAL": "0.2s"}).start()
    try:
        wait_for(lambda: len(read_sink(data)) >= len(sent))
        assert sorted(r["event_id"] for r in read_sink(data)) == sorted(sent)
    finally:
        srv.stop()


def test_kill_9_mid_load_with_failing_upstream_loses_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    upstream = CaptureUpstream(mode="every_other")
    env = {"RELAY_INGESTION_URL": upstream.url}
    srv = RelayServer(data, env, workers=2).start()
    acknowledged: list[str] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            batch = [make_record() for _ in range(20)]
            try:
                status, _ = srv.post({"records": batch})
            except (OSError, http.client.HTTPException):
                return  # the server died under this request: it was never acknowledged
            if status == 200:
                acknowledged.extend(r["event_id"] for r in batch)

    threads = [threading.Thread(target=client) for _ in range(3)]
    try:
        for t in threads:
            t.start()
        wait_for(lambda: len(acknowledged) >= 600)
        srv.kill9()  # while the clients are still posting
        stop.set()
        for t in threads:
            t.join(10)
        upstream.mode = "ok"
        srv = RelayServer(data, env, workers=2).start()
        wait_for(lambda: {d["event_id"] for d in upstream.data()} >= set(acknowledged),
                 timeout=60)
    finally:
        stop.set()
        srv.stop()
        upstream.close()


def test_a_spool_in_an_unknown_format_is_refused_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite3"
    Spool(path).store(['{"event_id":"7d0c1d3e-52c4-4b8e-a9a4-3f9f1c2d4e5f"}'])
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(SpoolFormatError, match="format 99.*until the spool is empty"):
        Spool(path)
    with sqlite3.connect(path) as db:  # refused, and left as it was
        assert db.execute("SELECT count(*) FROM batches").fetchone() == (1,)


def test_the_spool_full_check_is_exact_and_all_or_nothing_for_any_post(tmp_path: Path) -> None:
    # A POST without rejected records is one statement; one with some, or with more than a row
    # holds (500), is a transaction of several: both keep to the limit exactly.
    spool = Spool(tmp_path / "spool.sqlite3")
    rejected = [("rejected", "event_name", 1)]
    assert spool.store(["r"] * 3, limit=5)
    assert not spool.store(["r"] * 3, limit=5)
    assert not spool.store(["r"] * 3, rejected, limit=5)
    assert not spool.store(["r"] * 600, limit=600)
    assert spool.depth() == 3
    assert ("rejected", "event_name") not in spool.counters()  # a refused POST counts nothing
    assert spool.store(["r"], rejected, limit=5)
    assert spool.store(["r"], limit=5)
    assert not spool.store(["r"], limit=5)
    assert spool.store(["r"] * 600, limit=605)
    assert spool.store(["r"])  # no limit
    assert spool.depth() == 606
    assert spool.counters()[("rejected", "event_name")] == 1


def test_a_batch_removed_leaves_rows_stored_while_it_was_sent_even_after_ids_restart(
        tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite3")
    for round_ in range(2):  # the second round starts from an empty table: ids begin again
        spool.store([f"{round_}-a"] * 2)
        spool.store([f"{round_}-b"] * 3)
        batch = spool.peek(500)
        spool.store([f"{round_}-c"])  # arrives while the batch is being sent
        spool.remove(batch)
        assert spool.depth() == 1
        assert [r.data for r in spool.peek(500)] == [f"{round_}-c"]
        spool.remove(spool.peek(500))
        assert spool.depth() == 0 and spool.peek(500) == []


def test_the_wal_is_started_over_while_posts_keep_coming(tmp_path: Path) -> None:
    # SQLite starts the WAL over only when a checkpoint folded every frame, and a POST that
    # lands during a checkpoint used to prevent that each time: under steady load the file
    # grew by every byte ever written (2,000 POSTs of 20 records: about 50 MB).
    spool = Spool(tmp_path / "spool.sqlite3")
    wal = tmp_path / "spool.sqlite3-wal"
    record = "\t".join(["x" * 36] * 9)

    def post() -> None:
        spool.store([record] * 20)
        spool.remove(spool.peek(500))

    for _ in range(20):
        post()
    per_post = wal.stat().st_size / 20  # WAL bytes one POST writes
    spool.checkpoint()
    done = threading.Event()
    posted = 0
    # (WAL size, POSTs when the checkpoint before it started, POSTs when this one ended)
    samples: list[tuple[int, int, int]] = []

    def checkpoints() -> None:
        started = posted
        while not done.is_set():
            began = posted
            spool.checkpoint()
            samples.append((wal.stat().st_size, started, posted))
            started = began

    thread = threading.Thread(target=checkpoints)
    thread.start()
    deadline = time.monotonic() + 60
    try:
        # Writes go on while checkpoints run, for 2,000 POSTs and at least 20 checkpoints.
        while (posted < 2000 or len(samples) < 20) and time.monotonic() < deadline:
            post()
            posted += 1
    finally:
        done.set()
        thread.join()
    assert len(samples) >= 20
    # The file keeps its largest size. Started over at each checkpoint, that is at most what
    # was written between two checkpoints; never started over, it is every POST so far. The
    # bound follows the real gaps, so a busy machine's slow checkpoints do not fail it.
    widest = 20  # the calibration's POSTs
    for size, since, until in samples[1:]:
        widest = max(widest, until - since)
        assert size <= per_post * (widest + 10) * 2, \
            f"the WAL holds {size:,} bytes, {size / per_post:.0f} POSTs' worth, after " \
            f"{until} POSTs whose widest gap between checkpoints was {widest}"


def test_every_connection_runs_with_the_durability_settings(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite3")
    expected = {"journal_mode": "wal", "synchronous": 1, "busy_timeout": 30000,
                "wal_autocheckpoint": 0, "secure_delete": 0}  # synchronous 1 is NORMAL
    assert spool.settings() == expected
    seen: list[dict[str, object]] = []
    other = threading.Thread(target=lambda: seen.append(spool.settings()))
    other.start()
    other.join(10)
    assert seen == [expected]  # the forwarder's thread has a connection of its own
