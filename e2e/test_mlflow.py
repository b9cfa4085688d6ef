"""MLflow's real UI, unchanged, in Debian's Chromium, against a real
`mlflow server --app-name ui-telemetry --workers 2`: its SharedWorker's records answered by the
relay. A SharedWorker's fetches are invisible to Playwright, so every assertion is on what the
relay stored and forwarded. The worker flushes every 30 s."""

from __future__ import annotations

import gzip
import http.client
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.mlflow_server import MlflowServer
from tests.support import ENDPOINT, make_record, wait_for

from .conftest import Watched, assert_dashboard_drawn

pytestmark = pytest.mark.timeout(400)

CREATE = "mlflow.experiment_list_view.new_experiment_button"
DATA_FIELDS = {"event_id", "event_name", "timestamp_ns", "params", "status", "duration_ms",
               "installation_id", "session_id", "server_installation_id", "source_sdk",
               "version", "schema_version", "python_version", "operating_system"}
WORKER_FLUSH = 30  # s, MLflow's worker's fixed timer
CLIENT_ADDRESS = "127.0.0.77"
CANARIES = {"X-Forwarded-For": "203.0.113.91", "Forwarded": "for=198.51.100.17;proto=https",
            "Cookie": "session=cookiecanary4711", "User-Agent": "Mozilla/5.0 UAcanary0815",
            "Referer": "http://127.0.0.1/secret-project-refcanary"}
CANARY_WORDS = (CLIENT_ADDRESS, "203.0.113.91", "198.51.100.17", "cookiecanary4711",
                "UAcanary0815", "refcanary", "querycanary9999", "origincanary", "hostcanary")


@pytest.fixture(scope="module")
def mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    # K=1: the tests' one browser is one installation.
    server = MlflowServer(tmp_path_factory.mktemp("mlflow"),
                          env={"RELAY_USAGE_MIN_INSTALLATIONS": "1"}).start()
    yield server
    server.stop()


def open_ui(browser: Browser, url: str) -> Page:
    page = browser.new_context().new_page()
    page.goto(url)
    return page


def create_experiment_click(browser: Browser, base: str) -> Page:
    """Click "Create experiment" in MLflow's UI; the page is left open, because the
    SharedWorker lives only while a page of its origin does. Close its context when done."""
    page = open_ui(browser, base + "/#/experiments")
    page.get_by_test_id("create-experiment-button").click()
    return page


def post(server: MlflowServer, body: bytes, headers: dict[str, str] | None = None,
         path: str = ENDPOINT, source: str | None = None) -> tuple[int, dict, str]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60,
                                      source_address=(source, 0) if source else None)
    conn.request("POST", server.prefix + path, body=body,
                 headers={"Content-Type": "application/json", **(headers or {})})
    resp = conn.getresponse()
    raw = resp.read().decode()
    conn.close()
    return resp.status, json.loads(raw) if raw.startswith("{") else {}, \
        f"{resp.status}\n{resp.msg}\n{raw}"


def test_create_experiment_in_mlflows_ui_reaches_the_sink(mlflow: MlflowServer,
                                                          browser: Browser) -> None:
    page = create_experiment_click(browser, mlflow.base)
    try:
        wait_for(lambda: CREATE in mlflow.component_ids(), timeout=45, interval=1)
    finally:
        page.context.close()
    [record] = [d for d in mlflow.forwarded() if CREATE in d["params"]]
    assert set(record) == DATA_FIELDS
    assert json.loads(record["params"])["componentType"] == "button"
    assert json.loads(record["params"])["eventType"] == "onClick"
    assert record["source_sdk"] == "ui-telemetry-relay"
    # `ui-telemetry inspect` on the plugin's data dir shows it, and status knows the spool.
    assert CREATE in mlflow.cli("inspect")
    assert "telemetry:      on" in mlflow.cli("status")


def test_the_admin_opens_the_usage_dashboard_inside_mlflow(mlflow: MlflowServer,
                                                           browser: Browser) -> None:
    if CREATE not in mlflow.component_ids():
        page = create_experiment_click(browser, mlflow.base)
        try:
            wait_for(lambda: CREATE in mlflow.component_ids(), timeout=45, interval=1)
        finally:
            page.context.close()
    w = Watched(browser.new_context())
    try:
        page = w.page(mlflow.base + "/ui-telemetry/usage")
        assert_dashboard_drawn(w, page, {CREATE})
        figures = json.loads(page.goto(mlflow.base + "/ui-telemetry/usage.json").text())
        assert figures["min_installations"] == 1
    finally:
        w.context.close()


