"""The usage dashboard, as a new user meets it: `ui-telemetry serve` with its file sink, clicks
in the served UI, then the live page and `ui-telemetry report`'s DIR/index.html opened from disk,
in Debian's Chromium. (Inside MLflow: e2e/test_mlflow.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import REPO, RelayServer, read_sink, wait_for

from .conftest import Watched, assert_dashboard_drawn

CLICKED = {"mlflow.experiments.table.header-runs", "mlflow.models.register-button",
           "mlflow.experiments.table.header-name"}


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[RelayServer]:
    # As a user starts it: records go to the file sink in the data dir. K=1, since one browser
    # is one installation.
    server = RelayServer(tmp_path / "data", {"RELAY_UI_FLUSH_INTERVAL_MS": "300",
                                             "RELAY_USAGE_MIN_INSTALLATIONS": "1"}).start()
    yield server
    server.stop()


def sent(relay: RelayServer) -> set[str]:
    return {json.loads(d["params"])["componentId"] for d in read_sink(relay.data_dir)}


def click_around(w: Watched, base: str) -> None:
    page = w.page(base + "/experiments")
    page.locator('[data-component-id="mlflow.experiments.table.header-runs"]').click()
    page.locator('[data-component-id="mlflow.experiments.table.header-name"]').click()
    page.goto(base + "/models")
    page.locator('[data-component-id="mlflow.models.register-button"]').click()
    page.close()


def test_a_new_user_clicks_around_and_sees_the_clicks_in_charts(
        relay: RelayServer, watched: Callable[..., Watched], tmp_path: Path) -> None:
    click_around(watched(), relay.base)
    wait_for(lambda: sent(relay) >= CLICKED, timeout=30)

    # Live, under the relay's CSP; the served UI links to it.
    w = watched()
    page = w.page(relay.base + "/")
    page.get_by_role("link", name="Usage dashboard").click()
    page.wait_for_url(relay.base + "/usage")
    assert_dashboard_drawn(w, page, CLICKED)
    live = json.loads(page.goto(relay.base + "/usage.json").text())
    assert {c["componentId"] for c in live["components"]} >= CLICKED

    # The static site, as the README says: report, then open DIR/index.html from disk.
    site = tmp_path / "site"
    out = subprocess.run(
        [sys.executable, "-m", "relay.serve.cli", "report", "--out", str(site),
         "--min-installations", "1"],
        env={**relay.env}, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    w = watched()
    page = w.page((site / "index.html").as_uri())
    assert_dashboard_drawn(w, page, CLICKED)
    assert json.loads((site / "usage.json").read_text())["totals"] == live["totals"]


def test_the_live_page_keeps_the_relays_csp_and_answers_each_file(
        relay: RelayServer, watched: Callable[..., Watched]) -> None:
    w = watched()
    page = w.page()
    response = page.goto(relay.base + "/usage")
    assert response is not None and response.ok
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "unsafe" not in csp
    # Nothing clicked yet: the page says so instead of drawing empty charts as figures.
    assert "Nothing reached K installations yet" in page.inner_text("main")
    assert w.errors == [] and page.evaluate("window.__csp") == []
    for name, kind in (("usage.css", "text/css"), ("usage.json", "application/json"),
                       ("usage-components.csv", "text/csv")):
        answer = page.request.get(f"{relay.base}/{name}")
        assert answer.ok and answer.headers["content-type"].startswith(kind), name
    assert page.request.get(f"{relay.base}/usage-nothing.csv").status == 404
