"""Several gunicorn workers: each record forwarded once; SIGTERM drains the spool."""

from __future__ import annotations

import os
import signal
import threading
import urllib.request
from collections import Counter
from pathlib import Path

from ..support import CaptureUpstream, RelayServer, make_record, wait_for


def test_four_workers_forward_each_record_once(tmp_path: Path) -> None:
    upstream = CaptureUpstream()
    srv = RelayServer(tmp_path / "data", {"RELAY_INGESTION_URL": upstream.url,
                                          "RELAY_FLUSH_INTERVAL": "0.1s"}, workers=4).start()
    sent: list[str] = []
    lock = threading.Lock()

    def client() -> None:
        for _ in range(25):
            batch = [make_record() for _ in range(20)]
            status, body = srv.post({"records": batch})
            assert status == 200 and body["accepted"] == 20
            with lock:
                sent.extend(r["event_id"] for r in batch)

    try:
        threads = [threading.Thread(target=client) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert len(sent) == 4000
        wait_for(lambda: len(upstream.data()) >= 4000, timeout=60)
        counts = Counter(d["event_id"] for d in upstream.data())
        assert set(counts) == set(sent)
        assert max(counts.values()) == 1, "a record was delivered twice"
    finally:
        srv.stop()
        upstream.close()


def test_sigterm_drains_within_the_graceful_timeout(tmp_path: Path) -> None:
    upstream = CaptureUpstream()
    srv = RelayServer(tmp_path / "data", {"RELAY_INGESTION_URL": upstream.url,
                                          "RELAY_FLUSH_INTERVAL": "1h"}, workers=2).start()
    sent = []
    for _ in range(9):  # 450 records: under one upstream batch, so nothing is due before SIGTERM
        batch = [make_record() for _ in range(50)]
        assert srv.post({"records": batch})[0] == 200
        sent += [r["event_id"] for r in batch]
    with urllib.request.urlopen(srv.base + "/metrics", timeout=10) as resp:
        assert "ui_telemetry_spool_depth 450.0" in resp.read().decode()
    assert upstream.data() == []  # the interval is an hour: all of it still waits
    proc = srv.proc
    os.killpg(proc.pid, signal.SIGTERM)  # type: ignore[union-attr]
    proc.wait(30)  # type: ignore[union-attr]
    assert sorted(d["event_id"] for d in upstream.data()) == sorted(sent)
    upstream.close()
