"""Where the relay's throughput goes: the relay with one part taken out at a time, against the
bare Flask view of relay_throughput.py. Prints figures; asserts nothing.

    python bench/relay_costs.py [--rounds 3] [--seconds 5] [--clients 4]

Every variant runs under the same gunicorn configuration file and flags, takes the same load
(20 new records a request), and rounds alternate. The parts are taken out by patching the app
in a wrapper module, so the product's code has no switch for them:

  relay           as `ui-telemetry serve` runs it, forwarding every record to the file sink
  no forwarding   the upstream is down, so the forwarder only waits: what forwarding costs
  no commit       Spool.store returns at once, without the SQLite transaction (nothing waits
                  to be forwarded either): what the durable commit costs
  parse only      ingest stops after json.loads (Origin, on/off, body checks still run):
                  what validation and encoding cost; what is left is the relay's request
                  handling (its shortcut in front of Flask answers these POSTs)
  bare            the bare view

"idle" is the share of the two cores that nobody used during the variant's rounds
(/proc/stat): a server that waits on something leaves it idle.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from relay_throughput import (  # noqa: E402
    BARE_APP,
    cpu_seconds,
    gunicorn,
    load,
    load_parser,
    relay_env,
    stop,
)

from tests.support import free_port  # noqa: E402

VARIANT_APP = '''
import os

from relay.ingest import endpoint as ingest
from relay.store import spool
from relay.serve.app import create_app
from relay.ingest.validation import BatchResult

variant = os.environ["BENCH_VARIANT"]
if variant in ("no commit", "parse only"):
    spool.Spool.store = lambda self, records, counts=(), limit=None: True
if variant == "parse only":
    ingest.validate_batch = lambda body, max_records: BatchResult([], [])
app = create_app()
'''

VARIANTS = ("relay", "no forwarding", "no commit", "parse only", "bare")


Servers = dict[str, tuple[int, subprocess.Popen]]  # name: (port, gunicorn master)


def idle_share(before: list[int], after: list[int]) -> float:
    delta = [a - b for a, b in zip(after, before, strict=True)]
    return (delta[3] + delta[4]) / max(sum(delta), 1)  # idle + iowait


def cpu_times() -> list[int]:
    return [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]


def alternate(servers: Servers, rounds: int, seconds: float,
              clients: int) -> dict[str, dict[str, list[float]]]:
    """Load each server in turn, `rounds` times: req/s, server CPU a request, idle share."""
    figures: dict[str, dict[str, list[float]]] = {
        name: {"rate": [], "cpu": [], "idle": []} for name in servers}
    for _ in range(rounds):
        for name, (port, proc) in servers.items():
            t0, c0, s0 = time.monotonic(), cpu_seconds(proc.pid), cpu_times()
            n = len(load(port, seconds, clients, 1_000_000))
            figures[name]["rate"].append(n / (time.monotonic() - t0))
            figures[name]["cpu"].append((cpu_seconds(proc.pid) - c0) / max(n, 1))
            figures[name]["idle"].append(idle_share(s0, cpu_times()))
    return figures


def report(figures: dict[str, dict[str, list[float]]], title: str) -> None:
    """One line a server: medians over the rounds, and the rate against the bare view's."""
    bare = statistics.median(figures["bare"]["rate"])
    print(title)
    print(f"   {'variant':14} {'req/s':>6}  {'/ bare':>6}  {'server CPU':>10}  {'idle':>5}")
    for name, f in figures.items():
        rate = statistics.median(f["rate"])
        print(f"   {name:14} {rate:6.0f}  {rate / bare:6.2f}  "
              f"{statistics.median(f['cpu']) * 1000:7.2f} ms  {statistics.median(f['idle']):5.0%}")


def main() -> None:
    args = load_parser(__doc__).parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="relay-costs-"))
    (tmp / "bare_app.py").write_text(BARE_APP)
    (tmp / "variant_app.py").write_text(VARIANT_APP)
    pythonpath = f"{REPO}{os.pathsep}{tmp}"
    servers: Servers = {}
    try:
        for name in VARIANTS:
            port = free_port()
            data = tmp / name.replace(" ", "-")
            if name == "bare":
                env, app = {**os.environ, "PYTHONPATH": pythonpath}, "bare_app:app"
            else:
                # Port 9 (discard) refuses connections: the forwarder backs off and holds.
                sink = (data / "forwarded.jsonl").as_uri() if name == "relay" \
                    else "http://127.0.0.1:9/down"
                env = {**relay_env(data, sink), "PYTHONPATH": pythonpath,
                       "BENCH_VARIANT": name}
                app = "variant_app:app"
            servers[name] = (port, gunicorn(app, env, port, tmp))
        figures = alternate(servers, args.rounds, args.seconds, args.clients)
    finally:
        for _, proc in servers.values():
            stop(proc)
    report(figures, f"POST throughput, 20-record batches, gunicorn --workers 2, {args.clients} "
                    f"client threads, {args.rounds} alternating rounds of {args.seconds:g} s")


if __name__ == "__main__":
    main()
