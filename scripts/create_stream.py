"""Create (or update) the JetStream stream the relays publish to. The stream is the operator's:
this is one way to make it, with the settings the relay expects.

    python scripts/create_stream.py nats://HOST:PORT[,HOST:PORT...]/SUBJECT [--name UI_TELEMETRY]
        [--replicas 3] [--duplicate-window 8d] [--max-age 30d]

The duplicate window should be at least RELAY_SPOOL_MAX_AGE (7 days by default) plus a day: a
record retried later than the window after its first delivery is stored twice. Needs nats-py
(pip install 'ui-telemetry[nats]').
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from relay.control.config import ConfigError, parse_duration  # noqa: E402
from relay.forward.nats import parse_nats_url  # noqa: E402


async def create_stream(url: str, name: str, replicas: int, duplicate_window: float,
                        max_age: float) -> str:
    import nats
    from nats.js.api import StreamConfig

    servers, subject = parse_nats_url(url)
    nc = await nats.connect(servers=servers, connect_timeout=5, allow_reconnect=False)
    try:
        js = nc.jetstream()
        config = StreamConfig(name=name, subjects=[subject], num_replicas=replicas,
                              duplicate_window=duplicate_window, max_age=max_age)
        try:
            await js.stream_info(name)
        except nats.js.errors.NotFoundError:
            await js.add_stream(config)
            return f"created stream {name} on {subject!r}, {replicas} replicas"
        await js.update_stream(config)
        return f"updated stream {name} on {subject!r}, {replicas} replicas"
    finally:
        await nc.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", help="the relays' RELAY_INGESTION_URL")
    parser.add_argument("--name", default="UI_TELEMETRY")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--duplicate-window", default="8d")
    parser.add_argument("--max-age", default="30d", help="how long the stream keeps a message")
    args = parser.parse_args()
    try:
        window = parse_duration("--duplicate-window", args.duplicate_window)
        max_age = parse_duration("--max-age", args.max_age)
        print(asyncio.run(create_stream(args.url, args.name, args.replicas, window, max_age)))
    except (ConfigError, ValueError) as err:
        print(f"create_stream: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
