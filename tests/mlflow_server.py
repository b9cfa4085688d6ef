"""A real `mlflow server` (MLflow from PyPI) on 127.0.0.1, for the e2e tests and the benchmark."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .support import free_port, read_sink, stop_group, wait_for

MLFLOW = str(Path(sys.executable).with_name("mlflow"))
UI_TELEMETRY = str(Path(sys.executable).with_name("ui-telemetry"))


class MlflowServer:
    """`mlflow server [--app-name NAME] --workers N` with its own backend store and data dir."""

    def __init__(self, root: Path, app_name: str | None = "ui-telemetry", workers: int = 2,
                 static_prefix: str = "", gunicorn: bool = False,
                 env: dict[str, str] | None = None,
                 auth: tuple[str, str] | None = None) -> None:
        self.root = root
        self.data_dir = root / "relay-data"
        self.port = free_port()
        self.prefix = static_prefix
        self.log_path = root / "server.log"
        root.mkdir(parents=True, exist_ok=True)
        self.argv = [MLFLOW, "server", "--host", "127.0.0.1", "--port", str(self.port),
                     "--workers", str(workers),
                     "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
                     "--default-artifact-root", str(root / "artifacts")]
        if app_name:
            self.argv += ["--app-name", app_name]
        if static_prefix:
            self.argv += ["--static-prefix", static_prefix]
        if gunicorn:
            self.argv += ["--gunicorn-opts", "--timeout 60"]
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK")
                    and not k.startswith("RELAY_")}
        self.env.update({"RELAY_DATA_DIR": str(self.data_dir), "RELAY_IGNORE_CI": "true",
                         "RELAY_FLUSH_INTERVAL": "0.5s",
                         "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **(env or {})})
        self.app_name = app_name
        self.headers = {}
        if auth:  # basic auth: MLflow's own check comes before every route but /health
            token = base64.b64encode(":".join(auth).encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.prefix}"

    def start(self) -> MlflowServer:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     cwd=self.root)
        log.close()
        health = "/ui-telemetry/health" if self.app_name else "/health"
        wait_for(lambda: self._answers(health), timeout=120, interval=0.5)
        return self

    def _answers(self, path: str) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"mlflow server exited:\n{self.logs()[-3000:]}")
        try:
            with self._get(path, timeout=2) as resp:
                return resp.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def stop(self) -> None:
        stop_group(self.proc)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def get_config(self) -> dict[str, Any]:
        with self._get("/ajax-api/3.0/mlflow/ui-telemetry", timeout=10) as resp:
            return json.loads(resp.read())

    def _get(self, path: str, timeout: float):  # noqa: ANN202 - urllib's response
        request = urllib.request.Request(self.base + path, headers=self.headers)
        return urllib.request.urlopen(request, timeout=timeout)

    def forwarded(self) -> list[dict[str, Any]]:
        return read_sink(self.data_dir)

    def component_ids(self) -> list[str]:
        return [json.loads(d["params"])["componentId"] for d in self.forwarded()]

    def cli(self, *args: str) -> str:
        """`ui-telemetry ARGS` on this server's data dir, as its operator would run it."""
        out = subprocess.run([UI_TELEMETRY, *args], env=self.env, capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout
