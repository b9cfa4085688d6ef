"""`ui-telemetry consume` against the real 3-node JetStream cluster: a consumer killed with
kill -9 mid-load and started again with --once leaves every record in the store exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nats.js.errors import NotFoundError

from relay.insight.report import usage
from relay.insight.store import opened

from ..nats_cluster import Cluster, run
from ..support import REPO, wait_for
from .test_report import TODAY, expected, generate

STREAM = "UI_TELEMETRY_USAGE"
SUBJECT = "ui.telemetry.usage"
DURABLE = "ui-telemetry-usage"

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    nodes = Cluster(tmp_path / "nats").start()
    nodes.add_stream(STREAM, SUBJECT)
    yield nodes
    nodes.stop()


def publish(cluster: Cluster, bodies: list[tuple[str, bytes]]) -> None:
    """Each (msg id, body) as one message, acknowledged by the stream."""
    async def send() -> None:
        import nats

        nc = await nats.connect(servers=[f"nats://{cluster.url.split(',')[0]}"])
        js = nc.jetstream(timeout=10)
        for start in range(0, len(bodies), 1000):
            acks = [js.publish(SUBJECT, body, headers={"Nats-Msg-Id": msg_id})
                    for msg_id, body in bodies[start:start + 1000]]
            await asyncio.gather(*acks)
        await nc.close()

    run(send(), timeout=120)


def consumer_state(cluster: Cluster) -> tuple[int, int, int]:
    """(delivered, pending, waiting for an ack) of the durable consumer."""
    async def info() -> tuple[int, int, int]:
        import nats

        nc = await nats.connect(servers=[f"nats://{cluster.url.split(',')[0]}"])
        try:
            i = await nc.jetstream().consumer_info(STREAM, DURABLE)
            return i.delivered.stream_seq, i.num_pending, i.num_ack_pending
        finally:
            await nc.close()

    return run(info())


def consume(cluster: Cluster, data_dir: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "RELAY_DATA_DIR": str(data_dir), "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "relay.serve.cli", "consume",
         f"nats://{cluster.url}/{SUBJECT}", "--ack-wait", "3", *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)


def test_a_consumer_killed_mid_load_and_restarted_counts_each_record_once(
        tmp_path: Path, cluster: Cluster) -> None:
    records = generate(400)
    bodies = [(r["event_id"], json.dumps(r).encode()) for r in records]
    # The same record under another message id (a relay that resent it after the stream's
    # duplicate window), and a message that is no record at all.
    again = [(f"{r['event_id']}-again", json.dumps(r).encode()) for r in records[:50]]
    junk = [("junk", b"not a record: secret@example.com"),
            ("junk-id", json.dumps({**records[0], "event_id": "not-a-uuid"}).encode()),
            ("junk-time", json.dumps({**records[1], "event_id": "7c0b1a52-4b0e-4a57-9d55-"
                                      "0b0f6a1e2c3d", "timestamp_ns": "noon"}).encode())]
    publish(cluster, bodies + again + junk)

    first = consume(cluster, tmp_path / "data", "--batch", "200")
    def well_into_the_stream() -> bool:
        assert first.poll() is None, first.communicate()
        try:
            return consumer_state(cluster)[0] >= 1500
        except NotFoundError:  # not made yet
            return False

    wait_for(well_into_the_stream, timeout=60, interval=0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(10)
    delivered, pending, unacked = consumer_state(cluster)
    assert pending + unacked > 0, "the consumer was to be killed in the middle of the stream"

    second = consume(cluster, tmp_path / "data", "--once", "--batch", "200")
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    assert "consumed" in out
    assert "secret@example.com" not in out + err
    assert consumer_state(cluster)[1:] == (0, 0)

    with opened(tmp_path / "data" / "usage.duckdb") as store:
        assert store.count() == len(records)
        figures = usage(store, weeks=6, min_installations=5, today=TODAY)
    want = expected(records, 6, 5)
    assert figures["totals"] == want["totals"]
    assert figures["components"] == want["components"]
    assert figures["weekly"] == want["weekly"]


def test_once_on_a_drained_stream_exits_at_once_and_a_wrong_subject_says_why(
        tmp_path: Path, cluster: Cluster) -> None:
    records = generate(20)
    publish(cluster, [(r["event_id"], json.dumps(r).encode()) for r in records])
    for _ in range(2):  # the second run finds nothing new
        done = consume(cluster, tmp_path / "data", "--once")
        out, err = done.communicate(timeout=60)
        assert done.returncode == 0, err
    assert "consumed 0 message(s)" in out
    with opened(tmp_path / "data" / "usage.duckdb") as store:
        assert store.count() == len(records)

    env: dict[str, Any] = {**os.environ, "RELAY_DATA_DIR": str(tmp_path / "data"),
                           "PYTHONPATH": str(REPO)}
    wrong = subprocess.run(
        [sys.executable, "-m", "relay.serve.cli", "consume", f"nats://{cluster.url}/no.such",
         "--once"], env=env, capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 2
    assert "no JetStream stream holds the subject 'no.such'" in wrong.stderr


def test_a_busy_consumer_still_lets_the_report_take_its_turn_at_the_store(
        tmp_path: Path) -> None:
    # `consume` holds the store for a turn of many batches; the relay's /usage and `report`
    # wait for the lock (up to a minute) and must get it between two turns.
    from relay.insight.consume import _Turns

    path = tmp_path / "usage.duckdb"
    turns = _Turns(path, hold=0.3)
    busy = threading.Event()
    batches = 0

    def consumer() -> None:  # a batch every 5 ms, as long as the test runs
        nonlocal batches
        while not busy.is_set():
            turns.store().count()
            batches += 1
            time.sleep(0.005)
        turns.release()

    worker = threading.Thread(target=consumer)
    worker.start()
    try:
        for _ in range(3):
            time.sleep(0.1)
            with opened(path, wait=5) as store:  # a report's turn
                assert store.count() == 0
    finally:
        busy.set()
        worker.join(10)
    assert batches > 20  # the consumer was busy meanwhile
