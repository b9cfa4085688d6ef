"""The JetStream sink against a real 3-node cluster on 127.0.0.1 with an R3 stream, and real
`ui-telemetry serve` relays: every acknowledged record in the stream exactly once, through node,
relay and whole-cluster failures."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.control.config import ConfigError, load_config
from relay.forward.base import Action
from relay.forward.nats import NatsSink
from relay.store.codec import StoredRecord

from ..nats_cluster import Cluster
from ..support import REPO, RelayServer, make_record, wait_for

STREAM = "UI_TELEMETRY"
SUBJECT = "ui.telemetry"
DATA_FIELDS = {"event_id", "event_name", "timestamp_ns", "params", "status", "duration_ms",
               "installation_id", "session_id", "server_installation_id", "source_sdk",
               "version", "schema_version", "python_version", "operating_system"}

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    nodes = Cluster(tmp_path / "nats").start()
    yield nodes
    nodes.stop()


def relay(tmp_path: Path, cluster: Cluster, name: str = "relay",
          subject: str = SUBJECT) -> RelayServer:
    return RelayServer(tmp_path / name, {
        "RELAY_INGESTION_URL": f"nats://{cluster.url}/{subject}",
        "RELAY_UPSTREAM_TIMEOUT": "3s"}, workers=2)


class Load:
    """Posts batches of 20 records from a thread, bounded in count and time; keeps the
    event_ids of every record a relay acknowledged (200, accepted), and says what the others
    got, so that a failing test tells why."""

    def __init__(self, servers: list[RelayServer], batches: int, pause: float = 0.01) -> None:
        self.acked: list[str] = []
        self.refused: Counter[str] = Counter()
        self.slowest = 0.0
        self._servers = servers
        self._batches = batches
        self._pause = pause
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Load:
        self.thread.start()
        return self

    def _run(self) -> None:
        deadline = time.monotonic() + 120
        for i in range(self._batches):
            if time.monotonic() > deadline:
                break
            server = self._servers[i % len(self._servers)]
            records = [make_record() for _ in range(20)]
            began = time.monotonic()
            try:
                status, body = server.post({"records": records})
            except Exception as err:  # noqa: BLE001 - counted and said, never a dead thread
                status, body = 0, {"error": type(err).__name__}
            self.slowest = max(self.slowest, time.monotonic() - began)
            if status == 200 and body.get("accepted") == 20:
                self.acked += [r["event_id"] for r in records]
            else:
                self.refused[f"{status} {body.get('error') or body}"[:200]] += 1
            time.sleep(self._pause)

    def until_acked(self, count: int, timeout: float = 90) -> None:
        """Wait until `count` records are acknowledged (mid-load, for a fault to strike)."""
        wait_for(lambda: len(self.acked) >= count or not self.thread.is_alive(),
                 timeout=timeout)
        assert len(self.acked) >= count, self.describe()

    def join(self) -> None:
        self.thread.join(150)
        assert not self.thread.is_alive(), self.describe()

    def describe(self) -> str:
        return (f"{len(self.acked)} records acknowledged, slowest answer {self.slowest:.1f} s,"
                f" refused: {dict(self.refused) or 'none'}; relay log: "
                + " | ".join(s.logs()[-1500:] for s in self._servers))


def assert_exactly_once(cluster: Cluster, acked: list[str]) -> None:
    wait_for(lambda: cluster.count(STREAM) >= len(acked), timeout=150, interval=0.5)
    messages = cluster.messages(STREAM, SUBJECT)
    ids = [m["msg_id"] for m in messages]
    assert len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} duplicates in the stream"
    assert set(acked) <= set(ids), f"{len(set(acked) - set(ids))} acknowledged records lost"
    for m in messages:
        assert set(m["data"]) == DATA_FIELDS
        assert m["data"]["event_id"] == m["msg_id"]
        assert set(m["headers"]) == {"Nats-Msg-Id"}  # nothing else rides along


def test_healthy_every_acknowledged_record_is_in_the_stream_once(tmp_path: Path,
                                                                   cluster: Cluster) -> None:
    cluster.add_stream(STREAM, SUBJECT)
    server = relay(tmp_path, cluster).start()
    try:
        load = Load([server], 50).start()
        load.join()
        assert len(load.acked) == 1000, load.describe()
        assert_exactly_once(cluster, load.acked)
        messages = cluster.messages(STREAM, SUBJECT)
        assert len(messages) == 1000
        assert json.loads(messages[0]["data"]["params"])["componentType"] == "button"
    finally:
        server.stop()


def test_a_node_killed_mid_load_loses_and_repeats_nothing(tmp_path: Path,
                                                          cluster: Cluster) -> None:
    cluster.add_stream(STREAM, SUBJECT)
    server = relay(tmp_path, cluster).start()
    try:
        load = Load([server], 150, pause=0.02).start()
        load.until_acked(400)
        cluster.kill9(0)  # the other two keep the R3 stream's quorum
        load.join()
        assert not load.refused, f"ingest kept answering: {load.describe()}"
        assert_exactly_once(cluster, load.acked)
    finally:
        server.stop()


def test_a_relay_killed_mid_load_and_restarted_loses_and_repeats_nothing(
        tmp_path: Path, cluster: Cluster) -> None:
    cluster.add_stream(STREAM, SUBJECT)
    server = relay(tmp_path, cluster).start()
    try:
        first = Load([server], 100, pause=0.005).start()
        first.until_acked(600)
        server.kill9()
        first.join()
        server.start()  # the same data dir: its spool holds what was not yet acknowledged
        second = Load([server], 20).start()
        second.join()
        assert_exactly_once(cluster, first.acked + second.acked)
    finally:
        server.stop()


def test_the_whole_cluster_down_then_back_loses_nothing_and_ingest_answers(
        tmp_path: Path, cluster: Cluster) -> None:
    cluster.add_stream(STREAM, SUBJECT)
    server = relay(tmp_path, cluster).start()
    try:
        load = Load([server], 120, pause=0.03).start()
        load.until_acked(300)
        cluster.kill9()
        time.sleep(3)
        waiting = json.loads(status(server))["spool_depth"]
        cluster.start()
        load.join()
        assert not load.refused, f"ingest answered throughout: {load.describe()}"
        assert waiting > 0, "records waited in the spool while the cluster was down"
        assert_exactly_once(cluster, load.acked)
    finally:
        server.stop()


def test_a_subject_without_a_stream_is_said_in_words_and_held(tmp_path: Path,
                                                              cluster: Cluster) -> None:
    server = relay(tmp_path, cluster).start()
    try:
        load = Load([server], 5).start()
        load.join()
        report = json.loads(status(server))
        assert "no JetStream stream captures the subject 'ui.telemetry'" in \
            report["upstream_problem"]
        wait_for(lambda: "no JetStream stream" in (json.loads(status(server))
                                                   ["last_delivery_error"] or {}).get(
            "detail", ""), timeout=30)
        assert json.loads(status(server))["spool_depth"] == 100  # held, not dropped
        text = status(server, "--no-json")
        assert "upstream check: no JetStream stream captures" in text
        cluster.add_stream(STREAM, SUBJECT)
        assert_exactly_once(cluster, load.acked)
        assert json.loads(status(server))["upstream_problem"] is None
    finally:
        server.stop()


def test_two_relays_feed_one_stream_every_record_once(tmp_path: Path, cluster: Cluster) -> None:
    cluster.add_stream(STREAM, SUBJECT)
    one = relay(tmp_path, cluster, "one").start()
    two = relay(tmp_path, cluster, "two").start()
    try:
        load = Load([one, two], 60).start()
        load.join()
        assert len(load.acked) == 1200, load.describe()
        assert_exactly_once(cluster, load.acked)
        assert cluster.count(STREAM) == 1200
        installations = {m["data"]["server_installation_id"]
                         for m in cluster.messages(STREAM, SUBJECT)}
        assert len(installations) == 2  # each relay with its own data dir and id
    finally:
        one.stop()
        two.stop()


def stored_records(n: int) -> list[StoredRecord]:
    """n records as the spool hands them to a sink."""
    ids = [f"{i:08d}-{time.time_ns()}" for i in range(n)]
    return [StoredRecord(i, k, json.dumps({"event_id": i, "event_name": "ui_event"}))
            for k, i in enumerate(ids)]


@contextlib.contextmanager
def connected_sink(cluster: Cluster, timeout: float) -> Iterator[NatsSink]:
    """The sink on a stream of the cluster, connected before a test freezes the nodes."""
    cluster.add_stream(STREAM, SUBJECT)
    sink = NatsSink(f"nats://{cluster.url}/{SUBJECT}", timeout=timeout)
    try:
        assert sink.check() is None
        yield sink
    finally:
        sink.close()


def test_a_cluster_that_stalls_but_goes_on_acknowledging_gets_the_batch_whole(
        cluster: Cluster) -> None:
    # The timeout is on progress: stalls shorter than it, however many, fail nothing, even
    # when the batch takes several times the timeout in all.
    records = stored_records(40_000)
    with connected_sink(cluster, timeout=2.0) as sink:
        sending = threading.Event()
        sending.set()

        def stall() -> None:
            # Under 0.1 s of work between stalls: at most a few thousand PubAcks each time.
            while sending.is_set():
                cluster.pause()
                time.sleep(0.5)
                cluster.resume()
                time.sleep(0.1)

        staller = threading.Thread(target=stall, daemon=True)
        began = time.monotonic()
        staller.start()
        try:
            outcome = sink.send(records)
        finally:
            sending.clear()
            staller.join(5)
            cluster.resume()
        took = time.monotonic() - began
        assert outcome.ok, outcome
        assert took > 2 * sink.timeout, \
            f"the batch took {took:.1f} s, under twice the timeout: it shows nothing"
        assert cluster.count(STREAM) == 40_000


def test_a_cluster_that_acknowledges_nothing_for_the_timeout_fails_the_send_in_words(
        cluster: Cluster) -> None:
    records = stored_records(100)
    with connected_sink(cluster, timeout=1.0) as sink:
        cluster.pause()
        try:
            outcome = sink.send(records)
        finally:
            cluster.resume()
        assert (outcome.action, outcome.kind) == (Action.RETRY, "timeout")
        assert "acknowledged 0 of 100 messages and then nothing for 1 s" in outcome.detail
        # The forwarder sends the batch again: whatever got in the first time is a duplicate.
        # (Tried again while the cluster settles after the stall.)
        wait_for(lambda: sink.send(records).ok, timeout=30, interval=0.5)
        assert cluster.count(STREAM) == 100


@pytest.mark.parametrize(("url", "words"), [
    ("nats://127.0.0.1:4222", "SUBJECT"), ("nats:///ui.telemetry", "SUBJECT"),
    ("nats://127.0.0.1:4222/ui.*", "wildcards"), ("nats://127.0.0.1:4222/a b", "spaces")])
def test_a_nats_url_without_one_plain_subject_is_a_configuration_error(
        url: str, words: str) -> None:
    with pytest.raises(ConfigError, match="RELAY_INGESTION_URL=") as err:
        load_config({"RELAY_INGESTION_URL": url})
    assert words in str(err.value)


def test_serve_needs_no_nats_unless_the_url_names_it(tmp_path: Path) -> None:
    # The default sink, in a process where the NATS client cannot even be imported.
    code = ("import sys; sys.modules['nats'] = None\n"
            "from relay import create_app\n"
            "from relay.control.config import load_config\n"
            f"app = create_app(load_config({{'RELAY_DATA_DIR': {str(tmp_path)!r}}}),"
            " start_forwarder=False)\n"
            "print(app.test_client().get('/health').status_code)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.strip() == "200", out.stderr


def status(server: RelayServer, *flags: str) -> str:
    args = [] if "--no-json" in flags else ["--json"]
    out = subprocess.run([sys.executable, "-m", "relay.serve.cli", "status", *args],
                         env=server.env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout
