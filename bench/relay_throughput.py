"""Relay throughput, memory and latency under upstream faults. Prints figures; asserts nothing.

    python bench/relay_throughput.py [--rounds 3] [--seconds 5] [--clients 4] [--records 200000]

1. POST throughput of a 20-record batch through `ui-telemetry serve --workers 2` against a bare
   Flask view that parses the JSON, under the same gunicorn settings and front (uvicorn
   workers, the app behind relay.serve.front), rounds alternating; then both under gunicorn's
   sync workers, the front `serve` had before, for comparison.
2. Peak RSS of the relay's processes while --records records arrive with the upstream down.
3. Ingest p99 while the upstream hangs, against the healthy p99 from (1).

Every server listens on 127.0.0.1; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from relay.control.config import ENDPOINT  # noqa: E402
from relay.control.policy import CI_VARIABLES  # noqa: E402
from tests.support import CaptureUpstream, free_port, make_record  # noqa: E402

BARE_APP = '''
from flask import Flask, jsonify, request
app = Flask(__name__)

@app.post("{endpoint}")
def ingest():
    body = request.get_json(force=True)
    return jsonify(status="success", accepted=len(body["records"]), rejected=0)


@app.get("/health")
def health():
    return "ok"


from relay.serve.front import Front  # served the way `ui-telemetry serve` serves the relay
front = Front(app, 1024 * 1024)
'''.replace("{endpoint}", ENDPOINT)


def start(argv: list[str], env: dict[str, str], port: int, cwd: Path) -> subprocess.Popen:
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/health")
            conn.getresponse().read()
            return proc
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"server on port {port} did not start")


def load_parser(doc: str | None, rounds: int = 3) -> argparse.ArgumentParser:
    """The options every throughput benchmark takes: rounds, seconds a round, client threads."""
    parser = argparse.ArgumentParser(description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=4)
    return parser


def layout(tree: Path) -> tuple[str, str]:
    """The app factory and the gunicorn settings of a checkout of the relay: in relay/serve/
    since the packages by stage, in relay/ before (for relay_ab.py --against an old revision)."""
    if (tree / "relay" / "serve" / "front.py").is_file():
        return "relay.serve.front:create_front()", "python:relay.serve.gunicorn_conf"
    if (tree / "relay" / "serve").is_dir():
        return "relay.serve.app:create_app()", "python:relay.serve.gunicorn_conf"
    return "relay.app:create_app()", "python:relay.gunicorn_conf"


def gunicorn(app: str, env: dict[str, str], port: int, cwd: Path,
             conf: str = "python:relay.serve.gunicorn_conf",
             worker: str | None = None) -> subprocess.Popen:
    """`app` under the settings of `ui-telemetry serve --workers 2`: its configuration file
    (the address-free access log to stdout included) and its flags; `worker` another class."""
    return start([sys.executable, "-m", "gunicorn", "-c", conf,
                  *(["--worker-class", worker] if worker else []),
                  "--bind", f"127.0.0.1:{port}", "--workers", "2", "--graceful-timeout", "5",
                  "--timeout", "30", app], env, port, cwd)


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(40)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def relay_env(data_dir: Path, ingestion_url: str, **extra: str) -> dict[str, str]:
    # Without the CI variables (a CI machine sets CI=true, which turns telemetry off), rather
    # than with RELAY_IGNORE_CI=true: a server's usual environment, so the relay checks every
    # variable of the policy on each request, as it does in production.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RELAY_") and k not in CI_VARIABLES}
    # The relay's own intake limit (5,000 records a second by default) would cap what this
    # measures; the per-browser limits stay on, and their cost with them.
    env.update({"RELAY_DATA_DIR": str(data_dir), "RELAY_INGESTION_URL": ingestion_url,
                "RELAY_MAX_RECORDS_PER_S": "off", "PYTHONPATH": str(REPO), **extra})
    return env


def load(port: int, seconds: float, clients: int, max_requests: int) -> list[float]:
    """POST 20-record batches from `clients` threads for `seconds`; return latencies (s)."""
    # Every request carries 20 new event_ids (the relay stores a given id once): a template
    # whose ids get the request's number, cheap enough not to slow the client down.
    # Each request is a browser of its own: one installation and one session for its records.
    records = [make_record(installation_id="@@@@@@@@-installation",
                           session_id="@@@@@@@@-session") for _ in range(20)]
    for k, record in enumerate(records):
        record["event_id"] = f"@@@@@@@@-0000-4000-8000-{k:012x}"
    template = json.dumps({"records": records})
    numbers = itertools.count(int(time.time() * 1000) % 10**7 * 1000)
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    counter = iter(range(max_requests))

    def worker() -> None:
        mine: list[float] = []
        while time.monotonic() < deadline and next(counter, None) is not None:
            body = template.replace("@@@@@@@@", f"{next(numbers) & 0xFFFFFFFF:08x}").encode()
            t0 = time.perf_counter()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", ENDPOINT, body=body,
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            conn.close()
            if resp.status != 200:
                raise SystemExit(f"unexpected status {resp.status}")
            mine.append(time.perf_counter() - t0)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    return latencies


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000


def rss_mb(root_pid: int) -> float:
    """Resident memory of a process and its children, in MB."""
    total = 0
    for pid in [root_pid, *children(root_pid)]:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def cpu_seconds(root_pid: int) -> float:
    """User + system CPU time of a process and its children so far."""
    total = 0
    for pid in [root_pid, *children(root_pid)]:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(k) for k in kids] + [g for k in kids for g in children(int(k))]


def sync_fronts(args: argparse.Namespace, tmp: Path, bare_env: dict[str, str]) -> None:
    """1b. The same two apps under gunicorn's sync workers, the front before the uvicorn one."""
    relay_port, bare_port = free_port(), free_port()
    sink = (tmp / "relay-sync" / "forwarded.jsonl").as_uri()
    servers = {
        "relay": (relay_port, gunicorn("relay.serve.app:create_app()",
                                       relay_env(tmp / "relay-sync", sink), relay_port, REPO,
                                       worker="sync")),
        "bare": (bare_port, gunicorn("bare_app:app", bare_env, bare_port, tmp, worker="sync")),
    }
    rates: dict[str, list[float]] = {"relay": [], "bare": []}
    try:
        for _ in range(args.rounds):
            for name, (port, _) in servers.items():
                t0 = time.monotonic()
                lat = load(port, args.seconds, args.clients, 1_000_000)
                rates[name].append(len(lat) / (time.monotonic() - t0))
    finally:
        for _, proc in servers.values():
            stop(proc)
    relay, bare = (statistics.median(rates[n]) for n in ("relay", "bare"))
    print(f"1b. the same under gunicorn's sync workers: relay {relay:.0f} req/s, bare {bare:.0f} "
          f"req/s, relay / bare Flask = {relay / bare:.2f}")


