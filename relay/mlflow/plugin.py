"""`mlflow server --app-name ui-telemetry`: MLflow's own UI telemetry routes answered by the relay.

MLflow's UI, unchanged, posts its records from a SharedWorker to MLflow's two Flask endpoints,
`serve_get_ui_telemetry` and `serve_post_ui_telemetry`, which already carry `--static-prefix`.
A second URL rule for the same path would never match (the first rule wins), so the plugin
takes the endpoints' view functions over. Everything else of MLflow stays as it was: its pages
(with no Content-Security-Policy of ours), its security checks, its /health and /metrics. The
relay's own health and metrics sit at {prefix}/ui-telemetry/health and /ui-telemetry/metrics.

MLflow's worker sends its whole queue every 30 s and puts back, for ever, any batch answered
with anything but a 2xx. So an answer it must not retry (a refused body: bad JSON, too large, a
wrong content type, a cross-site Origin, a fault of ours) comes as a 200 whose body still says
"error" and why, and is counted. Only a full spool answers 503: the worker's retry is then
what should happen. Its batches are whatever 30 s of clicking gathered, so the plugin takes
bodies up to 16 MiB and any number of records.

MLflow calls a plain function as a factory: under uvicorn (its default) the factory returns the
ASGI app MLflow builds around its Flask app; under gunicorn or waitress, the Flask app itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flask import Flask

from ..control.config import load_config
from ..ingest.answer import Answer
from ..serve.app import Relay
from ..serve.scrub import scrub_server_logs

# MLflow's own endpoint names for its two UI telemetry routes, whose views the relay takes over.
MLFLOW_VIEWS = ("serve_get_ui_telemetry", "serve_post_ui_telemetry")
# Where the relay's own routes (health, metrics) go, under MLflow's --static-prefix.
ADMIN_PREFIX = "/ui-telemetry"
MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_RECORDS = 1_000_000  # no limit of its own: the body's size bounds it


def create_app() -> Any:
    """The `ui-telemetry` entry point of the `mlflow.app` group."""
    from mlflow.server import app

    install(app)
    if _server_name() == "uvicorn":
        from mlflow.server.fastapi_app import create_fastapi_app

        return create_fastapi_app(app)
    return app


def create_basic_auth_app() -> Any:
    """The `ui-telemetry-basic-auth` entry point: the relay inside MLflow's basic-auth app.

    MLflow's CLI bootstraps the auth store and its admin user before it starts the workers only
    for the literal app name `basic-auth`; for any other name each worker does it as it loads.
    Two workers migrating one auth database at once can fail, so the workers of one data dir
    take turns. A setting that is missing (the secret key, the first admin password) would make
    uvicorn restart the failing worker for ever: the worker says why once and stops the server.
    """
    from mlflow.server import app

    relay = install(app)
    try:
        from mlflow.server.auth import create_app as basic_auth  # needs mlflow[auth]

        with _one_worker_at_a_time(relay.config.data_dir / "mlflow-auth-bootstrap.lock"):
            return basic_auth(app)  # returns the ASGI or Flask app as the server needs
    except Exception as err:
        _stop_the_server(err)
        raise


@contextlib.contextmanager
def _one_worker_at_a_time(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _stop_the_server(err: Exception) -> None:
    """Under uvicorn's supervisor (its worker processes are multiprocessing children) a worker
    that fails to load is started again and again; end the supervisor instead."""
    parent = multiprocessing.parent_process()
    if _server_name() == "uvicorn" and parent is not None:
        print(f"ui-telemetry-basic-auth: MLflow's basic-auth app could not start: {err}\n"
              "Stopping the server.", file=sys.stderr, flush=True)
        os.kill(parent.pid, signal.SIGTERM)
        # Stay until the supervisor ends this worker with the others: a worker that exited now
        # could be started again before the supervisor handles the signal.
        for _ in range(100):
            if os.getppid() != parent.pid:
                break
            time.sleep(0.1)


def _server_name() -> str:
    """uvicorn, gunicorn or waitress: what `mlflow server` runs. MLflow's CLI passes it to
    the workers in this variable, which MLflow's own basic-auth app reads the same way."""
    return os.environ.get("_MLFLOW_SGI_NAME", "")


def _static_prefix() -> str:
    """MLflow's --static-prefix, as its CLI passes it to the workers (and MLflow's basic-auth
    app reads it)."""
    return os.environ.get("_MLFLOW_STATIC_PREFIX", "").rstrip("/")


def install(app: Flask) -> Relay:
    """Put the relay behind MLflow's UI telemetry routes of `app`."""
    relay = Relay(load_config(static_prefix=_static_prefix(), max_body_bytes=MAX_BODY_BYTES,
                              max_records_per_request=MAX_RECORDS))
    relay.init_app(app, ui=False, security_headers=False, endpoint_views=MLFLOW_VIEWS,
                   admin_prefix=ADMIN_PREFIX, answer_filter=for_mlflow_worker)
    scrub_server_logs()
    return relay


def for_mlflow_worker(answer: Answer) -> Answer:
    """The answer as MLflow's worker must get it: a 200 for anything it must not send again."""
    if answer.status in (429, 503):
        return answer  # a rate limit, or a full spool: trying again later is right
    if answer.status >= 400:
        return Answer(200, answer.body, answer.headers)
    return answer
