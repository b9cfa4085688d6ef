"""/metrics in Prometheus text format, read from the spool's counters.

The counters live in the shared SQLite file, so whichever gunicorn worker answers the scrape
reports the totals of all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..store import counters as c
from ..store.spool import Spool

COUNTERS = {
    # spool counter name: (metric name, help, label name or None)
    c.RECEIVED: ("ui_telemetry_records_received", "Records accepted and stored.", None),
    c.DUPLICATES: ("ui_telemetry_records_duplicate",
                   "Records not forwarded because their event_id was delivered already "
                   "(a retry).", None),
    c.REJECTED: ("ui_telemetry_records_rejected",
                 "Records rejected, by the first field that failed validation.", "reason"),
    c.REQUESTS_REJECTED: ("ui_telemetry_requests_rejected",
                          "Whole requests refused, by reason.", "reason"),
    c.FORWARDED: ("ui_telemetry_records_forwarded", "Records delivered upstream.", None),
    c.DROPPED: ("ui_telemetry_records_dropped", "Records given up on, by reason.", "reason"),
    c.UPSTREAM_ERRORS: ("ui_telemetry_upstream_errors",
                        "Failed upstream deliveries, by kind.", "kind"),
    c.CONNECTIONS_CLOSED: ("ui_telemetry_connections_closed",
                           "Connections the front closed: too slow to send their request "
                           "(slow), or over the connection cap (over_cap).", "reason"),
    c.LIMITED: ("ui_telemetry_records_limited",
                "Records not stored because a rate limit held (answered 429), by limit: "
                "installation, session or relay.", "limit"),
    c.DISABLED_EVENTS: ("ui_telemetry_records_disabled_event",
                        "Records not stored because the config disables their componentId.",
                        None),
    c.DISABLED: ("ui_telemetry_requests_disabled",
                 "POSTs answered {\"status\": \"disabled\"}, by who switched it off.", "source"),
}


class SpoolCollector:
    def __init__(self, spool: Spool, telemetry_on: Callable[[], bool]) -> None:
        self.spool = spool
        self.telemetry_on = telemetry_on

    def collect(self) -> Iterator[Metric]:
        values = self.spool.counters()
        for key, (name, help_text, label) in COUNTERS.items():
            family = CounterMetricFamily(name, help_text, labels=[label] if label else None)
            rows = [(lbl, v) for (n, lbl), v in values.items() if n == key]
            if label is None:
                family.add_metric([], sum(v for _, v in rows))
            else:
                for lbl, v in sorted(rows):
                    family.add_metric([lbl], v)
            yield family
        # From the same read as the counters, so received = forwarded + duplicate + dropped +
        # depth holds within every scrape.
        yield GaugeMetricFamily("ui_telemetry_spool_depth", "Records waiting in the spool.",
                                value=values[(c.WAITING, "")])
        yield GaugeMetricFamily("ui_telemetry_enabled",
                                "1 when the server collects telemetry, 0 when it is off.",
                                value=1 if self.telemetry_on() else 0)


def render(spool: Spool, telemetry_on: Callable[[], bool]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SpoolCollector(spool, telemetry_on))  # type: ignore[arg-type]
    return generate_latest(registry)
