"""Remote config (section 6): kill switch, rollout, per-event disable, fail closed, override."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from relay.serve.extension import relay_of
from relay.store.data import package_version

from ..conftest import build_app
from ..support import ENDPOINT, CaptureUpstream, ConfigServer, make_record


@pytest.fixture
def config_server() -> Iterator[ConfigServer]:
    server = ConfigServer({"disable_telemetry": False, "disable_ui_telemetry": False,
                           "disable_ui_events": [], "ui_rollout_percentage": 100})
    yield server
    server.close()


def make(tmp_path: Path, server: ConfigServer, **overrides: float) -> Flask:
    return build_app(tmp_path, {"RELAY_CONFIG_URL": server.url}, **overrides)


def page_config(app: Flask) -> dict:
    html = app.test_client().get("/").get_data(as_text=True)
    return json.loads(html.split('id="ui-telemetry-config">')[1].split("</script>")[0])


def test_fetched_with_version_and_cached(tmp_path: Path, config_server: ConfigServer) -> None:
    app = make(tmp_path, config_server)
    client = app.test_client()
    for _ in range(5):
        assert client.get(ENDPOINT).get_json()["disable_ui_telemetry"] is False
    assert config_server.hits == [f"/config/{package_version()}.json"]


@pytest.mark.parametrize("key", ["disable_telemetry", "disable_ui_telemetry"])
def test_kill_switch(tmp_path: Path, config_server: ConfigServer, key: str) -> None:
    config_server.payload[key] = True
    app = make(tmp_path, config_server)
    client = app.test_client()
    assert client.post(ENDPOINT, json={"records": [make_record()]}).get_json() == \
        {"status": "disabled"}
    assert client.get(ENDPOINT).get_json()["disable_ui_telemetry"] is True
    config = page_config(app)
    assert config["disabled"] is True and key in config["reason"]
    assert relay_of(app).spool.depth() == 0


def test_rollout_and_disabled_events_reach_get_and_page(tmp_path: Path,
                                                        config_server: ConfigServer) -> None:
    config_server.payload.update(ui_rollout_percentage=10,
                                 disable_ui_events=["mlflow.noisy.button"])
    app = make(tmp_path, config_server)
    assert app.test_client().get(ENDPOINT).get_json() == {
        "disable_ui_telemetry": False, "disable_ui_events": ["mlflow.noisy.button"],
        "ui_rollout_percentage": 10}
    config = page_config(app)
    assert config["rolloutPercentage"] == 10
    assert config["disabledEvents"] == ["mlflow.noisy.button"]


def test_unreachable_config_fails_closed_then_recovers(tmp_path: Path,
                                                       config_server: ConfigServer) -> None:
    config_server.payload = None  # answers 503
    app = make(tmp_path, config_server, config_retry_seconds=0.5)
    client = app.test_client()
    assert client.post(ENDPOINT, json={"records": [make_record()]}).get_json() == \
        {"status": "disabled"}
    assert "could not be fetched" in page_config(app)["reason"]
    hits = len(config_server.hits)
    client.get(ENDPOINT)
    assert len(config_server.hits) == hits, "retried before the retry period"
    config_server.payload = {"disable_telemetry": False}
    import time
    time.sleep(0.6)
    assert client.post(ENDPOINT, json={"records": [make_record()]}).get_json()["accepted"] == 1


def test_unreachable_host_times_out_in_about_a_second(tmp_path: Path) -> None:
    # A listening socket that never answers: the fetch must give up after the 1 s timeout.
    import socket
    import time

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    try:
        app = build_app(tmp_path, {"RELAY_CONFIG_URL":
                                   f"http://127.0.0.1:{silent.getsockname()[1]}/c.json"})
        start = time.monotonic()
        body = app.test_client().get(ENDPOINT).get_json()
        assert body["disable_ui_telemetry"] is True
        assert time.monotonic() - start < 3
    finally:
        silent.close()


def test_ingestion_url_from_remote_config_wins(tmp_path: Path, config_server: ConfigServer,
                                               upstream: CaptureUpstream) -> None:
    config_server.payload["ingestion_url"] = upstream.url
    app = build_app(tmp_path, {"RELAY_CONFIG_URL": config_server.url,
                               "RELAY_INGESTION_URL": "http://127.0.0.1:9/not-this-one"})
    record = make_record()
    app.test_client().post(ENDPOINT, json={"records": [record]})
    relay_of(app).forwarder.step(force=True)
    assert [d["event_id"] for d in upstream.data()] == [record["event_id"]]
