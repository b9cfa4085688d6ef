"""The usage figures of a store, safe to publish: what `usage.json` holds.

Privacy of what is published:
- a component used by fewer than K distinct installations in the period is left out (no
  "other" row, which would let one subtract it back);
- a week with fewer than K installations shows no figures;
- no id of any kind, and no time finer than a day.
`totals` and each week's `events` count every event, those of hidden components included.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from .store import UsageStore, bind

DEFAULT_K = 10
DEFAULT_WEEKS = 12
INCOMPLETE_DAYS = 2  # late records still arrive for the last two days


def _ns(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 10**9


# The period's rows are the rollup's whole weeks before this one, and this week's events up to
# the end of `today` (the rollup's week of today would also hold what comes later: an earlier
# `today`, or a clock that runs ahead). This week's are rolled up first, the same way, into
# small tables of their own; every figure is then one aggregate over the two, which DuckDB
# spreads over every core.
_THIS_WEEK = [
    """CREATE OR REPLACE TEMP TABLE this_week AS
       SELECT week_of(timestamp_ns) AS week, installation_id, component_id, component_type,
              event_type, version, count(*) AS events
       FROM events WHERE timestamp_ns >= $low_ns AND timestamp_ns < $high_ns GROUP BY ALL""",
    """CREATE OR REPLACE TEMP TABLE this_week_sessions AS SELECT DISTINCT session_id
       FROM events WHERE timestamp_ns >= $low_ns AND timestamp_ns < $high_ns""",
]
_PERIOD = ("WITH period AS (SELECT * FROM weekly WHERE week >= $first AND week < $this_week "
           "UNION ALL SELECT * FROM this_week), "
           "used AS (SELECT * FROM weekly_components WHERE week >= $first AND week < $this_week "
           "UNION ALL SELECT DISTINCT week, component_id, component_type, installation_id "
           "FROM this_week) ")
_QUERIES = {
    "totals": "SELECT count(DISTINCT installation_id), coalesce(sum(events), 0), "
              "(SELECT count(DISTINCT session_id) FROM (SELECT session_id FROM weekly_sessions "
              "WHERE week >= $first AND week < $this_week "
              "UNION ALL SELECT session_id FROM this_week_sessions)) FROM period",
    "components": "SELECT component_id, component_type, n, e FROM "
                  "(SELECT component_id, component_type, count(DISTINCT installation_id) AS n "
                  " FROM used GROUP BY ALL HAVING n >= $k) "
                  "JOIN (SELECT component_id, component_type, sum(events) AS e FROM period "
                  "      GROUP BY ALL) USING (component_id, component_type) "
                  "ORDER BY n DESC, e DESC, component_id, component_type",
    # a row of `used` is one installation of a week and component already
    "component_weeks": "SELECT component_id, component_type, week, count(*) FROM used "
                       "GROUP BY ALL",
    "weeks": "SELECT week, count(DISTINCT installation_id), sum(events) FROM period "
             "GROUP BY week",
    "event_types": "SELECT event_type, count(DISTINCT installation_id) AS n, sum(events) AS e "
                   "FROM period GROUP BY ALL HAVING n >= $k ORDER BY e DESC, event_type",
    "versions": "SELECT coalesce(version, 'unknown'), count(DISTINCT installation_id) AS n "
                "FROM period GROUP BY ALL HAVING n >= $k ORDER BY n DESC, 1",
}


def _run_all(store: UsageStore, params: dict[str, Any]) -> dict[str, list[tuple[Any, ...]]]:
    def run(sql: str) -> list[tuple[Any, ...]]:
        return store.db.execute(sql, bind(sql, params)).fetchall()

    for sql in _THIS_WEEK:
        run(sql)
    try:
        return {name: run(_PERIOD + sql) for name, sql in _QUERIES.items()}
    finally:
        run("DROP TABLE this_week; DROP TABLE this_week_sessions")


def usage(store: UsageStore, *, weeks: int = DEFAULT_WEEKS, min_installations: int = DEFAULT_K,
          today: date | None = None) -> dict[str, Any]:
    """The figures of the last `weeks` ISO weeks up to `today` (UTC)."""
    if weeks < 1 or min_installations < 1:
        raise ValueError("weeks and min_installations must be at least 1")
    today = today or datetime.now(UTC).date()
    first = today - timedelta(days=today.weekday()) - timedelta(weeks=weeks - 1)
    k = min_installations
    store.roll_up()
    this_week = today - timedelta(days=today.weekday())
    rows = _run_all(store, {"first": first, "this_week": this_week, "k": k,
                            "low_ns": _ns(this_week),
                            "high_ns": _ns(today + timedelta(days=1))})
    [(installations, events, sessions)] = rows["totals"]
    components = [
        {"componentId": cid, "componentType": ctype, "installations": n, "events": e,
         "share": round(n / installations, 4) if installations else 0.0}
        for cid, ctype, n, e in rows["components"]]
    mondays = [first + timedelta(weeks=i) for i in range(weeks)]
    by_week: dict[tuple[str, str], dict[date, int]] = {}
    for cid, ctype, w, n in rows["component_weeks"]:
        by_week.setdefault((cid, ctype), {})[w] = n
    for c in components:  # each week's installations, hidden below K as the week's are
        weeks_of = by_week[(c["componentId"], c["componentType"])]
        c["trend"] = [n if (n := weeks_of.get(w, 0)) >= k else None for w in mondays]
    counted = {w: (n, e) for w, n, e in rows["weeks"]}
    weekly = []
    for week in mondays:
        n, e = counted.get(week, (0, 0))
        shown = n >= k
        weekly.append({"week": week.isoformat(), "installations": n if shown else None,
                       "events": e if shown else None})
    event_types = [{"eventType": t, "installations": n, "events": e}
                   for t, n, e in rows["event_types"]]
    versions = [{"version": v, "installations": n} for v, n in rows["versions"]]
    return {
        "min_installations": k,
        "period": {"from": first.isoformat(), "to": today.isoformat()},
        "incomplete_from": (today - timedelta(days=INCOMPLETE_DAYS - 1)).isoformat(),
        "totals": {"installations": installations, "sessions": sessions, "events": events},
        "components": components,
        "weekly": weekly,
        "event_types": event_types,
        "versions": versions,
    }
