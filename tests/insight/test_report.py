"""The usage store and its figures: generated records with known answers, loaded from the file
sink the way `ui-telemetry report` loads them."""

from __future__ import annotations

import json
import random
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from relay.insight.report import usage
from relay.insight.store import UsageStore

TODAY = date(2026, 11, 25)  # a Wednesday
# MLflow-like componentIds, the most popular first.
COMPONENTS = [
    ("mlflow.experiments.table.experiment-link", "typography_link"),
    ("mlflow.experiment.runs-table.run-link", "typography_link"),
    ("mlflow.sidebar.experiments-link", "typography_link"),
    ("mlflow.experiment.compare-runs-button", "button"),
    ("mlflow.run.metrics-tab", "tabs"),
    ("mlflow.sidebar.models-link", "typography_link"),
    ("mlflow.experiment.create-button", "button"),
    ("mlflow.run.artifacts-tab", "tabs"),
    ("mlflow.models.register-button", "button"),
    ("mlflow.experiment.search-input", "input"),
    ("mlflow.sidebar.prompts-link", "typography_link"),
    ("mlflow.settings.telemetry-switch", "switch"),
]


def generate(installations: int, seed: int = 7) -> list[dict]:
    """DATA lines of `installations` browsers over six weeks: feature n is used by about one
    installation in n + 1 (skewed popularity), under two relay versions."""
    rng = random.Random(seed)
    records = []
    for i in range(installations):
        inst = str(uuid.UUID(int=rng.getrandbits(128)))
        version = "0.1.0" if i % 3 else "0.2.0"
        for n, (cid, ctype) in enumerate(COMPONENTS):
            if rng.random() > 1 / (n + 1):
                continue
            for _ in range(rng.randint(1, 4)):
                day = TODAY - timedelta(days=rng.randint(0, 41))
                at = datetime(day.year, day.month, day.day, rng.randint(0, 23), tzinfo=UTC)
                records.append({
                    "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
                    "event_name": "ui_event", "timestamp_ns": int(at.timestamp()) * 10**9,
                    "params": json.dumps({"componentId": cid, "componentType": ctype,
                                          "componentViewId": str(uuid.uuid4()),
                                          "eventType": rng.choice(["onClick", "onView"])}),
                    "installation_id": inst, "session_id": f"{inst}-{day.isoformat()}",
                    "version": version})
    return records


def expected(records: list[dict], weeks: int, k: int) -> dict:
    """The figures, worked out in plain Python."""
    first = TODAY - timedelta(days=TODAY.weekday()) - timedelta(weeks=weeks - 1)
    inside = []
    for r in records:
        day = datetime.fromtimestamp(r["timestamp_ns"] / 1e9, UTC).date()
        if first <= day <= TODAY:
            inside.append((r, day))
    per_component: dict[tuple[str, str], list] = defaultdict(lambda: [set(), 0])
    per_week: dict[date, list] = defaultdict(lambda: [set(), 0])
    per_component_week: dict[tuple, set] = defaultdict(set)
    for r, day in inside:
        params = json.loads(r["params"])
        entry = per_component[(params["componentId"], params["componentType"])]
        entry[0].add(r["installation_id"])
        entry[1] += 1
        monday = day - timedelta(days=day.weekday())
        per_component_week[(params["componentId"], params["componentType"], monday)].add(
            r["installation_id"])
        week = per_week[monday]
        week[0].add(r["installation_id"])
        week[1] += 1
    mondays = [first + timedelta(weeks=n) for n in range(weeks)]

    def trend(c: str, t: str) -> list[int | None]:
        counts = [len(per_component_week[(c, t, m)]) for m in mondays]
        return [n if n >= k else None for n in counts]

    components = sorted(
        ({"componentId": c, "componentType": t, "installations": len(i), "events": e,
          "share": round(len(i) / len({r["installation_id"] for r, _ in inside}), 4),
          "trend": trend(c, t)}
         for (c, t), (i, e) in per_component.items() if len(i) >= k),
        key=lambda x: (-x["installations"], -x["events"], x["componentId"]))
    weekly = []
    for n in range(weeks):
        week = first + timedelta(weeks=n)
        insts, events = per_week.get(week, (set(), 0))
        shown = len(insts) >= k
        weekly.append({"week": week.isoformat(), "installations": len(insts) if shown else None,
                       "events": events if shown else None})
    return {"totals": {"installations": len({r["installation_id"] for r, _ in inside}),
                       "sessions": len({r["session_id"] for r, _ in inside}),
                       "events": len(inside)},
            "components": components, "weekly": weekly,
            "period": {"from": first.isoformat(), "to": TODAY.isoformat()}}


def write(path: Path, records: list[dict], mode: str = "w") -> None:
    with open(path, mode) as f:
        f.write("".join(json.dumps(r) + "\n" for r in records))


@pytest.fixture
def store(tmp_path: Path) -> UsageStore:
    return UsageStore(tmp_path / "usage.duckdb")


@pytest.mark.parametrize(("weeks", "k"), [(4, 10), (6, 5), (2, 30)])
def test_the_figures_are_exactly_the_known_answers(tmp_path: Path, store: UsageStore,
                                                   weeks: int, k: int) -> None:
    records = generate(120)
    write(tmp_path / "forwarded.jsonl", records)
    assert store.load_file(tmp_path / "forwarded.jsonl") == len(records)
    figures = usage(store, weeks=weeks, min_installations=k, today=TODAY)
    want = expected(records, weeks, k)
    assert figures["min_installations"] == k
    assert figures["period"] == want["period"]
    assert figures["totals"] == want["totals"]
    assert figures["components"] == want["components"]
    assert figures["weekly"] == want["weekly"]
    assert figures["incomplete_from"] == "2026-11-24"


def _figures_match(figures: dict, want: dict) -> None:
    for key in ("period", "totals", "components", "weekly"):
        assert figures[key] == want[key], key


def test_loaded_in_parts_the_figures_are_those_of_one_load(tmp_path: Path,
                                                           store: UsageStore) -> None:
    # The relay loads the sink each time /usage is opened: many small loads that add to the
    # same weeks, installations and components, some records sent again. The last part comes
    # as `consume` brings it, whose rollup waits for the report.
    records = generate(120, seed=11)
    sink = tmp_path / "forwarded.jsonl"
    sink.touch()
    for part in range(6):
        write(sink, records[part::7], "a")
        store.load_file(sink)
        store.load_lines("".join(json.dumps(r) + "\n" for r in records[part::11]).encode())
    store.load_lines("".join(json.dumps(r) + "\n" for r in records[6::7]).encode())
    assert store.count() == len(records)
    for weeks, k in ((6, 5), (3, 1)):
        _figures_match(usage(store, weeks=weeks, min_installations=k, today=TODAY),
                       expected(records, weeks, k))
    # Each week, installation, component, event type and version is one row of the rollup.
    rows, keys = store.db.execute(
        "SELECT count(*), count(DISTINCT (week, installation_id, component_id, component_type, "
        "event_type, version)) FROM weekly").fetchone()
    assert rows == keys
    rows, keys = store.db.execute(
        "SELECT count(*), count(DISTINCT (week, component_id, component_type, installation_id)) "
        "FROM weekly_components").fetchone()
    assert rows == keys


def test_records_after_today_or_before_the_period_are_left_out(tmp_path: Path,
                                                               store: UsageStore) -> None:
    # TODAY is a Wednesday: its week's Thursday and the next week are after it (an earlier
    # `today`, or a browser whose clock runs ahead), the Sunday before the period is before it.
    records = generate(60, seed=12)
    first = TODAY - timedelta(days=TODAY.weekday()) - timedelta(weeks=5)
    outside = [dict(r, event_id=str(uuid.uuid4()), timestamp_ns=_ns_on(day))
               for r in records[:40]
               for day in (TODAY + timedelta(days=1), TODAY + timedelta(days=8),
                           first - timedelta(days=1))]
    inside = [dict(r, event_id=str(uuid.uuid4()), timestamp_ns=_ns_on(day))
              for r in records[:10] for day in (TODAY, first)]
    write(tmp_path / "forwarded.jsonl", records + outside + inside)
    store.load_file(tmp_path / "forwarded.jsonl")
    figures = usage(store, weeks=6, min_installations=5, today=TODAY)
    _figures_match(figures, expected(records + outside + inside, 6, 5))
    assert figures["totals"]["events"] == sum(_inside(r, 6) for r in records) + len(inside)


def test_a_store_made_before_the_rollup_is_rolled_up_by_its_first_report(tmp_path: Path) -> None:
    records = generate(80, seed=13)
    write(tmp_path / "forwarded.jsonl", records)
    old = UsageStore(tmp_path / "usage.duckdb")
    old.load_file(tmp_path / "forwarded.jsonl")
    old.db.execute("DROP TABLE weekly; DROP TABLE weekly_components; DROP TABLE weekly_sessions; "
                   "DROP TABLE rolled_up")
    old.close()  # as the first version made it: the events alone
    store = UsageStore(tmp_path / "usage.duckdb")
    _figures_match(usage(store, weeks=6, min_installations=5, today=TODAY),
                   expected(records, 6, 5))
    assert store.load_file(tmp_path / "forwarded.jsonl") == 0
    # A rollup made before it had a table of components of its own.
    store.db.execute("DROP TABLE weekly_components")
    store.close()
    store = UsageStore(tmp_path / "usage.duckdb")
    _figures_match(usage(store, weeks=6, min_installations=5, today=TODAY),
                   expected(records, 6, 5))


