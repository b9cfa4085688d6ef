"""Playwright in Debian's Chromium against a real `ui-telemetry serve` and a capture upstream."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    Request,
    sync_playwright,
)

from tests.support import CaptureUpstream, RelayServer

CHROMIUM = os.environ.get("UI_TELEMETRY_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
PAGES = {"home": "/", "experiments": "/experiments", "experiment": "/experiments/1",
         "models": "/models", "prompts": "/prompts", "settings": "/settings",
         "usage-tracking": "/usage-tracking"}

# Records a page's CSP violations where the test can read them.
CSP_WATCH = """
window.__csp = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));
"""


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    """One Playwright for the session: a second sync_playwright() in one thread fails."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run `bash scripts/test.sh`, "
                    "which installs Debian's chromium")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
    yield b
    b.close()


# A name that is not localhost: a page served by it over plain HTTP is not a secure context, as
# an MLflow server reached by an intranet name is not.
INSECURE_HOST = "mlflow.test"


@pytest.fixture(scope="session")
def insecure_browser(playwright: Playwright) -> Iterator[Browser]:
    """Chromium that resolves INSECURE_HOST to 127.0.0.1."""
    b = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
        *ARGS, f"--host-resolver-rules=MAP {INSECURE_HOST} 127.0.0.1"])
    yield b
    b.close()


class Relay:
    def __init__(self, server: RelayServer, upstream: CaptureUpstream) -> None:
        self.server = server
        self.upstream = upstream
        self.base = server.base

    def params(self) -> list[dict]:
        import json

        return [json.loads(d["params"]) for d in self.upstream.data()]


@pytest.fixture
def start_relay(tmp_path: Path) -> Iterator[Callable[..., Relay]]:
    started: list[Relay] = []

    def start(**env: str) -> Relay:
        upstream = CaptureUpstream()
        server = RelayServer(tmp_path / f"data{len(started)}", {
            "RELAY_INGESTION_URL": upstream.url, "RELAY_FLUSH_INTERVAL": "0.2s",
            "RELAY_UI_FLUSH_INTERVAL_MS": "300", **env}, workers=2).start()
        relay = Relay(server, upstream)
        started.append(relay)
        return relay

    yield start
    for relay in started:
        relay.server.stop()
        relay.upstream.close()


@pytest.fixture
def relay(start_relay: Callable[..., Relay]) -> Relay:
    return start_relay()


class Watched:
    """A browser context whose telemetry requests, console errors and CSP reports are kept."""

    def __init__(self, context: BrowserContext) -> None:
        self.context = context
        self.telemetry: list[Request] = []
        self.errors: list[str] = []
        context.add_init_script(CSP_WATCH)
        context.on("request", self._request)

    def _request(self, request: Request) -> None:
        if "ui-telemetry" in request.url:
            self.telemetry.append(request)

    def page(self, path: str | None = None, base: str = "") -> Page:
        page = self.context.new_page()
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        if path is not None:
            page.goto(base + path)
        return page


@pytest.fixture
def watched(browser: Browser) -> Iterator[Callable[..., Watched]]:
    contexts: list[BrowserContext] = []

    def make(**options: object) -> Watched:
        context = browser.new_context(**options)  # type: ignore[arg-type]
        contexts.append(context)
        return Watched(context)

    yield make
    for c in contexts:
        c.close()


CHARTS = ("weekly", "components", "trend", "event-types")


def assert_dashboard_drawn(w: Watched, page: Page, component_ids: set[str]) -> None:
    """The usage dashboard as a person sees it: every chart drawn (marks in its SVG, on
    screen), the components in its table, and no console error or CSP violation."""
    for chart in CHARTS:
        svg = page.locator(f"#chart-{chart} .wide svg")
        box = svg.bounding_box()
        assert box is not None and box["width"] > 200 and box["height"] > 50, chart
        marks = svg.locator('[role="graphics-symbol"]')
        assert marks.count() > 0, f"no marks drawn in the {chart} chart"
        assert marks.first.bounding_box() is not None, chart
    table = page.locator("#chart-components + .table-wrap").inner_text()
    for component_id in component_ids:
        assert component_id in table
    assert page.evaluate("window.__csp") == []
    assert page.evaluate("document.scripts.length") == 0  # it needs none
    assert w.errors == []
