"""The dashboard's files: the page carries its figures and charts (no script, no inline style),
each table's CSV holds what the page shows, nothing identifies anyone, and the relay serves the
same files live, under its prefix and inside MLflow's prefix."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from relay.control.config import load_config
from relay.insight import charts
from relay.insight.report import usage
from relay.insight.site import names, render, tables, write_site
from relay.insight.store import UsageStore
from relay.serve.app import create_app

from .test_report import TODAY, generate, write


@pytest.fixture
def figures(tmp_path: Path) -> dict:
    store = UsageStore(tmp_path / "usage.duckdb")
    store.load_file(_sink(tmp_path, generate(80)))
    try:
        return usage(store, weeks=6, min_installations=5, today=TODAY)
    finally:
        store.close()


def _sink(tmp_path: Path, records: list[dict]) -> Path:
    write(tmp_path / "forwarded.jsonl", records)
    return tmp_path / "forwarded.jsonl"


def test_the_page_carries_every_figure_and_a_chart_for_each(figures: dict,
                                                            tmp_path: Path) -> None:
    written = write_site(figures, tmp_path / "site")
    assert sorted(p.name for p in written) == sorted(names(figures))
    html = (tmp_path / "site" / "index.html").read_text()
    # Strict CSP: nothing inline that a browser would have to allow.
    assert "<script" not in html and "<style" not in html and " style=" not in html
    assert re.findall(r'(?:href|src)="([^"]+)"', html) == [
        "usage.css", "data:,", "usage.json",
        *(f"usage-{name}.csv" for name in tables(figures)),
        *(f"usage-{name}.csv" for name in tables(figures))]
    for name in charts.SPECS:  # each chart drawn, wide and narrow, with marks in it
        figure = html[html.index(f'id="chart-{name}"'):]
        figure = figure[:figure.index("</figure>")]
        assert figure.count("<svg") == 2 and 'role="graphics-symbol"' in figure, name
    assert f"K = {figures['min_installations']}." in html
    for c in figures["components"]:
        assert f'<th scope="row">{c["componentId"]}</th>' in html
    for w in figures["weekly"]:
        assert w["week"] in html


def test_each_csv_is_its_table(figures: dict) -> None:
    components = list(csv.DictReader(io.StringIO(render(figures, "usage-components.csv"))))
    assert [(r["componentId"], int(r["installations"]), int(r["events"]))
            for r in components] == [(c["componentId"], c["installations"], c["events"])
                                     for c in figures["components"]]
    weekly = list(csv.reader(io.StringIO(render(figures, "usage-weekly.csv"))))
    assert weekly[0] == ["week", "installations", "events"]
    assert [[w["week"], "" if w["installations"] is None else str(w["installations"])]
            for w in figures["weekly"]] == [row[:2] for row in weekly[1:]]
    assert render(figures, "usage-nothing.csv") is None


def test_no_id_and_no_time_finer_than_a_day_in_any_file(tmp_path: Path) -> None:
    records = generate(60)
    store = UsageStore(tmp_path / "usage.duckdb")
    store.load_file(_sink(tmp_path, records))
    figures = usage(store, weeks=6, min_installations=1, today=TODAY)
    store.close()
    text = "".join(render(figures, name) or "" for name in names(figures))
    for r in records:
        for value in (r["event_id"], r["installation_id"], r["session_id"],
                      json.loads(r["params"])["componentViewId"], str(r["timestamp_ns"])):
            assert value not in text
    # Dates only: no hh:mm anywhere in the figures or the tables.
    assert not re.search(r"\d\d:\d\d", render(figures, "usage.json") or "")
    assert not re.search(r"\d\d:\d\d", "".join(
        render(figures, n) or "" for n in names(figures) if n.endswith(".csv")))


def test_an_empty_store_draws_no_chart_and_says_so(tmp_path: Path) -> None:
    store = UsageStore(tmp_path / "usage.duckdb")
    html = render(usage(store, today=TODAY), "index.html") or ""
    store.close()
    assert "<svg" not in html
    assert html.count("Nothing to draw yet") == len(charts.SPECS)


@pytest.mark.parametrize(("prefix", "mlflow"), [("", False), ("/mlflow", False), ("", True)])
def test_the_relay_serves_the_same_files_live(tmp_path: Path, prefix: str, mlflow: bool,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    today = datetime.now(UTC).date()
    shift = (today - TODAY).days * 86_400 * 10**9
    records = [dict(r, timestamp_ns=r["timestamp_ns"] + shift) for r in generate(40)]
    data = tmp_path / "data"
    data.mkdir()
    _sink(data, records)
    env = {"RELAY_DATA_DIR": str(data), "RELAY_STATIC_PREFIX": prefix,
           "RELAY_USAGE_MIN_INSTALLATIONS": "3"}
    if mlflow:
        from flask import Flask

        from relay.mlflow.plugin import install

        for name, value in env.items():
            monkeypatch.setenv(name, value)
        app = Flask("mlflow-like")
        relay = install(app)
        base = "/ui-telemetry"
    else:
        app = create_app(load_config(env), start_forwarder=False)
        base = prefix
    client = app.test_client()
    page = client.get(f"{base}/usage")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store"
    live = client.get(f"{base}/usage.json").get_json()
    assert live["min_installations"] == 3
    assert live["totals"]["events"] == sum(
        1 for r in records
        if datetime.fromtimestamp(r["timestamp_ns"] / 1e9, UTC).date().isoformat()
        >= live["period"]["from"])
    for c in live["components"]:
        assert c["componentId"] in page.text
    assert client.get(f"{base}/usage.css").mimetype == "text/css"
    assert client.get(f"{base}/usage-weekly.csv").mimetype == "text/csv"
    assert client.get(f"{base}/usage-nothing.csv").status_code == 404
    if mlflow:
        relay.forwarder.stop()