def test_the_settings_switch_turned_off_sends_nothing_more(mlflow: MlflowServer,
                                                           browser: Browser) -> None:
    page = open_ui(browser, mlflow.base + "/#/settings/general")
    try:
        switch = page.get_by_text("Enable telemetry").locator(
            "xpath=ancestor::*[.//button[@role='switch']][1]").get_by_role("switch")
        assert switch.get_attribute("aria-checked") == "true"
        switch.click()
        wait_for(lambda: switch.get_attribute("aria-checked") == "false", timeout=10)
        before = len(mlflow.forwarded())
        page.goto(mlflow.base + "/#/experiments")
        page.get_by_test_id("create-experiment-button").click()
        page.wait_for_timeout((WORKER_FLUSH + 5) * 1000)
        assert len(mlflow.forwarded()) == before
        assert int(json.loads(mlflow.cli("status", "--json"))["spool_depth"]) == 0
    finally:
        page.context.close()


def test_canaries_from_another_address_reach_no_output(tmp_path: Path) -> None:
    # The forwarder holds the records (a long flush interval) so the spool can be read before
    # anything leaves it; 500 clean records then make it forward the lot.
    server = MlflowServer(tmp_path / "mlflow", env={"RELAY_FLUSH_INTERVAL": "1h"}).start()
    try:
        answers, sent = [], []
        for _ in range(3):
            records = [make_record(), make_record()]
            sent += [r["event_id"] for r in records]
            body = json.dumps({"records": records}).encode()
            status, payload, text = post(server, body, CANARIES,
                                         path=f"{ENDPOINT}?token=querycanary9999",
                                         source=CLIENT_ADDRESS)
            assert status == 200 and payload["accepted"] == 2
            answers.append(text)
        # MLflow's own host and origin checks refuse these, and log that they did.
        for refused in ({"Origin": "http://origincanary.example"},
                        {"Host": "hostcanary.example"}):
            status, _, text = post(server, json.dumps({"records": [make_record()]}).encode(),
                                   refused, source=CLIENT_ADDRESS)
            assert status == 403
            answers.append(text)
        waiting = {p.name: p.read_bytes().decode("latin-1")
                   for p in server.data_dir.rglob("*") if p.is_file()}
        for _ in range(25):
            post(server, json.dumps({"records": [make_record() for _ in range(20)]}).encode())
        wait_for(lambda: set(sent) <= {d["event_id"] for d in server.forwarded()}, timeout=60)
    finally:
        server.stop()
    outputs = {"server output": server.logs(), "responses": "\n".join(answers),
               **{f"{n} (waiting)": t for n, t in waiting.items()},
               **{p.name: p.read_bytes().decode("latin-1")
                  for p in server.data_dir.rglob("*") if p.is_file()}}
    assert "POST /ajax-api/3.0/mlflow/ui-telemetry" in outputs["server output"]
    assert "Blocked cross-origin request" in outputs["server output"]
    assert "Rejected request with invalid Host header" in outputs["server output"]
    for name, text in outputs.items():
        for canary in CANARY_WORDS:
            assert canary not in text, f"{canary!r} leaked into {name}"


def test_answers_that_end_the_workers_batches_and_keep_the_good_records(
        mlflow: MlflowServer) -> None:
    # MLflow's worker puts back any non-2xx batch for ever: each of these is a 200.
    big = [make_record() for _ in range(12_000)]  # several MiB, as 30 s of clicks can gather
    body = json.dumps({"records": big}).encode()
    assert len(body) > 3 * 1024 * 1024
    status, payload, _ = post(mlflow, body)
    assert (status, payload["status"], payload["accepted"]) == (200, "success", 12_000)
    status, payload, _ = post(mlflow, gzip.compress(body), {"Content-Encoding": "gzip"})
    assert (status, payload["accepted"]) == (200, 12_000)

    status, payload, _ = post(mlflow, b'{"records": [ not json')
    assert status == 200 and payload["status"] == "error" and "JSON" in payload["error"]
    status, payload, _ = post(mlflow, b"x" * (17 * 1024 * 1024))
    assert status == 200 and payload["status"] == "error" and "larger" in payload["error"]

    good = make_record()
    status, payload, _ = post(mlflow, json.dumps(
        {"records": [good, {"event_name": "ui_event", "params": {}}]}).encode())
    assert (status, payload) == (200, {"status": "success", "accepted": 1, "rejected": 1})
    wait_for(lambda: good["event_id"] in {d["event_id"] for d in mlflow.forwarded()},
             timeout=60)
    forwarded = {d["event_id"] for d in mlflow.forwarded()}
    assert {r["event_id"] for r in big} <= forwarded
    metrics = urllib_get(mlflow.base + "/ui-telemetry/metrics")
    assert 'ui_telemetry_requests_rejected_total{reason="invalid_json"} 1.0' in metrics
    assert 'ui_telemetry_records_rejected_total{reason="' in metrics


