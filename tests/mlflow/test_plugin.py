"""relay.mlflow.plugin in process: the answer filter for MLflow's worker, and the relay put
behind MLflow's two UI telemetry views (a stand-in app with the same endpoint names, and
MLflow's own app). e2e/test_mlflow.py drives a real `mlflow server` with MLflow's UI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask import Flask

from relay.ingest.answer import Answer
from relay.mlflow.plugin import MLFLOW_VIEWS, for_mlflow_worker, install
from relay.serve.extension import relay_of

from ..support import ENDPOINT, make_record


@pytest.mark.parametrize("status", [400, 403, 413, 415, 500])
def test_an_answer_a_retry_cannot_fix_becomes_a_200_that_still_says_error(status: int) -> None:
    refused = Answer.error(status, "what went wrong")
    assert for_mlflow_worker(refused) == Answer(200, refused.body)
    assert json.loads(for_mlflow_worker(refused).body) == {"status": "error",
                                                           "error": "what went wrong"}


def test_a_full_spool_and_a_rate_limit_stay_as_they_are_and_so_does_success() -> None:
    full = Answer.error(503, "the relay's spool is full", (("Retry-After", "60"),))
    assert for_mlflow_worker(full) == full
    limited = Answer.json(429, {"status": "error", "error": "too many records", "accepted": 3,
                                "rejected": 0, "limited": 2}, (("Retry-After", "4"),))
    assert for_mlflow_worker(limited) == limited  # MLflow's worker sends it again: right here
    ok = Answer.json(200, {"status": "success", "accepted": 1, "rejected": 0})
    assert for_mlflow_worker(ok) == ok


@pytest.fixture
def mlflow_like(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Flask:
    """A Flask app with MLflow's two UI telemetry endpoints, answering as MLflow would."""
    monkeypatch.setenv("RELAY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RELAY_FLUSH_INTERVAL", "1h")  # the records stay in the spool to look at
    monkeypatch.delenv("_MLFLOW_STATIC_PREFIX", raising=False)
    app = Flask("mlflow-like")
    app.add_url_rule(ENDPOINT, MLFLOW_VIEWS[0], lambda: "mlflow's own", methods=["GET"])
    app.add_url_rule(ENDPOINT, MLFLOW_VIEWS[1], lambda: ("mlflow's own", 500), methods=["POST"])
    app.add_url_rule("/", "home", lambda: "<html>mlflow</html>")
    relay = install(app)
    relay.forwarder.stop()  # these tests look at the spool
    return app


def test_mlflows_views_are_answered_by_the_relay_and_the_rest_is_left_alone(
        mlflow_like: Flask) -> None:
    client = mlflow_like.test_client()
    resp = client.post(ENDPOINT, json={"records": [make_record(), {"bad": 1}]})
    assert (resp.status_code, resp.get_json()) == (
        200, {"status": "success", "accepted": 1, "rejected": 1})
    assert relay_of(mlflow_like).spool.depth() == 1
    assert client.get(ENDPOINT).get_json()["disable_ui_telemetry"] is False
    page = client.get("/")
    assert page.get_data(as_text=True) == "<html>mlflow</html>"
    assert "Content-Security-Policy" not in page.headers  # MLflow's pages keep their own
    assert client.get("/ui-telemetry/health").get_json()["status"] == "ok"
    assert "ui_telemetry_records_received_total 1.0" in client.get("/ui-telemetry/metrics").text


def test_a_refused_body_is_a_200_in_words_so_mlflows_worker_drops_it(mlflow_like: Flask) -> None:
    resp = mlflow_like.test_client().post(ENDPOINT, data=b"{", content_type="text/plain")
    assert resp.status_code == 200
    assert resp.get_json()["status"] == "error" and "not valid JSON" in resp.get_json()["error"]


def test_a_fault_inside_ingest_is_a_200_in_words_and_logged_without_the_request(
        mlflow_like: Flask, caplog: pytest.LogCaptureFixture) -> None:
    def broken(*_: object, **__: object) -> bool:
        raise OSError("disk canary-request-text")
    relay_of(mlflow_like).spool.store = broken  # type: ignore[method-assign]
    resp = mlflow_like.test_client().post(ENDPOINT, json={"records": [make_record()]})
    assert resp.status_code == 200
    assert resp.get_json()["error"].startswith("the relay hit an internal error")
    assert "internal error OSError" in caplog.text
    assert "canary-request-text" not in caplog.text + resp.get_data(as_text=True)


def test_a_full_spool_is_the_one_answer_mlflows_worker_retries(mlflow_like: Flask,
                                                             tmp_path: Path) -> None:
    relay = relay_of(mlflow_like)
    relay.spool.store = lambda *a, **k: False  # type: ignore[method-assign]
    resp = mlflow_like.test_client().post(ENDPOINT, json={"records": [make_record()]})
    assert resp.status_code == 503 and resp.headers["Retry-After"] == "60"


def test_mlflows_own_app_takes_the_relay_behind_its_route(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RELAY_FLUSH_INTERVAL", "1h")  # the records stay in the spool to look at
    from mlflow.server import app

    relay = install(app)
    relay.forwarder.stop()
    resp = app.test_client().post(ENDPOINT, json={"records": [make_record()]})
    assert resp.get_json() == {"status": "success", "accepted": 1, "rejected": 0}
    assert relay_of(app) is relay and relay.spool.depth() == 1
