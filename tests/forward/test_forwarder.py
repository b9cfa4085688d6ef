"""Delivery to a real HTTP upstream on 127.0.0.1, through every failure mode it can have."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from relay.forward.forwarder import Backoff
from relay.forward.http import HttpSink
from relay.serve.extension import relay_of
from relay.store.codec import keys_of, pack
from relay.store.seen import REMEMBER_SECONDS, SeenIds
from relay.store.spool import Spool

from ..conftest import build_app
from ..support import ENDPOINT, CaptureUpstream, ConfigServer, make_record, wait_for


def relay(app: Flask):
    return relay_of(app)


def post(app: Flask, n: int) -> list[str]:
    records = [make_record() for _ in range(n)]
    resp = app.test_client().post(ENDPOINT, json={"records": records})
    assert resp.status_code == 200 and resp.get_json()["accepted"] == n
    return [r["event_id"] for r in records]


def metric(app: Flask, line_start: str) -> float:
    text = app.test_client().get("/metrics").get_data(as_text=True)
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture
def running(tmp_path: Path, upstream: CaptureUpstream) -> Iterator[Flask]:
    app = build_app(tmp_path / "data", {"RELAY_INGESTION_URL": upstream.url,
                                         "RELAY_FLUSH_INTERVAL": "0.1s",
                                         "RELAY_UPSTREAM_TIMEOUT": "0.5s"})
    relay(app).forwarder.start()
    yield app
    relay(app).forwarder.stop()


def test_start_is_a_no_op_while_running_and_a_forked_child_starts_its_own(
        running: Flask) -> None:
    forwarder = relay(running).forwarder

    def threads() -> int:
        return sum(t.name == "ui-telemetry-forwarder" for t in threading.enumerate())
    assert forwarder.running and threads() == 1
    forwarder.start()  # every request calls it
    assert forwarder.running and threads() == 1
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # a gunicorn worker forked from a master that had started one (--preload)
        try:
            before = forwarder.running  # a thread does not survive a fork
            forwarder.start()
            mine = not before and forwarder.running and threads() == 1
            os.write(write, b"1" if mine else b"0")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    os.close(read)
    os.close(write)


def delivered(upstream: CaptureUpstream) -> list[str]:
    return [d["event_id"] for d in upstream.data()]


def test_healthy_upstream_gets_mlflow_format_in_batches_of_at_most_500(
        running: Flask, upstream: CaptureUpstream) -> None:
    sent = post(running, 1000) + post(running, 200)
    wait_for(lambda: len(delivered(upstream)) == 1200)
    assert sorted(delivered(upstream)) == sorted(sent)
    assert max(len(c.body["records"]) for c in upstream.requests) == 500
    assert metric(running, "ui_telemetry_records_forwarded_total") == 1200
    assert metric(running, "ui_telemetry_spool_depth") == 0


def test_500_records_are_sent_at_once_fewer_wait_for_the_interval(
        tmp_path: Path, upstream: CaptureUpstream) -> None:
    app = build_app(tmp_path, {"RELAY_INGESTION_URL": upstream.url,
                               "RELAY_FLUSH_INTERVAL": "1h"})
    relay(app).forwarder.start()
    try:
        post(app, 499)
        time.sleep(1.5)
        assert upstream.requests == []
        post(app, 1)
        wait_for(lambda: len(delivered(upstream)) == 500, timeout=5)
    finally:
        relay(app).forwarder.stop()


@pytest.mark.parametrize("mode", ["fail500", "throttle", "hang", "every_other", "refused"])
def test_nothing_acknowledged_is_lost_through_an_outage(
        tmp_path: Path, upstream: CaptureUpstream, mode: str) -> None:
    app = build_app(tmp_path, {"RELAY_INGESTION_URL": upstream.url,
                               "RELAY_FLUSH_INTERVAL": "0.1s", "RELAY_UPSTREAM_TIMEOUT": "0.5s"})
    port = upstream.server.server_address[1]
    if mode == "refused":
        upstream.close()  # nothing listens on the port now: connections are refused
    upstream.mode = mode
    upstream.hang_seconds = 2
    r = relay(app)
    r.forwarder.start()
    try:
        sent = []
        for _ in range(5):  # ingest keeps answering throughout
            sent += post(app, 20)
            time.sleep(0.2)
        if mode != "every_other":
            kind = {"fail500": "http_500", "throttle": "http_429", "hang": "timeout",
                    "refused": "refused"}[mode]
            wait_for(lambda: metric(app, f'ui_telemetry_upstream_errors_total{{kind="{kind}"}}'))
            assert r.spool.depth() > 0
            if mode == "refused":
                upstream = CaptureUpstream(port=port)  # the upstream comes back
            upstream.mode = "ok"
        wait_for(lambda: set(delivered(upstream)) >= set(sent), timeout=40)
        wait_for(lambda: r.spool.depth() == 0)
    finally:
        r.forwarder.stop()
        upstream.close()


def test_retry_after_is_honoured(tmp_path: Path, upstream: CaptureUpstream) -> None:
    app = build_app(tmp_path, {"RELAY_INGESTION_URL": upstream.url,
                               "RELAY_FLUSH_INTERVAL": "0.05s"})
    upstream.mode = "throttle"
    upstream.retry_after = 3
    r = relay(app)
    post(app, 5)
    r.forwarder.step(force=True)
    assert upstream.attempts == 1
    upstream.mode = "ok"
    r.forwarder.start()
    try:
        time.sleep(2.0)
        assert upstream.attempts == 1, "retried before Retry-After"
        wait_for(lambda: upstream.attempts == 2, timeout=5)
    finally:
        r.forwarder.stop()


def test_backoff_schedule_doubles_to_60_s_with_jitter() -> None:
    top = Backoff(rng=lambda: 0.999999)
    assert [round(top.next_delay()) for _ in range(9)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    bottom = Backoff(rng=lambda: 0.0)
    assert [bottom.next_delay() for _ in range(3)] == [0.5, 1.0, 2.0]
    assert Backoff().next_delay(retry_after=7) == 7


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_stop_statuses_pause_until_the_config_is_refreshed(
        tmp_path: Path, upstream: CaptureUpstream, status: int) -> None:
    app = build_app(tmp_path, {"RELAY_INGESTION_URL": upstream.url,
                               "RELAY_FLUSH_INTERVAL": "0.05s"}, config_retry_seconds=1.5)
    upstream.mode = f"status:{status}"
    r = relay(app)
    sent = post(app, 10)
    r.forwarder.start()
    try:
        wait_for(lambda: upstream.attempts == 1)
        time.sleep(1.0)
        assert upstream.attempts == 1, "kept sending after a stop status"
        assert r.spool.depth() == 10, "the spool is kept"
        upstream.mode = "ok"
        wait_for(lambda: sorted(delivered(upstream)) == sorted(sent), timeout=5)
    finally:
        r.forwarder.stop()


def test_other_4xx_drop_the_batch_and_count_it(tmp_path: Path,
                                               upstream: CaptureUpstream) -> None:
    app = build_app(tmp_path, {"RELAY_INGESTION_URL": upstream.url})
    upstream.mode = "status:422"
    post(app, 3)
    relay(app).forwarder.step(force=True)
    assert relay(app).spool.depth() == 0
    assert metric(app, 'ui_telemetry_records_dropped_total{reason="upstream_rejected"}') == 3


def test_records_older_than_max_age_are_dropped_and_counted(tmp_path: Path) -> None:
    app = build_app(tmp_path, {"RELAY_INGESTION_URL": "http://127.0.0.1:9/down",
                               "RELAY_SPOOL_MAX_AGE": "1s"})
    post(app, 4)
    time.sleep(1.2)
    relay(app).forwarder.step()
    assert relay(app).spool.depth() == 0
    assert metric(app, 'ui_telemetry_records_dropped_total{reason="expired"}') == 4


def test_forwarder_holds_while_telemetry_is_off(tmp_path: Path, upstream: CaptureUpstream,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    app = build_app(tmp_path, {"RELAY_INGESTION_URL": upstream.url})
    post(app, 3)
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    relay(app).forwarder.step(force=True)
    assert upstream.attempts == 0 and relay(app).spool.depth() == 3
    monkeypatch.delenv("DO_NOT_TRACK")
    relay(app).forwarder.step(force=True)
    assert len(delivered(upstream)) == 3


def test_ingest_latency_is_unaffected_by_a_hanging_upstream(
        tmp_path: Path, upstream: CaptureUpstream) -> None:
    app = build_app(tmp_path, {"RELAY_INGESTION_URL": upstream.url,
                               "RELAY_FLUSH_INTERVAL": "0.05s", "RELAY_UPSTREAM_TIMEOUT": "3s"})
    upstream.mode = "hang"
    r = relay(app)
    post(app, 5)
    r.forwarder.start()
    try:
        wait_for(lambda: upstream.attempts >= 1)
        done = threading.Event()

        def ingest() -> None:
            post(app, 20)
            done.set()

        threading.Thread(target=ingest).start()
        assert done.wait(2.0), "a POST waited for the hanging upstream"
    finally:
        upstream.mode = "ok"
        r.forwarder.stop()


def test_sigterm_style_stop_drains_the_spool(tmp_path: Path, upstream: CaptureUpstream) -> None:
    app = build_app(tmp_path, {"RELAY_INGESTION_URL": upstream.url,
                               "RELAY_FLUSH_INTERVAL": "1h"})
    r = relay(app)
    r.forwarder.start()
    sent = post(app, 600) + post(app, 600)
    time.sleep(0.5)
    r.forwarder.stop(drain_seconds=10)
    assert sorted(delivered(upstream)) == sorted(sent)


def test_upstream_request_has_only_allowed_headers(running: Flask,
                                                   upstream: CaptureUpstream) -> None:
    post(running, 2)
    wait_for(lambda: upstream.requests)
    headers = {h.lower() for h in upstream.requests[0].headers}
    assert headers <= {"content-type", "content-length", "host", "user-agent", "accept",
                       "accept-encoding", "connection"}
    body = upstream.requests[0].body
    assert json.loads(body["records"][0]["data"]["params"])["eventType"] == "onClick"


def test_delivered_ids_are_forgotten_after_the_retention_window(tmp_path: Path) -> None:
    app = build_app(tmp_path)
    spool = relay(app).spool
    old, new = str(uuid.uuid4()), str(uuid.uuid4())
    for event_id in (old, new):
        spool.store([f'{{"event_id":"{event_id}"}}'])
        spool.remove(spool.peek(1), delivered=pack([keys_of([event_id])[0]]))
    with sqlite3.connect(spool.path) as db:  # the first delivery happened 9 days ago
        db.execute("UPDATE delivered SET at = at - 9 * 86400 WHERE id = 1")
    spool.expire(7 * 86400, REMEMBER_SECONDS)
    seen = SeenIds()
    seen.load(spool)
    assert keys_of([new])[0] in seen and keys_of([old])[0] not in seen


def test_delivered_ids_on_disk_are_trimmed_to_what_a_new_leader_reads(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite3")
    batches = [[keys_of([str(uuid.uuid4())])[0] for _ in range(size)] for size in (3, 2, 2, 1)]
    for batch in batches:
        spool.store(["x"])
        spool.remove(spool.peek(1), delivered=pack(batch))
    before = SeenIds(max_ids=4)
    before.load(spool)
    spool.expire(7 * 86400, REMEMBER_SECONDS, max_ids=4)
    # The newest rows up to 4 ids (1 + 2), and the one that reaches past them (2): the rest
    # could never be loaded again.
    assert [len(blob) // 16 for _, blob in spool.delivered_since(0, 100)] == [1, 2, 2]
    after = SeenIds(max_ids=4)
    after.load(spool)
    every = [k for batch in batches for k in batch]
    assert {k for k in every if k in after} == {k for k in every if k in before} \
        == set(batches[2] + batches[3])
    spool.expire(7 * 86400, REMEMBER_SECONDS, max_ids=100)
    assert len(list(spool.delivered_since(0, 100))) == 3


def test_memory_for_delivered_ids_is_bounded() -> None:
    seen = SeenIds(max_ids=4)
    batches = [[keys_of([str(uuid.uuid4())])[0] for _ in range(2)] for _ in range(3)]
    for batch in batches:
        seen.add(batch)
    # The oldest batch went first; the newest ids are the ones a retry most likely repeats.
    assert len(seen) == 4
    assert all(k not in seen for k in batches[0])
    assert all(k in seen for k in batches[1] + batches[2])


def test_a_failing_step_is_retried_with_backoff_and_never_ends_the_thread(
        tmp_path: Path, upstream: CaptureUpstream) -> None:
    # What one start in a dozen met under load: the checkpoint found the table locked, and
    # noting that error failed as well.
    app = build_app(tmp_path / "data", {"RELAY_INGESTION_URL": upstream.url,
                                         "RELAY_FLUSH_INTERVAL": "0.1s"})
    spool = relay(app).spool
    failed = []
    checkpoint, set_state = spool.checkpoint, spool.set_state

    def locked() -> None:
        if len(failed) < 3:
            failed.append("checkpoint")
            raise sqlite3.OperationalError("database table is locked")
        checkpoint()

    def cannot_note(key: str, value: object) -> None:
        if key == "last_error" and len(failed) < 3:
            raise sqlite3.OperationalError("cannot start a transaction within a transaction")
        set_state(key, value)

    spool.checkpoint = locked  # type: ignore[method-assign]
    spool.set_state = cannot_note  # type: ignore[method-assign]
    forwarder = relay(app).forwarder
    forwarder.start()
    try:
        ids = post(app, 5)
        wait_for(lambda: sorted(delivered(upstream)) == sorted(ids), timeout=30)
        assert failed == ["checkpoint"] * 3
        assert forwarder.running
        assert app.test_client().get("/health").get_json()["forwarder"] == "running"
    finally:
        forwarder.stop()


def test_a_sink_whose_url_the_config_replaces_is_closed(tmp_path: Path) -> None:
    first, second = CaptureUpstream(), CaptureUpstream()
    config = ConfigServer({"ingestion_url": first.url})
    closed: list[str] = []

    class Recorded(HttpSink):
        def close(self) -> None:
            closed.append(self.url)

    app = build_app(tmp_path / "data", {"RELAY_CONFIG_URL": config.url},
                    config_cache_seconds=0.2)
    forwarder = relay(app).forwarder
    forwarder.sink_factory = Recorded
    try:
        post(app, 3)
        forwarder.step(force=True)
        assert len(first.data()) == 3 and closed == []
        config.payload = {"ingestion_url": second.url}
        time.sleep(0.3)  # the cached config expires
        post(app, 2)
        forwarder.step(force=True)
        assert len(second.data()) == 2
        assert closed == [first.url]  # the first sink was closed when it was replaced
        forwarder.stop()
        assert closed == [first.url, second.url]  # and the last one when the forwarder stops
    finally:
        config.close()
        first.close()
        second.close()