def test_the_threshold_hides_a_component_at_k_minus_one_and_shows_it_at_k(
        tmp_path: Path, store: UsageStore) -> None:
    records = generate(40)
    rare = [dict(r, event_id=str(uuid.uuid4()),
                 installation_id=f"rare-{n}", session_id=f"rare-{n}",
                 params=json.dumps({"componentId": "mlflow.rare.button",
                                    "componentType": "button", "componentViewId": "v",
                                    "eventType": "onClick"}))
            for n, r in enumerate(records[:5])]
    write(tmp_path / "forwarded.jsonl", records + rare)
    store.load_file(tmp_path / "forwarded.jsonl")
    shown = {c["componentId"] for c in usage(store, weeks=6, min_installations=5,
                                             today=TODAY)["components"]}
    hidden = usage(store, weeks=6, min_installations=6, today=TODAY)
    assert "mlflow.rare.button" in shown
    assert "mlflow.rare.button" not in {c["componentId"] for c in hidden["components"]}
    assert "other" not in json.dumps(hidden).lower()
    # Totals still count every event, the hidden component's included.
    assert hidden["totals"]["events"] == len(records) + 5 - sum(
        1 for r in records if not _inside(r, 6))


def _inside(record: dict, weeks: int) -> bool:
    first = TODAY - timedelta(days=TODAY.weekday()) - timedelta(weeks=weeks - 1)
    return first <= datetime.fromtimestamp(record["timestamp_ns"] / 1e9, UTC).date() <= TODAY


def test_no_id_and_no_time_finer_than_a_day_in_the_figures(tmp_path: Path,
                                                           store: UsageStore) -> None:
    records = generate(60)
    write(tmp_path / "forwarded.jsonl", records)
    store.load_file(tmp_path / "forwarded.jsonl")
    text = json.dumps(usage(store, weeks=6, min_installations=1, today=TODAY))
    for r in records:
        for value in (r["event_id"], r["installation_id"], r["session_id"],
                      json.loads(r["params"])["componentViewId"], str(r["timestamp_ns"])):
            assert value not in text
    assert "T" not in "".join(w["week"] for w in json.loads(text)["weekly"])


def test_loading_twice_appending_and_a_half_written_line(tmp_path: Path,
                                                         store: UsageStore) -> None:
    sink = tmp_path / "forwarded.jsonl"
    first, second = generate(10, seed=1), generate(10, seed=2)
    write(sink, first)
    assert store.load_file(sink) == len(first)
    assert store.load_file(sink) == 0  # nothing new is read again
    write(sink, second[:-1], "a")
    last = json.dumps(second[-1]) + "\n"
    with open(sink, "a") as f:
        f.write(last[:40])  # the sink is still writing this line
    assert store.load_file(sink) == len(second) - 1
    with open(sink, "a") as f:
        f.write(last[40:])
    assert store.load_file(sink) == 1
    assert store.count() == len(first) + len(second)


def test_a_truncated_or_rotated_file_is_read_from_its_start_and_counted_once(
        tmp_path: Path, store: UsageStore) -> None:
    sink = tmp_path / "forwarded.jsonl"
    old, new = generate(10, seed=3), generate(5, seed=4)
    write(sink, old)
    store.load_file(sink)
    write(sink, old[:3] + new)  # truncated and written again, shorter than what was read
    store.load_file(sink)
    assert store.count() == len(old) + len(new)
    sink.rename(tmp_path / "forwarded.jsonl.1")  # rotated: a new file at the same path
    write(sink, new + generate(2, seed=5))
    store.load_file(sink)
    assert store.count() == len(old) + len(new) + len(generate(2, seed=5))


def test_the_report_command_loads_the_file_sink_and_writes_usage_json(tmp_path: Path) -> None:
    import subprocess
    import sys

    from ..support import REPO

    data = tmp_path / "data"
    data.mkdir()
    today = datetime.now(UTC).date()
    records = [dict(r, timestamp_ns=_ns_on(today)) for r in generate(30, seed=9)]
    write(data / "forwarded.jsonl", records)
    env = {"RELAY_DATA_DIR": str(data), "RELAY_IGNORE_CI": "true", "PYTHONPATH": str(REPO),
           "PATH": "/usr/bin:/bin"}

    def report(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "relay.serve.cli", "report", *args],
                              env=env, capture_output=True, text=True, timeout=60)

    out = report("--out", str(tmp_path / "site"), "--min-installations", "1")
    assert out.returncode == 0, out.stderr
    assert f"loaded {len(records)} new record(s)" in out.stdout
    figures = json.loads((tmp_path / "site" / "usage.json").read_text())
    assert figures["totals"]["events"] == len(records)
    assert figures["min_installations"] == 1 and figures["period"]["to"] == today.isoformat()
    again = report("--out", str(tmp_path / "site"), "--min-installations", "1")
    assert "loaded 0 new record(s)" in again.stdout  # read once
    assert json.loads((tmp_path / "site" / "usage.json").read_text()) == figures
    bad = report("--min-installations", "0")
    assert bad.returncode == 2 and "must be at least 1" in bad.stderr


def _ns_on(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, 12, tzinfo=UTC).timestamp()) * 10**9


def test_a_record_the_sink_wrote_twice_counts_once(tmp_path: Path, store: UsageStore) -> None:
    # The forwarder resends a batch whose delivery it could not note (at-least-once).
    records = generate(10, seed=6)
    write(tmp_path / "forwarded.jsonl", records + records[:7])
    assert store.load_file(tmp_path / "forwarded.jsonl") == len(records)
    assert store.load_lines("".join(json.dumps(r) + "\n" for r in records[3:]).encode()) == 0
    assert store.count() == len(records)
