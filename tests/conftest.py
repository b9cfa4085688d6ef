from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from relay import create_app
from relay.control.config import load_config

from .support import CaptureUpstream


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # pytest itself sets PYTEST_CURRENT_TEST, a CI marker, and CI sets CI=true: every test says
    # explicitly that it wants telemetry on, and tests of the CI rule remove this again.
    monkeypatch.setenv("RELAY_IGNORE_CI", "true")
    for name in ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK"):
        monkeypatch.delenv(name, raising=False)


def build_app(data_dir: Path, env: dict[str, str] | None = None, *,
              start_forwarder: bool = False, **overrides: object) -> Flask:
    config = load_config({"RELAY_DATA_DIR": str(data_dir), **(env or {})}, **overrides)
    app = create_app(config, start_forwarder=start_forwarder)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return build_app(tmp_path / "data")


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def upstream() -> Iterator[CaptureUpstream]:
    up = CaptureUpstream()
    yield up
    up.close()
