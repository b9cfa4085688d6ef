"""This checkout's relay against the relay at another git revision, and both against the bare
Flask view, in alternating rounds of one run. Prints figures; asserts nothing.

    python bench/relay_ab.py [--against HEAD] [--upstream-down] [--rounds 4] [--seconds 5]

For a change too small to see across separate runs of relay_throughput.py (the machine's speed
drifts between them): the two relays take turns under the same load, so the drift hits both.
The other revision is checked out with `git worktree` into a temporary directory, and removed
afterwards. --upstream-down leaves the forwarder idle, to compare ingest alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from relay_costs import Servers, alternate, report  # noqa: E402
from relay_throughput import (  # noqa: E402
    BARE_APP,
    gunicorn,
    layout,
    load_parser,
    relay_env,
    stop,
)

from tests.support import free_port  # noqa: E402


def main() -> None:
    parser = load_parser(__doc__, rounds=4)
    parser.add_argument("--against", default="HEAD", help="git revision to compare with [HEAD]")
    parser.add_argument("--upstream-down", action="store_true",
                        help="forward nothing (the upstream refuses connections)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="relay-ab-"))
    other = tmp / "other"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "--quiet", str(other),
                    args.against], check=True)
    (tmp / "bare_app.py").write_text(BARE_APP)
    servers: Servers = {}
    try:
        for name, tree in ((args.against[:14], other), ("this checkout", REPO), ("bare", None)):
            port = free_port()
            if tree is None:
                env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{tmp}"}
                servers[name] = (port, gunicorn("bare_app:app", env, port, tmp))
                continue
            data = tmp / f"data-{len(servers)}"
            sink = "http://127.0.0.1:9/down" if args.upstream_down \
                else (data / "forwarded.jsonl").as_uri()
            env = {**relay_env(data, sink), "PYTHONPATH": str(tree)}
            app, conf = layout(tree)
            servers[name] = (port, gunicorn(app, env, port, tree, conf))
        figures = alternate(servers, args.rounds, args.seconds, args.clients)
    finally:
        for _, proc in servers.values():
            stop(proc)
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(other)],
                       check=False)
    report(figures, f"POST throughput, 20-record batches, gunicorn --workers 2, {args.clients} "
                    f"client threads, {args.rounds} alternating rounds of {args.seconds:g} s, "
                    f"upstream {'down' if args.upstream_down else 'the file sink'}")
    for name, f in figures.items():
        print(f"   {name:14} rounds: {', '.join(f'{r:.0f}' for r in f['rate'])} req/s")


if __name__ == "__main__":
    main()
