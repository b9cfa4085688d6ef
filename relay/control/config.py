"""Configuration, read once from the environment into one immutable object.

Only `policy.py` reads the environment again (on every request), because the opt-out switches
must work without a restart. Everything else receives this object.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from ..store.data import BATCH_SIZE

# The one place the endpoint's path is written: MLflow's, so its UI can post here unchanged.
# The browser module gets it only from the page config.
ENDPOINT = "/ajax-api/3.0/mlflow/ui-telemetry"


class ConfigError(ValueError):
    """A setting has a value the relay cannot use; the message names the variable."""


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(name: str, raw: str) -> float:
    match = _DURATION.match(raw)
    if not match:
        raise ConfigError(f"{name}={raw!r} is not a duration: use seconds or a number with "
                          "s, m, h or d (for example 30s, 5m, 7d)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _int_in(low: int, high: int) -> Callable[[str, str], int]:
    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a whole number") from None
        if not low <= value <= high:
            raise ConfigError(f"{name}={value} is out of range: use {low} to {high}")
        return value

    return parse


def _bool(name: str, raw: str) -> bool:
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _csv(name: str, raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _prefix(name: str, raw: str) -> str:
    raw = raw.strip().strip("/")
    if raw and not re.fullmatch(r"[A-Za-z0-9_.~/-]+", raw):
        raise ConfigError(f"{name}={raw!r} may hold only letters, digits and - _ . ~ /")
    return f"/{raw}" if raw else ""


def _url(schemes: tuple[str, ...]) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        raw = raw.strip()
        if raw and not raw.lower().startswith(tuple(f"{s}://" for s in schemes)):
            raise ConfigError(f"{name}={raw!r} must start with " + " or ".join(
                f"{s}://" for s in schemes))
        return raw

    return parse


def _ingestion_url(name: str, raw: str) -> str:
    url = _url(("http", "https", "file", "nats"))(name, raw)
    if url.lower().startswith("nats://"):
        from ..forward.nats import parse_nats_url

        try:
            parse_nats_url(url)
        except ValueError as err:
            raise ConfigError(f"{name}={err}") from None
        if importlib.util.find_spec("nats") is None:
            raise ConfigError(f"{name} names a NATS server, and the NATS client is not "
                              "installed: pip install 'ui-telemetry[nats]'")
    return url


_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*s)?\s*(?::\s*(\d+))?\s*$")


def _rate(name: str, raw: str) -> tuple[float, float] | None:
    """RATE[/s][:BURST], or off. The burst defaults to 60 s of the rate (10 s for the relay's)."""
    if raw.strip().lower() in {"off", "none", "0"}:
        return None
    match = _RATE.match(raw)
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(f"{name}={raw!r} is not a rate: use records a second, with an "
                          "optional burst after a colon (10/s:600), or off")
    rate = float(match.group(1))
    default_burst = rate * (10 if name == "RELAY_MAX_RECORDS_PER_S" else 60)
    burst = float(match.group(2)) if match.group(2) else default_burst
    if burst < 1:
        raise ConfigError(f"{name}={raw!r}: the burst must be at least 1 record")
    return rate, burst


def _text(name: str, raw: str) -> str:
    return raw.strip()


@dataclass(frozen=True)
class Setting:
    env: str
    default: str
    parse: Callable[[str, str], Any]
    help: str


# The one list of settings: `ui-telemetry serve --help`, the README table and the tests use it.
SETTINGS: tuple[Setting, ...] = (
    Setting("RELAY_DATA_DIR", "", _text,
            "Directory for the spool, the file sink and the relay's installation id. "
            "Default: the platform's user data directory (~/.local/share/ui-telemetry on Linux)."),
    Setting("RELAY_INGESTION_URL", "", _ingestion_url,
            "Where records go: http(s):// upstream in MLflow's format, file:///path.jsonl, or "
            "nats://HOST:PORT[,HOST:PORT...]/SUBJECT (a JetStream stream; needs "
            "ui-telemetry[nats]). Default: file://<data dir>/forwarded.jsonl (nothing leaves "
            "the machine)."),
    Setting("RELAY_CONFIG_URL", "", _url(("http", "https")),
            "Remote config in MLflow's shape; may contain {version}. Unset: local config. "
            "Unreachable: telemetry off (fail closed)."),
    Setting("RELAY_STATIC_PREFIX", "", _prefix,
            "URL prefix for every route, like `mlflow server --static-prefix`."),
    Setting("RELAY_CORS_ORIGINS", "", _csv,
            "Comma-separated origins allowed to POST cross-site (CORS). Empty: same origin only."),
    Setting("RELAY_UI_ROLLOUT_PERCENTAGE", "100", _int_in(0, 100),
            "Share of browser sessions that send telemetry (local config)."),
    Setting("RELAY_DISABLE_UI_EVENTS", "", _csv,
            "Comma-separated componentIds the browser never sends (local config)."),
    Setting("RELAY_UI_FLUSH_INTERVAL_MS", "5000", _int_in(100, 600_000),
            "How often the browser module sends its queue."),
    Setting("RELAY_SPOOL_MAX_AGE", "7d", parse_duration,
            "Records waiting longer than this are dropped (and counted)."),
    Setting("RELAY_SPOOL_MAX_RECORDS", "1000000", _int_in(1, 1_000_000_000),
            "Spool capacity; when full, POSTs get 503 with Retry-After."),
    Setting("RELAY_FLUSH_INTERVAL", "10s", parse_duration,
            f"How often the forwarder sends a batch (sooner when {BATCH_SIZE} records wait)."),
    Setting("RELAY_UPSTREAM_TIMEOUT", "10s", parse_duration,
            "Timeout of one upstream request."),
    Setting("RELAY_READ_TIMEOUT", "10s", parse_duration,
            "A request (headers and body) not received whole this long after it began closes "
            "its connection (`ui-telemetry serve`)."),
    Setting("RELAY_MAX_CONNECTIONS", "4096", _int_in(16, 1_000_000),
            "Open connections the relay keeps, all workers together; one more is answered 503 "
            "at once (`ui-telemetry serve`)."),
    Setting("RELAY_RATE_LIMIT", "10/s:600", _rate,
            "Records a second each installation_id and each session_id may send, and the burst "
            "kept (RATE[/s][:BURST]; BURST defaults to 60 x RATE); `off` for none. Over it: 429 "
            "with Retry-After, the records under it kept."),
    Setting("RELAY_MAX_RECORDS_PER_S", "5000", _rate,
            "Records a second the whole relay takes, with 10 s of them as a burst "
            "(RATE[/s][:BURST]); `off` for none. Over it: 429 with Retry-After for everyone."),
    Setting("RELAY_USAGE_DB", "", _text,
            "The usage store (DuckDB) that `ui-telemetry report` loads the file sink into. "
            "Default: <data dir>/usage.duckdb."),
    Setting("RELAY_USAGE_MIN_INSTALLATIONS", "10", _int_in(1, 1_000_000),
            "K of the live usage dashboard ({prefix}/usage): a component or week used by fewer "
            "installations shows no figures. Lower it only for figures that stay in the team."),
    Setting("RELAY_IGNORE_CI", "false", _bool,
            "true: do not switch telemetry off when a CI environment variable is present. "
            "Read on every request."),
)


@dataclass(frozen=True)
class Config:
    data_dir: Path
    ingestion_url: str
    config_url: str
    static_prefix: str
    cors_origins: tuple[str, ...]
    ui_rollout_percentage: int
    disable_ui_events: tuple[str, ...]
    ui_flush_interval_ms: int
    spool_max_age: float
    spool_max_records: int
    flush_interval: float
    upstream_timeout: float
    read_timeout: float
    max_connections: int
    rate_limit: tuple[float, float] | None  # (records a second, burst) per id, or off
    max_records_per_s: tuple[float, float] | None  # the same for the whole relay, or off
    usage_db: str
    usage_min_installations: int
    # Remote-config timings and batch size are MLflow's, not settings; tests shorten them.
    config_timeout: float = 1.0
    config_cache_seconds: float = 3 * 3600
    config_retry_seconds: float = 5 * 60
    batch_size: int = BATCH_SIZE
    max_body_bytes: int = 1024 * 1024
    max_records_per_request: int = 1000

    @property
    def spool_path(self) -> Path:
        return self.data_dir / "spool.sqlite3"

    @property
    def usage_path(self) -> Path:
        return Path(self.usage_db).expanduser() if self.usage_db \
            else self.data_dir / "usage.duckdb"

    @property
    def default_sink_url(self) -> str:
        return (self.data_dir / "forwarded.jsonl").as_uri()

    @property
    def local_ingestion_url(self) -> str:
        return self.ingestion_url or self.default_sink_url

    @property
    def endpoint_path(self) -> str:
        return f"{self.static_prefix}{ENDPOINT}"


def load_config(environ: Mapping[str, str] | None = None, **overrides: Any) -> Config:
    """Build the Config from the environment; raise ConfigError naming a bad variable."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        if setting.env == "RELAY_IGNORE_CI":
            continue  # a per-request switch, read by policy.py
        raw = env.get(setting.env, "")
        if raw.strip() == "":
            raw = setting.default
        values[setting.env.removeprefix("RELAY_").lower()] = setting.parse(setting.env, raw)
    data_dir = values.pop("data_dir") or platformdirs.user_data_dir("ui-telemetry")
    values["data_dir"] = Path(data_dir).expanduser().resolve()
    values.update(overrides)
    return Config(**values)
