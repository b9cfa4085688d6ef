"""`ui-telemetry status`, `inspect` and configuration errors, run as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from relay.control.config import SETTINGS
from relay.control.policy import CI_VARIABLES
from relay.serve.extension import relay_of

from ..conftest import build_app
from ..support import ENDPOINT, REPO, make_record


def run(args: list[str], data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    # The ambient CI markers (CI=true in CI, PYTEST_CURRENT_TEST) would decide these tests.
    full_env = {k: v for k, v in os.environ.items()
                if k not in ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK", *CI_VARIABLES)}
    full_env.update({"RELAY_DATA_DIR": str(data_dir), "RELAY_IGNORE_CI": "true",
                     "PYTHONPATH": str(REPO)}, **env)
    return subprocess.run([sys.executable, "-m", "relay.serve.cli", *args], env=full_env,
                          capture_output=True, text=True, timeout=60)


def test_status_says_on(tmp_path: Path) -> None:
    out = run(["status"], tmp_path).stdout
    assert "telemetry:      on" in out
    assert "config source:  local (environment)" in out
    assert f"upstream:       file://{tmp_path}/forwarded.jsonl" in out
    assert "0 record(s) waiting" in out


@pytest.mark.parametrize("env,words", [
    ({"DO_NOT_TRACK": "1"}, "turned off by the server administrator: DO_NOT_TRACK is set"),
    ({"MLFLOW_DISABLE_TELEMETRY": "yes"},
     "turned off by the server administrator: MLFLOW_DISABLE_TELEMETRY is set"),
    ({"RELAY_IGNORE_CI": "false", "GITHUB_ACTIONS": "true"}, "GITHUB_ACTIONS is set"),
    ({"RELAY_CONFIG_URL": "http://127.0.0.1:9/config.json"},
     "the remote config could not be fetched"),
])
def test_status_says_off_and_why(tmp_path: Path, env: dict[str, str], words: str) -> None:
    out = run(["status"], tmp_path, **env).stdout
    assert "telemetry:      off: " in out and words in out


def test_status_reports_backlog_and_last_error(tmp_path: Path) -> None:
    app = build_app(tmp_path)
    app.test_client().post(ENDPOINT, json={"records": [make_record(), make_record()]})
    relay_of(app).spool.set_state(
        "last_error", {"kind": "http_500", "detail": "upstream answered HTTP 500", "at": 0})
    report = json.loads(run(["status", "--json"], tmp_path).stdout)
    assert report["spool_depth"] == 2
    assert report["oldest_waiting"].endswith("s")
    assert report["last_delivery_error"]["detail"] == "upstream answered HTTP 500"


def test_inspect_prints_waiting_then_forwarded_records(tmp_path: Path) -> None:
    app = build_app(tmp_path)
    records = [make_record() for _ in range(3)]
    app.test_client().post(ENDPOINT, json={"records": records})
    waiting = run(["inspect", "--waiting"], tmp_path).stdout.splitlines()
    assert [json.loads(line)["event_id"] for line in waiting] == [r["event_id"] for r in records]
    assert "nothing forwarded yet" in run(["inspect"], tmp_path).stderr
    relay_of(app).forwarder.step(force=True)
    last = run(["inspect", "--last", "2"], tmp_path).stdout.splitlines()
    assert [json.loads(line)["event_id"] for line in last] == [r["event_id"] for r in records[1:]]


@pytest.mark.parametrize("env,words", [
    ({"RELAY_UI_ROLLOUT_PERCENTAGE": "150"}, "RELAY_UI_ROLLOUT_PERCENTAGE=150 is out of range"),
    ({"RELAY_SPOOL_MAX_AGE": "soon"}, "RELAY_SPOOL_MAX_AGE='soon' is not a duration"),
    ({"RELAY_INGESTION_URL": "ftp://x"}, "RELAY_INGESTION_URL='ftp://x' must start with"),
])
def test_bad_configuration_is_named(tmp_path: Path, env: dict[str, str], words: str) -> None:
    result = run(["status"], tmp_path, **env)
    assert result.returncode == 2
    assert "configuration error" in result.stderr and words in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_help_lists_every_setting(tmp_path: Path) -> None:
    out = run(["serve", "--help"], tmp_path).stdout
    for setting in SETTINGS:
        assert setting.env in out
    assert "--workers" in out and "--port" in out
