"""MLflow's own UI telemetry handler against the plugin, inside a real `mlflow server`.
Prints figures; asserts nothing.

    python bench/mlflow_plugin.py [--rounds 3] [--seconds 5] [--clients 4] [--workers 2]

Two real `mlflow server --workers N` on 127.0.0.1 (uvicorn, MLflow's default), each with its own
SQLite backend store, take the same load: POSTs of 20 new records to MLflow's UI telemetry route.

  mlflow   MLflow's own handler with UI telemetry on. MLflow has no setting for its two config
           URLs, so a sitecustomize on this server's PYTHONPATH points them at a local stand-in
           that turns telemetry on and names a local capture upstream as the ingestion URL.
           Records are kept in memory until MLflow's client sends them.
  plugin   `--app-name ui-telemetry`: every batch committed to the SQLite spool before the
           answer, then forwarded to the same capture upstream.

Rounds alternate between the two. Last, what the `[mlflow]` extra adds to an install: the
distributions mlflow[auth] needs that ui-telemetry alone does not, as installed in this venv.
"""

from __future__ import annotations

import contextlib
import os
import re
import statistics
import sys
import tempfile
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from packaging.requirements import Requirement  # noqa: E402
from relay_throughput import load, load_parser, pct  # noqa: E402

from relay.control.config import ENDPOINT  # noqa: E402
from relay.control.policy import CI_VARIABLES  # noqa: E402
from tests.mlflow_server import MlflowServer  # noqa: E402
from tests.support import CaptureUpstream, ConfigServer, http_post, make_record  # noqa: E402

# MLflow's telemetry is off while any of the relay's CI variables or these few of MLflow's own
# are set (mlflow.telemetry.utils); a benchmark run from CI must not measure "disabled".
OFF_VARIABLES = (*CI_VARIABLES, "CLOUD_RUN_EXECUTION", "RUNBOT_HOST_URL", "RUNBOT_BUILD_NAME",
                 "RUNBOT_WORKER_ID", "MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK",
                 "RELAY_IGNORE_CI")

SITECUSTOMIZE = '''
import os
base = os.environ.get("BENCH_MLFLOW_CONFIG_BASE")
if base:
    import mlflow.telemetry.utils as utils
    utils.CONFIG_URL = utils.UI_CONFIG_URL = base
'''


def start(root: Path, name: str, workers: int, env: dict[str, str]) -> MlflowServer:
    server = MlflowServer(root / name, app_name="ui-telemetry" if name == "plugin" else None,
                          workers=workers, env=env)
    server.env = {k: v for k, v in server.env.items() if k not in OFF_VARIABLES}
    return server.start()


def probe(server: MlflowServer) -> dict:
    """One POST, to show each server answers "success" (not "disabled") before it is timed."""
    return http_post(server.port, ENDPOINT, {"records": [make_record()]})[1]


def closure(name: str, extras: tuple[str, ...] = ()) -> set[str]:
    """The installed distributions `name[extras]` needs, itself included."""
    seen: set[str] = set()
    todo = [(name, extras)]
    while todo:
        dist_name, wanted = todo.pop()
        key = re.sub(r"[-_.]+", "-", dist_name).lower()
        if key in seen:
            continue
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            continue
        seen.add(key)
        for line in dist.requires or []:
            req = Requirement(line)
            envs = [{"extra": e} for e in wanted] or [{"extra": ""}]
            if req.marker is None or any(req.marker.evaluate(e) for e in envs):
                todo.append((req.name, tuple(req.extras)))
    return seen


def installed_mb(names: set[str]) -> float:
    total = 0
    for name in names:
        for path in metadata.distribution(name).files or []:
            with contextlib.suppress(OSError):  # a file the RECORD lists may be gone
                total += path.locate().stat().st_size
    return total / 1e6


def main() -> None:
    parser = load_parser(__doc__)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    upstream = CaptureUpstream()
    version = metadata.version("mlflow")
    stand_in = ConfigServer({
        "mlflow_version": version, "disable_telemetry": False, "rollout_percentage": 100,
        "ingestion_url": upstream.url, "disable_ui_telemetry": False,
        "ui_rollout_percentage": 100, "disable_ui_events": []})
    base = stand_in.url.rsplit("/", 1)[0]  # MLflow appends /{version}.json itself
    figures: dict[str, list[list[float]]] = {"mlflow": [], "plugin": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "site").mkdir()
        (root / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
        servers = {
            "mlflow": start(root, "mlflow", args.workers, {
                "BENCH_MLFLOW_CONFIG_BASE": base,
                "PYTHONPATH": os.pathsep.join([str(root / "site"), str(REPO)])}),
            "plugin": start(root, "plugin", args.workers, {
                "RELAY_INGESTION_URL": upstream.url, "PYTHONPATH": str(REPO)}),
        }
        try:
            for name, server in servers.items():
                print(f"{name:7} answers {probe(server)}")
            load(servers["mlflow"].port, 1, args.clients, 10_000)  # warm-up, not counted
            load(servers["plugin"].port, 1, args.clients, 10_000)
            for _ in range(args.rounds):
                for name, server in servers.items():
                    figures[name].append(load(server.port, args.seconds, args.clients,
                                              200_000))
        finally:
            for server in servers.values():
                server.stop()
    stand_in.close()
    upstream.close()

    print(f"\n20-record POSTs, {args.clients} clients, {args.workers} uvicorn workers, "
          f"{args.rounds} rounds of {args.seconds:g} s each, alternating (MLflow {version})")
    rates = {}
    for name, rounds in figures.items():
        per_round = [len(r) / args.seconds for r in rounds]
        latencies = [x for r in rounds for x in r]
        rates[name] = statistics.median(per_round)
        print(f"  {name:7} {rates[name]:8.0f} req/s (rounds: "
              f"{', '.join(f'{r:.0f}' for r in per_round)})   p50 {pct(latencies, 50):6.1f} ms"
              f"   p99 {pct(latencies, 99):6.1f} ms")
    print(f"  plugin/mlflow: {rates['plugin'] / rates['mlflow']:.2f}  (goal >= 1.0)")

    base_deps = closure("ui-telemetry")
    extra = closure("mlflow", ("auth",)) - base_deps
    print(f"\nWhat [mlflow] adds to an install: {len(extra)} distributions, "
          f"{installed_mb(extra):.0f} MB on disk (ui-telemetry alone: {len(base_deps)}, "
          f"{installed_mb(base_deps):.0f} MB)")


if __name__ == "__main__":
    main()