def main() -> None:
    parser = load_parser(__doc__)
    parser.add_argument("--records", type=int, default=200_000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="relay-bench-"))
    gunicorn_common = ["--workers", "2", "--graceful-timeout", "5"]

    # 1. Throughput, relay against bare Flask, rounds alternating.
    # The default file sink: an HTTP capture server inside this process would compete with the
    # load generator for the GIL during the relay's rounds only.
    relay_port, bare_port = free_port(), free_port()
    sink = (tmp / "relay" / "forwarded.jsonl").as_uri()
    relay = start([sys.executable, "-m", "relay.serve.cli", "serve", "--port", str(relay_port),
                   *gunicorn_common], relay_env(tmp / "relay", sink), relay_port, REPO)
    (tmp / "bare_app.py").write_text(BARE_APP)
    bare_env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{tmp}"}
    bare = gunicorn("bare_app:front", bare_env, bare_port, tmp)
    results: dict[str, list[float]] = {"relay": [], "bare": []}
    rates: dict[str, list[float]] = {"relay": [], "bare": []}
    cpu: dict[str, list[float]] = {"relay": [], "bare": []}  # server CPU seconds a request
    try:
        for _ in range(args.rounds):
            for name, port, proc in (("relay", relay_port, relay), ("bare", bare_port, bare)):
                t0, c0 = time.monotonic(), cpu_seconds(proc.pid)
                lat = load(port, args.seconds, args.clients, 1_000_000)
                rates[name].append(len(lat) / (time.monotonic() - t0))
                cpu[name].append((cpu_seconds(proc.pid) - c0) / max(len(lat), 1))
                results[name] += lat
    finally:
        stop(bare)
    print(f"1. POST throughput, 20-record batches, gunicorn --workers 2, {args.clients} "
          f"client threads, {args.rounds} alternating rounds of {args.seconds:g} s")
    for name in ("relay", "bare"):
        lat = results[name]
        print(f"   {name:5}  {statistics.median(rates[name]):7.0f} req/s "
              f"({statistics.median(rates[name]) * 20:7.0f} records/s)  "
              f"p50 {pct(lat, 50):6.2f} ms  p99 {pct(lat, 99):6.2f} ms  "
              f"server CPU {statistics.median(cpu[name]) * 1000:.2f} ms/request")
    ratio = statistics.median(rates["relay"]) / statistics.median(rates["bare"])
    print(f"   relay / bare Flask = {ratio:.2f}  (goal >= 0.75)")
    healthy_p99 = pct(results["relay"], 99)
    stop(relay)
    forwarded = (tmp / "relay" / "forwarded.jsonl").read_text().count("\n")
    print(f"   {len(results['relay']) * 20} records posted to the relay, {forwarded} in its file "
          "sink after SIGTERM")
    sync_fronts(args, tmp, bare_env)

    # 2. Peak RSS while records arrive with the upstream down.
    port = free_port()
    relay = start([sys.executable, "-m", "relay.serve.cli", "serve", "--port", str(port),
                   *gunicorn_common],
                  relay_env(tmp / "down", "http://127.0.0.1:9/down",
                            RELAY_FLUSH_INTERVAL="1s"), port, REPO)
    peak = [0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_mb(relay.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample)
    sampler.start()
    t0 = time.monotonic()
    lat = load(port, 600, args.clients, args.records // 20)
    done.set()
    sampler.join()
    took = time.monotonic() - t0
    print(f"2. {len(lat) * 20} records in {took:.1f} s ({len(lat) / took:.0f} req/s, nothing "
          f"forwarded) with the upstream down: peak RSS of master + 2 workers {peak[0]:.0f} MB "
          "(goal <= 150 MB)")
    stop(relay)

    # 3. Ingest p99 while the upstream hangs (each send waits out the 10 s timeout).
    hang = CaptureUpstream(mode="hang", hang_seconds=60)
    port = free_port()
    relay = start([sys.executable, "-m", "relay.serve.cli", "serve", "--port", str(port),
                   *gunicorn_common],
                  relay_env(tmp / "hang", hang.url, RELAY_FLUSH_INTERVAL="0.1s"), port, REPO)
    try:
        load(port, 1, args.clients, 1000)  # something to send, so the forwarder is hanging
        lat = load(port, args.seconds * args.rounds, args.clients, 1_000_000)
        hung_p99 = pct(lat, 99)
        print(f"3. ingest while the upstream hangs: p99 {hung_p99:.2f} ms against healthy "
              f"p99 {healthy_p99:.2f} ms = {hung_p99 / healthy_p99:.2f}x (goal <= 2x); "
              f"upstream attempts {hang.attempts}")
    finally:
        stop(relay)
        hang.close()


if __name__ == "__main__":
    main()
