"""`ui-telemetry serve | status | inspect`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path

from ..control.config import SETTINGS, Config, ConfigError, load_config
from ..forward import make_sink
from ..forward.file import sink_file
from ..forward.forwarder import FORWARDER_SEEN, HEARTBEAT_EVERY
from ..store import counters as c
from ..store.spool import SpoolFormatError
from .app import Relay


def _cores() -> int:
    """The cores this process may run on: one asynchronous worker each (at most 8)."""
    return max(1, min(8, len(os.sched_getaffinity(0))))


def _settings_epilog() -> str:
    lines = ["environment variables (read at start; opt-out switches on every request):"]
    for s in SETTINGS:
        default = f" [default: {s.default}]" if s.default else ""
        lines.append(f"  {s.env}{default}\n      {s.help}")
    lines.append("  MLFLOW_DISABLE_TELEMETRY, DO_NOT_TRACK\n      true/1/yes switches all "
                 "telemetry off, without a restart.")
    return "\n".join(lines)


def cmd_serve(args: argparse.Namespace, config: Config) -> int:
    config.data_dir.mkdir(parents=True, exist_ok=True)
    print(f"ui-telemetry: serving on http://{args.host}:{args.port}{config.static_prefix}/ "
          f"with {args.workers} worker(s)", file=sys.stderr)
    print(f"ui-telemetry: data directory {config.data_dir}; records go to "
          f"{config.local_ingestion_url if not config.config_url else 'the remote config'}",
          file=sys.stderr)
    argv = [sys.executable, "-m", "gunicorn", "-c", "python:relay.serve.gunicorn_conf",
            "--bind", f"{args.host}:{args.port}", "--workers", str(args.workers),
            "--graceful-timeout", str(args.graceful_timeout), "--timeout", "30",
            "relay.serve.front:create_front()"]
    sys.stdout.flush()
    os.execv(sys.executable, argv)  # noqa: S606 - replace this process with gunicorn
    return 0  # not reached


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def cmd_status(args: argparse.Namespace, config: Config) -> int:
    relay = Relay(config)  # decides and looks up exactly as the server does
    decision = relay.policy.server()
    depth = relay.spool.depth()
    oldest = relay.spool.oldest()
    upstream = relay.forwarder.upstream_url()
    problem = make_sink(upstream, config.upstream_timeout).check()
    last_error = relay.spool.get_state("last_error")
    seen = relay.spool.get_state(FORWARDER_SEEN)
    counters = relay.spool.counters()
    report = {
        "telemetry": "on" if decision.enabled else "off",
        "reason": decision.reason,
        "config_source": f"remote ({relay.remote.url})" if relay.remote.url
        else "local (environment)",
        "upstream": upstream,
        "upstream_problem": problem,
        "data_dir": str(config.data_dir),
        "spool_depth": depth,
        "oldest_waiting": None if oldest is None else _age(time.time() - oldest),
        "last_delivery_error": last_error,
        "forwarder": _forwarder(seen),
        "not_stored": {
            "limited": {label: n for (name, label), n in counters.items() if name == c.LIMITED},
            "disabled_events": counters.get((c.DISABLED_EVENTS, ""), 0)},
        "connections_closed": {label: n for (name, label), n in counters.items()
                               if name == c.CONNECTIONS_CLOSED},
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"telemetry:      {decision.words}")
    print(f"config source:  {report['config_source']}")
    print(f"upstream:       {upstream}")
    if problem:
        print(f"upstream check: {problem}")
    print(f"data directory: {config.data_dir}")
    waiting = f"{depth} record(s) waiting"
    if oldest is not None:
        waiting += f", oldest received {report['oldest_waiting']} ago"
    print(f"spool:          {waiting}")
    if isinstance(last_error, dict):
        when = _age(time.time() - float(last_error.get("at", time.time())))
        print(f"last error:     {last_error.get('detail')} ({when} ago)")
    else:
        print("last error:     none")
    print(f"forwarder:      {report['forwarder']}")
    limited = report["not_stored"]["limited"]
    print(f"not stored:     {sum(limited.values())} over a rate limit"
          + (f" ({', '.join(f'{k} {v}' for k, v in sorted(limited.items()))})" if limited else "")
          + f", {report['not_stored']['disabled_events']} of disabled componentIds")
    closed = report["connections_closed"]
    print(f"connections:    {closed.get('slow', 0)} closed as too slow, "
          f"{closed.get('over_cap', 0)} refused over the cap")
    return 0


def _forwarder(seen: object) -> str:
    """The forwarder in words, from the last time a server's forwarder said it was alive."""
    if not isinstance(seen, int | float):
        return "not running (no server has run on this data directory)"
    ago = time.time() - seen
    if ago <= 3 * HEARTBEAT_EVERY:
        return f"running (seen {_age(ago)} ago)"
    return f"not running (last seen {_age(ago)} ago)"


def cmd_inspect(args: argparse.Namespace, config: Config) -> int:
    relay = Relay(config)
    upstream = relay.forwarder.upstream_url()
    path = None if args.waiting else sink_file(upstream)
    if path is not None:
        if not path.exists():
            print(f"ui-telemetry: nothing forwarded yet ({path} does not exist); "
                  "use --waiting for records still in the spool", file=sys.stderr)
            return 0
        with open(path, encoding="utf-8") as f:
            lines = deque((line for line in f if line.strip()), maxlen=args.last or None)
        for line in lines:
            sys.stdout.write(line if line.endswith("\n") else line + "\n")
        return 0
    if not args.waiting:
        print(f"ui-telemetry: forwarded records went to {upstream}; showing the spool",
              file=sys.stderr)
    for text in relay.spool.last(args.last or 1_000_000_000):
        print(relay.codec.data_line(text))
    return 0


def cmd_report(args: argparse.Namespace, config: Config) -> int:
    from ..insight.site import load_and_count, write_site

    upstream = Relay(config).forwarder.upstream_url()
    sink = sink_file(upstream)
    if sink is None:
        print(f"ui-telemetry: records go to {upstream}, not to a file: the report shows what "
              f"`ui-telemetry consume` put in {config.usage_path}", file=sys.stderr)
    k = args.min_installations or config.usage_min_installations
    loaded, figures = load_and_count(config.usage_path, sink, k, args.weeks)
    write_site(figures, args.out)
    totals = figures["totals"]
    print(f"ui-telemetry: loaded {loaded} new record(s) into {config.usage_path}; "
          f"{totals['events']} events from {totals['installations']} installation(s) in "
          f"{figures['period']['from']} to {figures['period']['to']}; "
          f"{len(figures['components'])} component(s) used by at least "
          f"{k} installations; wrote {args.out / 'index.html'} and "
          "usage.json")
    return 0


def cmd_consume(args: argparse.Namespace, config: Config) -> int:
    from ..insight.consume import run

    try:
        import nats  # noqa: F401
    except ImportError:
        print("ui-telemetry: consume needs nats-py: pip install 'ui-telemetry[nats]'",
              file=sys.stderr)
        return 2
    return run(args.url, config.usage_path, once=args.once, durable=args.durable,
               ack_wait=args.ack_wait, fetch=args.batch)


def _at_least_1(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ui-telemetry", description="Minimal, honest UI telemetry: the relay and served UI.",
        epilog=_settings_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the UI and the relay under gunicorn",
                           epilog=_settings_epilog(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on [127.0.0.1]")
    serve.add_argument("--port", type=int, default=5000, help="port [5000]")
    serve.add_argument("--workers", type=int, default=_cores(),
                       help=f"gunicorn workers, asynchronous: one a core [{_cores()}]")
    serve.add_argument("--graceful-timeout", type=int, default=30,
                       help="seconds to drain the spool on SIGTERM [30]")
    status = sub.add_parser("status", help="on or off and why; upstream; spool depth")
    status.add_argument("--json", action="store_true", help="print JSON")
    report = sub.add_parser(
        "report", help="load the file sink into the usage store and write the dashboard",
        description="Load what is new in the file sink into the usage store (DuckDB, "
        "RELAY_USAGE_DB), then write the usage dashboard to OUT: index.html (charts and "
        "tables; open it from disk or publish the directory as it is), usage.json (the same "
        "figures) and a CSV per table. A component used by "
        "fewer than K installations is left out, a week with fewer than K shows no figures; "
        "no id and no time finer than a day is written. Lowering K shows the use of fewer "
        "people: with K=1 a component one person uses is visible.")
    report.add_argument("--out", type=Path, default=Path("usage-report"), metavar="DIR",
                        help="where the dashboard goes [usage-report]")
    report.add_argument("--weeks", type=_at_least_1, default=12, metavar="N",
                        help="ISO weeks to cover, this one included [12]")
    report.add_argument("--min-installations", type=_at_least_1, metavar="K",
                        help="the privacy threshold [RELAY_USAGE_MIN_INSTALLATIONS, 10]")
    consume = sub.add_parser(
        "consume", help="load a JetStream stream into the usage store",
        description="Run a durable JetStream consumer that loads each record of SUBJECT into "
        "the usage store (RELAY_USAGE_DB), acknowledging a message only once the store has "
        "committed it: a consumer stopped or killed anywhere loses nothing and counts nothing "
        "twice. Needs ui-telemetry[nats]. Stops on SIGTERM or Ctrl-C after the batch at hand.")
    consume.add_argument("url", metavar="nats://HOST:PORT[,HOST:PORT...]/SUBJECT")
    consume.add_argument("--once", action="store_true",
                         help="stop when nothing is pending and nothing waits for an "
                         "acknowledgement (what a killed consumer left is waited for)")
    consume.add_argument("--durable", default="ui-telemetry-usage", metavar="NAME",
                         help="the consumer's durable name [ui-telemetry-usage]")
    consume.add_argument("--ack-wait", type=float, default=30.0, metavar="SECONDS",
                         help="JetStream delivers a message again when it was not "
                         "acknowledged this long after [30]")
    consume.add_argument("--batch", type=_at_least_1, default=5000, metavar="N",
                         help="messages fetched and committed at once [5000]")
    inspect = sub.add_parser("inspect", help="print forwarded (file sink) or waiting records")
    inspect.add_argument("--last", type=int, default=0, metavar="N",
                         help="only the last N records")
    inspect.add_argument("--waiting", action="store_true",
                         help="records still in the spool, not yet forwarded")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "workers", 1) < 1:
        print("ui-telemetry: --workers must be at least 1", file=sys.stderr)
        return 2
    try:
        config = load_config()
    except ConfigError as err:
        print(f"ui-telemetry: configuration error: {err}", file=sys.stderr)
        return 2
    command = {"serve": cmd_serve, "status": cmd_status, "inspect": cmd_inspect,
               "report": cmd_report, "consume": cmd_consume}[args.command]
    try:
        return command(args, config)
    except BrokenPipeError:
        return 0
    except SpoolFormatError as err:
        print(f"ui-telemetry: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
