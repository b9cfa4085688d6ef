"""`ui-telemetry serve` as a user starts it, under attack. Prints figures; asserts nothing.

    python bench/hostile_load.py [--seconds 10] [--slow 1000] [--honest 20]

Three phases of --seconds each, on one relay (default settings, one worker, file sink):

1. healthy: --honest clients, each 10 POSTs a second of 5 records, every POST from a browser of
   its own (its installation and session), as many real users would send;
2. the same with --slow connections held open, each sending its request a header line at a
   time (and opened again when the relay closes it after RELAY_READ_TIMEOUT);
3. the same with a one-installation flood: 4 threads posting 20-record batches under one
   installation id as fast as they can.

It prints each phase's honest p50, p99 and throughput, then how many honest records the relay
stored out of those sent (an honest POST answered 429 is sent again after Retry-After, as the
browser module does). The throughput of the relay against a bare Flask view served the same
way is bench/relay_throughput.py's. Everything listens on 127.0.0.1; every loop is bounded.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import socket
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from relay_throughput import pct, relay_env, start, stop  # noqa: E402

from relay.control.config import ENDPOINT  # noqa: E402
from tests.support import free_port, make_record, read_sink  # noqa: E402


def post(port: int, records: list[dict]) -> tuple[int, str | None]:
    """The status and the Retry-After of one POST."""
    body = json.dumps({"records": records}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", ENDPOINT, body=body, headers={"Content-Type": "text/plain"})
        resp = conn.getresponse()
        resp.read()
        return resp.status, resp.getheader("Retry-After")
    finally:
        conn.close()


class Honest:
    """--honest clients at a fixed pace; latencies of each POST, records sent and stored."""

    def __init__(self, port: int, clients: int) -> None:
        self.port = port
        self.clients = clients
        self.sent: list[str] = []
        self.lock = threading.Lock()

    def run(self, seconds: float) -> list[float]:
        latencies: list[float] = []
        deadline = time.monotonic() + seconds

        def client() -> None:
            mine: list[float] = []
            ids: list[str] = []
            next_at = time.monotonic()
            while time.monotonic() < deadline:
                browser = {"installation_id": str(uuid.uuid4()), "session_id": str(uuid.uuid4())}
                records = [make_record(**browser) for _ in range(5)]
                for _ in range(10):  # sent again after Retry-After, as the browser module does
                    t0 = time.perf_counter()
                    status, retry_after = post(self.port, records)
                    mine.append(time.perf_counter() - t0)
                    if status == 200:
                        ids += [r["event_id"] for r in records]
                        break
                    time.sleep(float(retry_after or 1))
                next_at += 0.1
                time.sleep(max(0.0, next_at - time.monotonic()))
            with self.lock:
                latencies.extend(mine)
                self.sent.extend(ids)

        threads = [threading.Thread(target=client) for _ in range(self.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(seconds + 120)
        return latencies


def slow_clients(port: int, n: int, stop_at: float) -> None:
    """n connections trickling requests until stop_at (time.time()); one closed by the relay
    is opened again. They are opened over the first second, not all at once."""
    socks: list[socket.socket | None] = [None] * n
    for i in range(n):
        socks[i] = socket.create_connection(("127.0.0.1", port), timeout=5)
        socks[i].sendall(b"POST " + ENDPOINT.encode() + b" HTTP/1.1\r\nHost: relay\r\n")
        time.sleep(1.0 / n)
    while time.time() < stop_at:
        for i in range(n):
            s = socks[i]
            try:
                if s is None:
                    s = socket.create_connection(("127.0.0.1", port), timeout=5)
                    s.sendall(b"POST " + ENDPOINT.encode() + b" HTTP/1.1\r\nHost: relay\r\n")
                    socks[i] = s
                else:
                    s.sendall(b"X-Trickle: 1\r\n")
            except OSError:
                if s is not None:
                    s.close()
                socks[i] = None
        time.sleep(1.0)
    for s in socks:
        if s is not None:
            s.close()


def flood(port: int, stop_at: float, counts: dict[int, int]) -> None:
    """4 threads posting 20-record batches under one installation id until stop_at."""
    mine: dict[int, int] = {}

    def one() -> None:
        while time.time() < stop_at:
            records = [make_record(installation_id="flood", session_id="flood")
                       for _ in range(20)]
            status, _ = post(port, records)
            mine[status] = mine.get(status, 0) + 1

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    counts.update(mine)


def report(name: str, latencies: list[float], seconds: float) -> float:
    p99 = pct(latencies, 99)
    print(f"   {name:30} p50 {pct(latencies, 50):6.2f} ms  p99 {p99:6.2f} ms  "
          f"{len(latencies) / seconds:6.0f} req/s")
    return p99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--slow", type=int, default=1000)
    parser.add_argument("--honest", type=int, default=20)
    parser.add_argument("--workers", type=int, default=None,
                        help="serve --workers (default: what serve chooses)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hostile-"))
    port = free_port()
    data = tmp / "relay"
    workers = ["--workers", str(args.workers)] if args.workers else []
    relay = start([sys.executable, "-m", "relay.serve.cli", "serve", "--port", str(port),
                   *workers],
                  relay_env(data, (data / "forwarded.jsonl").as_uri(),
                            RELAY_MAX_RECORDS_PER_S="5000"), port, REPO)
    honest = Honest(port, args.honest)
    print(f"ui-telemetry serve ({args.workers or 'default'} workers, default limits), "
          f"{args.honest} honest clients at "
          f"10 POSTs/s of 5 records each, {args.seconds:g} s a phase")
    try:
        healthy = report("healthy", honest.run(args.seconds), args.seconds)

        # The attackers run in processes of their own: in this one they would slow the honest
        # clients down (the GIL), and that is not what this measures.
        stop_at = time.time() + args.seconds + 15
        slow = multiprocessing.Process(target=slow_clients, args=(port, args.slow, stop_at))
        slow.start()
        time.sleep(5)  # all of them open
        under_slow = report(f"with {args.slow} slow connections", honest.run(args.seconds),
                            args.seconds)
        slow.join(60)

        counts = multiprocessing.Manager().dict()
        stop_at = time.time() + args.seconds + 2
        flooders = multiprocessing.Process(target=flood, args=(port, stop_at, counts))
        flooders.start()
        time.sleep(1)
        under_flood = report("with a one-id flood", honest.run(args.seconds), args.seconds)
        flooders.join(60)
        print(f"   the flood's answers: {dict(sorted(counts.items()))}")
    finally:
        stop(relay)  # SIGTERM: the forwarder drains the spool into the file sink
    stored = {d["event_id"] for d in read_sink(data)}
    flood_stored = sum(1 for d in read_sink(data) if d["installation_id"] == "flood")
    kept = sum(1 for i in honest.sent if i in stored)
    print(f"   honest records stored: {kept} of {len(honest.sent)} "
          f"({100 * kept / max(1, len(honest.sent)):.1f}%, goal 100%)")
    print(f"   the flooder's records stored: {flood_stored} (its bucket: a burst of 600, then "
          f"10 a second for about {args.seconds + 2:.0f} s)")
    base = max(healthy, 10.0)
    for name, p99 in (("slow connections", under_slow), ("one-id flood", under_flood)):
        print(f"   p99 with {name}: {p99 / base:.2f}x healthy (healthy taken as "
              f"{base:.1f} ms; goal <= 2x)")


if __name__ == "__main__":
    main()