def test_mlflows_own_routes_stay_as_they_were(mlflow: MlflowServer) -> None:
    with urlopen(mlflow.base + "/health") as resp:
        assert resp.read() == b"OK" and "Content-Security-Policy" not in resp.headers
    with urlopen(mlflow.base + "/") as resp:
        assert "Content-Security-Policy" not in resp.headers  # MLflow's UI needs inline styles
    assert json.loads(urllib_get(mlflow.base + "/ui-telemetry/health"))["telemetry"] == "on"


@pytest.mark.parametrize("env", [{"DO_NOT_TRACK": "1"}, {"MLFLOW_DISABLE_TELEMETRY": "true"}])
def test_server_opt_out_means_disabled_and_nothing_kept(tmp_path: Path, browser: Browser,
                                                        env: dict[str, str]) -> None:
    server = MlflowServer(tmp_path / "mlflow", env=env).start()
    try:
        assert server.get_config()["disable_ui_telemetry"] is True
        status, payload, _ = post(server, json.dumps({"records": [make_record()]}).encode())
        assert (status, payload) == (200, {"status": "disabled"})
        page = create_experiment_click(browser, server.base)
        page.wait_for_timeout((WORKER_FLUSH + 5) * 1000)
        page.context.close()
        report = json.loads(server.cli("status", "--json"))
        assert report["telemetry"] == "off" and report["spool_depth"] == 0
        assert server.forwarded() == []
    finally:
        server.stop()


@pytest.mark.parametrize("mode", ["static prefix /mlflow", "gunicorn"])
def test_other_ways_to_run_it(tmp_path: Path, browser: Browser, mode: str) -> None:
    if mode == "gunicorn":
        server = MlflowServer(tmp_path / "mlflow", gunicorn=True)
    else:
        server = MlflowServer(tmp_path / "mlflow", static_prefix="/mlflow")
    server.start()
    try:
        page = create_experiment_click(browser, server.base)
        wait_for(lambda: CREATE in server.component_ids(), timeout=45, interval=1)
        page.context.close()
    finally:
        server.stop()
    assert "Invalid request from ip=1" not in server.logs()


def urlopen(url: str):  # noqa: ANN201 - a context manager of urllib's
    import urllib.request

    return urllib.request.urlopen(url, timeout=10)


def urllib_get(url: str) -> str:
    with urlopen(url) as resp:
        return resp.read().decode()


ADMIN = ("admin", "Telemetry-admin-2026")


def basic_auth_env(root: Path, password: str | None = ADMIN[1]) -> dict[str, str]:
    """MLflow's basic-auth settings: its auth store in `root`, a secret key, the first
    admin's password (or none)."""
    root.mkdir(parents=True, exist_ok=True)
    ini = root / "basic_auth.ini"
    ini.write_text("[mlflow]\ndefault_permission = READ\n"
                   f"database_uri = sqlite:///{root / 'basic_auth.db'}\n"
                   f"admin_username = {ADMIN[0]}\n")
    env = {"MLFLOW_AUTH_CONFIG_PATH": str(ini), "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-key"}
    if password:
        env["MLFLOW_AUTH_ADMIN_PASSWORD"] = password
    return env


def test_inside_mlflows_basic_auth_app(tmp_path: Path, browser: Browser) -> None:
    # Two workers bootstrap a new auth store and its admin as they load: they take turns.
    server = MlflowServer(tmp_path / "mlflow", app_name="ui-telemetry-basic-auth",
                          env=basic_auth_env(tmp_path / "auth"), auth=ADMIN).start()
    try:
        # MLflow's own check comes first: without credentials nothing reaches the relay.
        status, _, _ = post(server, json.dumps({"records": [make_record()]}).encode())
        assert status == 401
        assert server.get_config()["disable_ui_telemetry"] is False
        context = browser.new_context(http_credentials={"username": ADMIN[0],
                                                        "password": ADMIN[1]})
        page = context.new_page()
        page.goto(server.base + "/#/experiments")
        page.get_by_test_id("create-experiment-button").click()
        try:
            wait_for(lambda: CREATE in server.component_ids(), timeout=45, interval=1)
        finally:
            context.close()
        assert len(server.forwarded()) == 1
    finally:
        server.stop()
    assert server.logs().count("Created admin user 'admin'") == 1
    assert "Traceback" not in server.logs()


def test_basic_auth_without_an_admin_password_stops_with_one_clear_error(
        tmp_path: Path) -> None:
    server = MlflowServer(tmp_path / "mlflow", app_name="ui-telemetry-basic-auth",
                          env=basic_auth_env(tmp_path / "auth", password=None))
    with pytest.raises(AssertionError, match="mlflow server exited"):
        server.start()  # rather than uvicorn restarting the workers for ever
    assert "MLFLOW_AUTH_ADMIN_PASSWORD" in server.logs()
    assert server.logs().count("Stopping the server.") <= 2  # once per worker, no loop
