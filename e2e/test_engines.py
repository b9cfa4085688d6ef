"""The module's journeys in every engine: Chromium, Firefox and WebKit (e2e/engines.py), against
a real `ui-telemetry serve` and a capture upstream. Assertions are on what the relay received
(its access log) and forwarded, which is the same for every engine."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support import wait_for

from .conftest import ARGS, CHROMIUM, Relay
from .engines import (
    ENGINES,
    Chromium,
    Display,
    Engine,
    EngineError,
    Firefox,
    WebKit,
    go_back,
    wait_shown,
)

pytestmark = pytest.mark.timeout(600)

HEADER = '[data-component-id="mlflow.experiments.table.header-name"]'
RUNS = '[data-component-id="mlflow.experiments.table.header-runs"]'
CREATE = '[data-component-id="mlflow.experiments.create-button"]'
REGISTER = '[data-component-id="mlflow.models.register-button"]'
THEME = '[data-component-id="mlflow.settings.general.theme-switch"]'
TELEMETRY_PREFIXES = ("mlflow-telemetry-", "ui-telemetry.")
TRIES = 200


@pytest.fixture(scope="session")
def display() -> Iterator[Display]:
    shown = Display()
    yield shown
    shown.stop()


@pytest.fixture
def launch(request: pytest.FixtureRequest) -> Iterator[Callable[..., Engine]]:
    """Start an engine by name; a fresh profile each time. One that cannot start fails the test
    with the reason."""
    started: list[Engine] = []

    def start(name: str, gpc: bool = False) -> Engine:
        try:
            if name == "chromium":
                engine: Engine = Chromium(request.getfixturevalue("playwright"), CHROMIUM, ARGS,
                                          gpc)
            elif name == "firefox":
                engine = Firefox(gpc)
            else:
                engine = WebKit(request.getfixturevalue("display"))
        except EngineError as err:
            pytest.fail(f"{name} could not start: {err}", pytrace=False)
        started.append(engine)
        return engine

    yield start
    for engine in started:
        engine.quit()


def component_ids(relay: Relay) -> Counter[str]:
    return Counter(p["componentId"] for p in relay.params() if p["eventType"] != "onView")


def posts(relay: Relay) -> int:
    """POSTs the relay received, from its access log (every engine's requests alike)."""
    return relay.server.logs().count("POST /ajax-api/3.0/mlflow/ui-telemetry")


def telemetry_storage(tab: Any) -> list[str]:
    keys = tab.evaluate("Object.keys(localStorage).concat(Object.keys(sessionStorage))")
    return [k for k in keys if k.startswith(TELEMETRY_PREFIXES)]


@pytest.mark.parametrize("engine", ENGINES)
def test_clicks_reach_the_sink(relay: Relay, launch: Callable[..., Engine], engine: str) -> None:
    browser = launch(engine)
    tab = browser.open(relay.base + "/experiments")
    tab.click(HEADER)
    tab.click(CREATE)
    wait_for(lambda: sum(component_ids(relay).values()) >= 2, timeout=20)
    time.sleep(0.5)  # anything extra would arrive now
    assert component_ids(relay) == Counter({"mlflow.experiments.table.header-name": 1,
                                            "mlflow.experiments.create-button": 1})


@pytest.mark.parametrize("engine", ENGINES)
def test_a_click_then_leaving_arrives(relay: Relay, launch: Callable[..., Engine],
                                      engine: str) -> None:
    browser = launch(engine)
    keep = browser.open(relay.base + "/")  # the browser stays open when the tab closes
    tab = browser.open(relay.base + "/experiments")
    tab.click(RUNS)
    tab.goto(relay.base + "/models")  # at once: the page's flush never ran
    tab.click(REGISTER)
    tab.close()  # at once too
    wait_for(lambda: sum(component_ids(relay).values()) >= 2, timeout=20)
    time.sleep(0.5)
    assert component_ids(relay) == Counter({"mlflow.experiments.table.header-runs": 1,
                                            "mlflow.models.register-button": 1})
    keep.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_the_settings_switch_off_silences_every_tab(relay: Relay,
                                                    launch: Callable[..., Engine],
                                                    engine: str) -> None:
    browser = launch(engine)
    settings = browser.open(relay.base + "/settings")
    other = browser.open(relay.base + "/experiments")
    time.sleep(0.5)
    before = posts(relay)
    settings.click("#telemetry-switch")
    assert settings.evaluate("document.getElementById('telemetry-switch').checked") is False
    time.sleep(1.2)  # the other tab follows within a second (the storage event)
    for _ in range(3):
        other.click(HEADER)
        settings.click(THEME)
    time.sleep(1.5)  # several flush intervals
    assert posts(relay) == before
    assert "mlflow.settings.telemetry.toggle-switch" not in component_ids(relay)


@pytest.mark.parametrize("engine", ENGINES)
def test_the_admins_opt_out_means_no_requests(start_relay: Callable[..., Relay],
                                              launch: Callable[..., Engine],
                                              engine: str) -> None:
    relay = start_relay(MLFLOW_DISABLE_TELEMETRY="true")
    browser = launch(engine)
    tab = browser.open(relay.base + "/experiments")
    tab.click(HEADER)
    tab.click(CREATE)
    tab.goto(relay.base + "/models")
    tab.click(REGISTER)
    time.sleep(1.0)
    assert posts(relay) == 0
    assert telemetry_storage(tab) == []


@pytest.mark.parametrize("engine", ["chromium", "firefox"])
def test_global_privacy_control_means_no_requests(relay: Relay, launch: Callable[..., Engine],
                                                  engine: str) -> None:
    # Firefox's own GPC switch (privacy.globalprivacycontrol.enabled); Chromium has none, so
    # the page is shown what a GPC browser shows.
    browser = launch(engine, gpc=True)
    tab = browser.open(relay.base + "/experiments")
    assert tab.evaluate("navigator.globalPrivacyControl") is True
    tab.click(HEADER)
    tab.click(CREATE)
    time.sleep(1.0)
    assert posts(relay) == 0
    assert telemetry_storage(tab) == []


def test_webkit_has_no_privacy_signal_so_the_settings_switch_is_the_way(
        relay: Relay, launch: Callable[..., Engine]) -> None:
    # Safari's engine exposes neither Global Privacy Control nor Do Not Track (removed in
    # Safari 12.1): in WebKit the Settings switch and the admin's opt-out are what turn it off.
    tab = launch("webkit").open(relay.base + "/experiments")
    assert tab.evaluate("[navigator.globalPrivacyControl, navigator.doNotTrack]") \
        in ([None, None], [False, None])
    tab.click(HEADER)
    wait_for(lambda: component_ids(relay), timeout=20)


@pytest.mark.parametrize("engine", ENGINES)
def test_back_from_the_back_forward_cache_loses_and_repeats_nothing(
        relay: Relay, launch: Callable[..., Engine], engine: str) -> None:
    browser = launch(engine)
    tab = browser.open(relay.base + "/experiments")
    tab.evaluate("window.__sameDocument = true")
    tab.click(RUNS)
    tab.goto(relay.base + "/models")
    tab.click(REGISTER)
    go_back(tab)
    restored = tab.evaluate("window.__sameDocument === true")
    tab.click(HEADER)
    wait_for(lambda: sum(component_ids(relay).values()) >= 3, timeout=20)
    time.sleep(0.5)
    assert component_ids(relay) == Counter({"mlflow.experiments.table.header-runs": 1,
                                            "mlflow.models.register-button": 1,
                                            "mlflow.experiments.table.header-name": 1})
    # The journey is about the back-forward cache: the page must have come back from it.
    assert restored, f"{engine} loaded the page again instead of restoring it"


@pytest.mark.parametrize("engine", ENGINES)
def test_no_record_is_lost_on_a_quick_navigation(start_relay: Callable[..., Relay],
                                                 launch: Callable[..., Engine],
                                                 engine: str) -> None:
    # The browser's default flush interval: each record leaves because its page is left.
    relay = start_relay(RELAY_UI_FLUSH_INTERVAL_MS="5000")
    browser = launch(engine)
    tab = browser.open(relay.base + "/experiments")
    links = {"/experiments": ("mlflow.sidebar.models-link", "/models"),
             "/models": ("mlflow.sidebar.experiments-link", "/experiments")}
    here = "/experiments"
    for _ in range(TRIES):
        link, there = links[here]
        # A person's click on a link: recorded, and the page left at once by the click itself.
        tab.click(f'[data-component-id="{link}"]')
        wait_shown(tab, lambda href, there=there: href.endswith(there))
        here = there
    sent = lambda: sum(component_ids(relay).values())  # noqa: E731
    wait_for(lambda: sent() >= TRIES, timeout=60, interval=0.5)
    time.sleep(1)  # a repeat would arrive now
    print(f"{engine} {browser.version}: {sent()} of {TRIES} clicks then navigations arrived")
    assert component_ids(relay) == Counter({"mlflow.sidebar.models-link": TRIES // 2,
                                            "mlflow.sidebar.experiments-link": TRIES // 2})
