"""Forwarding to a JetStream R3 stream against forwarding to the HTTP upstream. Prints figures.

    python bench/jetstream.py [--records 100000] [--rounds 2] [--latency-records 4000]

1. Forwarding rate: a spool holding --records records (written in-process, as POSTs write it)
   is drained by `ui-telemetry serve --workers 2` into (a) an R3 stream on a local 3-node
   NATS cluster and (b) the HTTP capture upstream of the tests, rounds alternating. The rate is
   counted from the first record's arrival upstream to the last's, so start-up is left out.
   For scale, the cluster's ceiling: the rate at which the stream acknowledges a client that
   costs next to nothing (NATS's protocol on a plain socket, pipelined), nothing else running,
   and the CPU time the three nodes spend on each message (from /proc): with every core given
   to the nodes and a client that costs nothing, no more messages a second can be stored.
2. Latency: records posted in batches of 20 to a relay forwarding to the stream with
   RELAY_FLUSH_INTERVAL=0.1s; for each record, the stream's timestamp of its message minus the
   moment the relay answered its POST: p50 and p99.

Every server listens on 127.0.0.1; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from relay.control.config import ENDPOINT, load_config  # noqa: E402
from relay.control.policy import CI_VARIABLES  # noqa: E402
from tests.nats_cluster import Cluster  # noqa: E402
from tests.support import CaptureUpstream, RelayServer, http_post, make_record  # noqa: E402

STREAM, SUBJECT = "BENCH", "bench.telemetry"
LATENCY_STREAM, LATENCY_SUBJECT = "BENCH_LATENCY", "bench.latency"


def prefill(data_dir: Path, n: int) -> None:
    """n records in the spool, stored by the relay's own ingest (its forwarder not running)."""
    from relay import create_app

    # The rate limits are for browsers: the benchmark's one client sends far more.
    app = create_app(load_config({"RELAY_DATA_DIR": str(data_dir), "RELAY_RATE_LIMIT": "off",
                                  "RELAY_MAX_RECORDS_PER_S": "off"}), start_forwarder=False)
    client = app.test_client()
    for _ in range(n // 20):
        resp = client.post(ENDPOINT, json={"records": [make_record() for _ in range(20)]})
        assert resp.get_json()["accepted"] == 20, resp.get_data()


def drain(data_dir: Path, url: str, n: int, arrived: object) -> float:
    """Records a second from the first arrival to the n-th, draining a pre-filled spool."""
    server = RelayServer(data_dir, {"RELAY_INGESTION_URL": url, "RELAY_FLUSH_INTERVAL": "10s"},
                         workers=2)
    server.start()
    try:
        deadline = time.monotonic() + 300
        first_at, first = None, 0
        while time.monotonic() < deadline:
            got = arrived()  # type: ignore[operator]
            now = time.monotonic()
            if got > 0 and first_at is None:
                first_at, first = now, got
            if got >= n:
                assert first_at is not None
                return (n - first) / max(now - first_at, 1e-6)
            time.sleep(0.02)
        raise SystemExit(f"only {arrived()} of {n} records arrived in 300 s")  # type: ignore[operator]
    finally:
        server.stop()


def latency(cluster: Cluster, root: Path, n: int) -> list[float]:
    server = RelayServer(root / "latency", {
        "RELAY_INGESTION_URL": f"nats://{cluster.url}/{LATENCY_SUBJECT}",
        "RELAY_FLUSH_INTERVAL": "0.1s"}, workers=2)
    server.start()
    acked: dict[str, float] = {}
    try:
        for _ in range(n // 20):
            records = [make_record() for _ in range(20)]
            status, _ = http_post(server.port, ENDPOINT, {"records": records})
            at = time.time()
            if status == 200:
                acked.update((r["event_id"], at) for r in records)
            time.sleep(0.01)
        deadline = time.monotonic() + 120
        while cluster.count(LATENCY_STREAM) < len(acked) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        server.stop()
    return [m["time"].timestamp() - acked[m["msg_id"]]
            for m in cluster.messages(LATENCY_STREAM, LATENCY_SUBJECT) if m["msg_id"] in acked]


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far (Linux's /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cluster_ceiling(cluster: Cluster, n: int, window: int = 5000) -> tuple[float, float]:
    """(messages a second, the nodes' CPU seconds a message) of the R3 stream acknowledging a
    client that costs next to nothing: NATS's text protocol on a plain socket, messages built
    beforehand, HPUBs pipelined, PubAcks read by a second thread. No client can forward faster
    than this on this machine."""
    import json
    import socket
    import threading

    host, port = cluster.url.split(",")[0].split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    reader = sock.makefile("rb")
    reader.readline()  # INFO
    sock.sendall(b'CONNECT {"verbose":false,"headers":true,"no_responders":true}\r\n'
                 b"SUB _CEILING.* 1\r\nPING\r\n")
    while reader.readline().strip() != b"PONG":
        pass
    line = json.dumps(make_record()).encode()
    messages = []
    for i in range(n):
        header = b"NATS/1.0\r\nNats-Msg-Id: ceiling-%d\r\n\r\n" % i
        messages.append(b"HPUB %s _CEILING.%d %d %d\r\n%s%s\r\n" % (
            SUBJECT.encode(), i, len(header), len(header) + len(line), header, line))
    room = threading.Semaphore(window)
    acked = [0, 0]  # acknowledged, refused

    def read_acks() -> None:
        while sum(acked) < n:
            head = reader.readline()
            if head.startswith(b"MSG "):
                body = reader.read(int(head.split()[-1]) + 2)
                acked[b'"error":' in body] += 1  # the sink's own test of a PubAck
                room.release()
            elif head.startswith(b"PING"):
                sock.sendall(b"PONG\r\n")
            elif not head:
                return

    thread = threading.Thread(target=read_acks, daemon=True)
    pids = [node.proc.pid for node in cluster.nodes if node.proc is not None]
    cpu_before = sum(cpu_seconds(pid) for pid in pids)
    start = time.perf_counter()
    thread.start()
    for i in range(0, n, 100):
        chunk = messages[i:i + 100]
        for _ in chunk:
            room.acquire()
        sock.sendall(b"".join(chunk))
    thread.join(120)
    rate = acked[0] / (time.perf_counter() - start)
    cpu = (sum(cpu_seconds(pid) for pid in pids) - cpu_before) / n
    sock.close()
    if acked[0] != n:
        raise SystemExit(f"the ceiling run got {acked[0]} of {n} messages acknowledged "
                         f"({acked[1]} refused)")
    return rate, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--latency-records", type=int, default=4000)
    args = parser.parse_args()
    for name in CI_VARIABLES:  # a server's usual environment
        os.environ.pop(name, None)
    os.environ["RELAY_IGNORE_CI"] = "false"
    root = Path(tempfile.mkdtemp(prefix="bench-jetstream-"))
    cluster = Cluster(root / "nats").start()
    upstream = CaptureUpstream()
    try:
        cluster.add_stream(STREAM, SUBJECT)
        cluster.add_stream(LATENCY_STREAM, LATENCY_SUBJECT)
        rates: dict[str, list[float]] = {"jetstream": [], "http": []}
        sent_to_stream = 0
        for r in range(args.rounds):
            for sink in ("jetstream", "http"):
                data_dir = root / f"{sink}-{r}"
                prefill(data_dir, args.records)
                if sink == "jetstream":
                    before = sent_to_stream
                    url = f"nats://{cluster.url}/{SUBJECT}"
                    rate = drain(data_dir, url, args.records,
                                 lambda b=before: cluster.count(STREAM) - b)
                    sent_to_stream += args.records
                else:
                    upstream.requests.clear()
                    rate = drain(data_dir, upstream.url, args.records, lambda: sum(
                        len(c.body["records"]) for c in list(upstream.requests)))
                rates[sink].append(rate)
        print(f"1. forwarding a spool of {args.records} records, `ui-telemetry serve --workers 2`, "
              f"{args.rounds} alternating rounds")
        for sink, label in (("jetstream", "JetStream R3, 3 local nodes"),
                            ("http", "HTTP upstream (capture server)")):
            values = ", ".join(f"{v:,.0f}" for v in rates[sink])
            print(f"   {label:32} {statistics.median(rates[sink]):9,.0f} records/s  "
                  f"(rounds: {values})")
        ratio = statistics.median(rates["jetstream"]) / statistics.median(rates["http"])
        print(f"   JetStream / HTTP = {ratio:.2f}  (goal >= 1.0)")
        http = statistics.median(rates["http"])
        ceiling, cpu = cluster_ceiling(cluster, 100_000)
        print(f"   the cluster's ceiling here, a protocol-level publisher with nothing else "
              f"running: {ceiling:,.0f} messages/s = {ceiling / http:.2f} of HTTP")
        cores = len(os.sched_getaffinity(0))
        bound = cores / cpu
        print(f"   the three nodes spent {cpu * 1e6:.0f} µs of CPU a message: with all {cores} "
              f"cores theirs, about {bound:,.0f} messages/s at most = {bound / http:.2f} of HTTP")
        lat = sorted(latency(cluster, root, args.latency_records))
        p50 = lat[len(lat) // 2] * 1e3
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3
        print(f"2. relay's acknowledgement to the stream's, {len(lat)} records, batches of 20, "
              f"RELAY_FLUSH_INTERVAL=0.1s: p50 {p50:.0f} ms  p99 {p99:.0f} ms")
    finally:
        upstream.close()
        cluster.stop()


if __name__ == "__main__":
    main()
