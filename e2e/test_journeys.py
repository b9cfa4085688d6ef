"""The seven user journeys of the served UI, in Debian's Chromium."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support import wait_for

from .conftest import ARTIFACTS, INSECURE_HOST, PAGES, Relay, Watched

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
Expected = tuple[str, str, str]  # componentId, componentType, eventType
# What telemetry may write while on; saved batches get a key each, under the first prefix.
TELEMETRY_KEYS = ("mlflow-telemetry-installation-id", "mlflow-telemetry-session-id",
                  "ui-telemetry.unsent_v1", "ui-telemetry.recent_v1", "ui-telemetry.rollout_v1",
                  "ui-telemetry.relay-disabled_v1")


def telemetry_keys(stored: set[str]) -> set[str]:
    return {key for key in stored if key.startswith(TELEMETRY_KEYS)}


def cid(component_id: str) -> str:
    return f'[data-component-id="{component_id}"]'


def triples(relay: Relay, include_views: bool = False) -> Counter[Expected]:
    return Counter((p["componentId"], p["componentType"], p["eventType"])
                   for p in relay.params() if include_views or p["eventType"] != "onView")


def click(page: Page, component_id: str) -> None:
    page.locator(cid(component_id)).first.click()


# --- 1 ---------------------------------------------------------------------------------------

def test_every_page_click_yields_exactly_one_record(relay: Relay,
                                                    watched: Callable[..., Watched]) -> None:
    w = watched()
    page = w.page("/", relay.base)
    expected: Counter[Expected] = Counter()

    def on(component_id: str, ctype: str, event: str = "onClick") -> None:
        click(page, component_id)
        expected[(component_id, ctype, event)] += 1

    # Clicks on nothing instrumented yield nothing.
    def elsewhere() -> None:
        page.locator("h1").click()
        page.locator("main").click(position={"x": 5, "y": 5})

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "home.png"))
    elsewhere()
    on("mlflow.home.telemetry-alert.close", "button")
    expect(page.locator("#telemetry-alert")).to_be_hidden()

    page.goto(relay.base + "/experiments")
    elsewhere()
    on("mlflow.experiments.table.header-name", "table_header")
    on("mlflow.experiments.create-button", "button")
    page.fill(cid("mlflow.experiments.create-form.name"), "my secret experiment name")
    expected[("mlflow.experiments.create-form.name", "input", "onValueChange")] += 1
    on("mlflow.experiments.create-form.submit", "button")
    expected[("mlflow.experiments.create-form", "form", "onSubmit")] += 1
    expect(page.locator("#experiments-table")).to_contain_text("my secret experiment name")
    page.fill(cid("mlflow.experiments.search"), "fraud")
    page.keyboard.press("Tab")  # the change event fires on blur
    expected[("mlflow.experiments.search", "input", "onValueChange")] += 1
    page.screenshot(path=str(ARTIFACTS / "experiments.png"))

    page.goto(relay.base + "/experiments/1")
    elsewhere()
    on("mlflow.experiment.tabs.traces", "tabs")
    on("mlflow.experiment.tabs.runs", "tabs")
    on("mlflow.experiment.runs.select-row", "checkbox", "onValueChange")
    page.screenshot(path=str(ARTIFACTS / "experiment.png"))

    page.goto(relay.base + "/models")
    elsewhere()
    on("mlflow.models.register-button", "button")
    on("mlflow.models.register-form.cancel", "button")
    page.screenshot(path=str(ARTIFACTS / "models.png"))

    page.goto(relay.base + "/prompts")
    elsewhere()
    on("mlflow.prompts.create-button", "button")
    on("mlflow.prompts.create-form.cancel", "button")
    page.screenshot(path=str(ARTIFACTS / "prompts.png"))

    page.goto(relay.base + "/settings")
    elsewhere()
    on("mlflow.settings.general.theme-switch", "switch", "onValueChange")
    on("mlflow.settings.general.theme-switch", "switch", "onValueChange")
    on("mlflow.settings.telemetry.refresh-sent", "button")
    expect(page.locator("#sent-records")).to_contain_text("mlflow.settings.general.theme-switch")
    page.screenshot(path=str(ARTIFACTS / "settings.png"), full_page=True)

    page.goto(relay.base + "/usage-tracking")
    elsewhere()
    page.screenshot(path=str(ARTIFACTS / "usage-tracking.png"), full_page=True)
    on("mlflow.sidebar.experiments-link", "typography_link")  # navigates away at once
    page.wait_for_url("**/experiments")

    wait_for(lambda: sum(triples(relay).values()) >= sum(expected.values()), timeout=20)
    time.sleep(1)  # anything extra would arrive now
    assert triples(relay) == expected
    params = relay.params()
    assert all(UUID.match(p["componentViewId"]) for p in params)
    # The banner opted in to onView: seen once, while it was visible.
    views = [p for p in params if p["eventType"] == "onView"]
    assert [v["componentId"] for v in views] == ["mlflow.home.telemetry-alert"]
    # Only data-value-has-no-pii elements carry a value; a switch says true/false.
    values = {(p["componentId"], p.get("value")) for p in params if "value" in p}
    assert values == {("mlflow.settings.general.theme-switch", "true"),
                      ("mlflow.settings.general.theme-switch", "false"),
                      ("mlflow.experiment.runs.select-row", "true")}
    assert w.errors == []


# --- 2 ---------------------------------------------------------------------------------------

def test_nothing_is_lost_on_leaving(relay: Relay, watched: Callable[..., Watched]) -> None:
    w = watched()
    page = w.page("/experiments", relay.base)
    click(page, "mlflow.experiments.table.header-runs")
    page.goto(relay.base + "/models")  # at once: the 300 ms flush never ran on that page
    click(page, "mlflow.models.register-button")
    page.close(run_before_unload=True)
    wait_for(lambda: len(relay.params()) >= 2, timeout=15)
    assert sorted(p["componentId"] for p in relay.params()) == [
        "mlflow.experiments.table.header-runs", "mlflow.models.register-button"]


def test_settings_shows_what_this_tab_sent_on_other_pages(relay: Relay,
                                                          watched: Callable[..., Watched]) -> None:
    w = watched()
    page = w.page("/experiments", relay.base)
    click(page, "mlflow.experiments.table.header-runs")
    page.goto(relay.base + "/models")
    click(page, "mlflow.models.register-button")
    page.goto(relay.base + "/settings")
    sent = page.locator("#sent-records")
    expect(sent).to_contain_text("mlflow.experiments.table.header-runs")
    expect(sent).to_contain_text("mlflow.models.register-button")
    # Another tab is another session: its panel starts empty.
    other = w.page("/settings", relay.base)
    expect(other.locator("#sent-records")).to_have_text("Nothing yet.")


# --- 3 ---------------------------------------------------------------------------------------

def test_settings_switch_off_silences_every_tab(relay: Relay,
                                                watched: Callable[..., Watched]) -> None:
    w = watched()
    settings = w.page("/settings", relay.base)
    other = w.page("/experiments", relay.base)
    toggle = settings.locator("#telemetry-switch")
    expect(toggle).to_be_checked()
    settings.wait_for_timeout(500)
    before = len(w.telemetry)
    toggle.click()
    expect(toggle).not_to_be_checked()
    expect(settings.locator("#telemetry-reason")).to_contain_text("you turned it off")
    for _ in range(3):
        click(other, "mlflow.experiments.table.header-name")
        click(settings, "mlflow.settings.general.theme-switch")
    other.wait_for_timeout(1500)  # several flush intervals, and the cross-tab deadline
    assert len(w.telemetry) == before, [r.url for r in w.telemetry[before:]]
    assert "mlflow.settings.telemetry.toggle-switch" not in {
        p["componentId"] for p in relay.params()}

    toggle.click()  # on again: the click that did it is not sent either
    expect(toggle).to_be_checked()
    other.wait_for_timeout(300)
    click(other, "mlflow.experiments.create-button")
    wait_for(lambda: "mlflow.experiments.create-button" in {
        p["componentId"] for p in relay.params()}, timeout=10)
    assert "mlflow.settings.telemetry.toggle-switch" not in {
        p["componentId"] for p in relay.params()}


# --- 4 ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("env", [{"MLFLOW_DISABLE_TELEMETRY": "true"}, {"DO_NOT_TRACK": "1"}])
def test_server_opt_out_means_no_requests_at_all(start_relay: Callable[..., Relay],
                                                 watched: Callable[..., Watched],
                                                 env: dict[str, str]) -> None:
    relay = start_relay(**env)
    w = watched()
    page = w.page()
    for path in PAGES.values():
        page.goto(relay.base + path)
        config = json.loads(page.locator("#ui-telemetry-config").text_content() or "{}")
        assert config["disabled"] is True
        for el in page.locator("button:visible, [role=switch]:visible").all()[:4]:
            if el.is_enabled():
                el.click()
                page.keyboard.press("Escape")
    page.goto(relay.base + "/settings")
    name = next(iter(env))
    expect(page.locator("#telemetry-reason")).to_have_text(
        f"Off: turned off by the server administrator: {name} is set.")
    expect(page.locator("#telemetry-switch")).to_be_disabled()
    expect(page.locator("#telemetry-switch")).not_to_be_checked()
    page.wait_for_timeout(800)
    assert w.telemetry == []
    assert relay.upstream.attempts == 0
    stored = set(page.evaluate("Object.keys(localStorage).concat(Object.keys(sessionStorage))"))
    assert not telemetry_keys(stored), "telemetry wrote to storage while off"


# --- 5 ---------------------------------------------------------------------------------------

def test_global_privacy_control_means_no_requests(relay: Relay,
                                                  watched: Callable[..., Watched]) -> None:
    w = watched(extra_http_headers={"Sec-GPC": "1"})
    # Chromium has no GPC switch of its own; this is what a GPC browser exposes to pages.
    w.context.add_init_script(
        "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true})")
    page = w.page("/experiments", relay.base)
    click(page, "mlflow.experiments.table.header-name")
    click(page, "mlflow.experiments.create-button")
    page.goto(relay.base + "/settings")
    expect(page.locator("#telemetry-reason")).to_contain_text("Global Privacy Control")
    page.wait_for_timeout(800)
    assert w.telemetry == []
    stored = set(page.evaluate("Object.keys(localStorage).concat(Object.keys(sessionStorage))"))
    assert not telemetry_keys(stored)


# --- 6 ---------------------------------------------------------------------------------------

def test_upstream_gets_no_address_agent_cookie_url_or_text(relay: Relay,
                                                           watched: Callable[..., Watched]) -> None:
    agent = "Mozilla/5.0 UAcanary4242"
    w = watched(user_agent=agent)
    w.context.add_cookies([{"name": "session", "value": "cookiecanary77",
                            "url": relay.base}])
    page = w.page("/experiments?q=urlcanary99#fragcanary", relay.base)
    click(page, "mlflow.experiments.create-button")
    page.fill(cid("mlflow.experiments.create-form.name"), "typedcanary55 secret")
    click(page, "mlflow.experiments.create-form.submit")
    page.goto(relay.base + "/experiments/1")
    click(page, "mlflow.experiment.runs.select-row")
    page.close(run_before_unload=True)
    wait_for(lambda: len(relay.params()) >= 5, timeout=15)
    bodies = json.dumps([c.body for c in relay.upstream.requests])
    headers = json.dumps([c.headers for c in relay.upstream.requests])
    for canary in ("127.0.0.1", "UAcanary4242", "cookiecanary77", "urlcanary99", "fragcanary",
                   "typedcanary55", "/experiments", "fraud-detection", "Create experiment",
                   "bright-owl"):
        assert canary not in bodies, canary
    for canary in ("UAcanary4242", "cookiecanary77", "urlcanary99"):
        assert canary not in headers, canary
    assert canary_free_logs(relay)


def canary_free_logs(relay: Relay) -> bool:
    logs = relay.server.logs()
    return "UAcanary4242" not in logs and "urlcanary99" not in logs and "cookiecanary" not in logs


# --- 7 ---------------------------------------------------------------------------------------

def test_no_csp_violation_or_console_error_on_any_page(relay: Relay,
                                                       watched: Callable[..., Watched]) -> None:
    w = watched()
    page = w.page()
    for name, path in PAGES.items():
        response = page.goto(relay.base + path)
        assert response is not None and response.ok
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe" not in csp
        page.keyboard.press("Tab")
        page.wait_for_timeout(150)
        assert page.evaluate("window.__csp") == [], name
        # Every script is a same-origin file or inert JSON: nothing inline could run.
        assert page.evaluate("""[...document.scripts].filter((s) => s.type != 'application/json'
            && !(s.src && new URL(s.src).origin == location.origin)).length""") == 0, name
    assert w.errors == []


# --- 8 ---------------------------------------------------------------------------------------

def test_clicks_arrive_from_a_page_that_is_not_a_secure_context(relay: Relay,
                                                               insecure_browser: Browser) -> None:
    # MLflow is often opened over plain HTTP by an intranet name: no crypto.randomUUID there.
    context = insecure_browser.new_context()
    w = Watched(context)
    try:
        page = w.page(f"http://{INSECURE_HOST}:{relay.server.port}/experiments")
        assert page.evaluate("[window.isSecureContext, typeof crypto.randomUUID]") == \
            [False, "undefined"]
        for _ in range(3):
            click(page, "mlflow.experiments.table.header-name")
        click(page, "mlflow.experiments.create-button")
        page.goto(f"http://{INSECURE_HOST}:{relay.server.port}/models")  # leave: sent now
        wait_for(lambda: len(relay.params()) >= 4, timeout=15)
        assert triples(relay) == Counter({
            ("mlflow.experiments.table.header-name", "table_header", "onClick"): 3,
            ("mlflow.experiments.create-button", "button", "onClick"): 1})
        assert all(UUID.match(p["componentViewId"]) for p in relay.params())
        assert all(UUID.match(d["event_id"]) and UUID.match(d["installation_id"])
                   for d in relay.upstream.data())
        assert w.errors == []
    finally:
        context.close()
