"""DATA: the record as it goes upstream, exactly these fields and nothing else.

to_data() is the readable definition; relay.codec writes the same lines faster, and property
tests hold the two together.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import uuid
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

SOURCE_SDK = "ui-telemetry-relay"  # also the relay's User-Agent product name
SCHEMA_VERSION = 2  # MLflow's telemetry schema version
BATCH_SIZE = 500  # MLflow's ingestion takes at most this many records a request

DATA_FIELDS = (
    "event_id", "event_name", "timestamp_ns", "params", "status", "duration_ms",
    "installation_id", "session_id", "server_installation_id", "source_sdk", "version",
    "schema_version", "python_version", "operating_system",
)


def package_version() -> str:
    try:
        return version("ui-telemetry")
    except PackageNotFoundError:
        return "0.0.0+source"


def user_agent() -> str:
    """The relay's own User-Agent, the only one its requests (upstream, remote config) carry."""
    return f"{SOURCE_SDK}/{package_version()}"


@dataclass(frozen=True)
class ServerInfo:
    """The relay's own fields of DATA, the same for every record it sends."""

    server_installation_id: str
    version: str
    python_version: str
    operating_system: str

    @classmethod
    def load(cls, data_dir: Path) -> ServerInfo:
        return cls(
            server_installation_id=server_installation_id(data_dir),
            version=package_version(),
            python_version=".".join(map(str, sys.version_info[:3])),
            operating_system=platform.platform(),
        )


def server_installation_id(data_dir: Path) -> str:
    """The relay's own persistent id, created once; racing workers agree on the first one."""
    path = data_dir / "installation_id"
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        existing = path.read_text().strip()
        if existing:
            return existing
        # Another worker created the file but has not written it yet: take its id next time.
        return str(uuid.uuid4())
    new_id = str(uuid.uuid4())
    with os.fdopen(fd, "w") as f:
        f.write(new_id)
    return new_id


def to_data(record: dict[str, Any], server: ServerInfo) -> dict[str, Any]:
    """One validated record to DATA; event_id must already be set."""
    return {
        "event_id": record["event_id"],
        "event_name": record["event_name"],
        "timestamp_ns": record["timestamp_ns"],
        # A JSON string, as MLflow's client sends it, so the ETL parses it the same way.
        "params": json.dumps(record["params"], separators=(",", ":"), sort_keys=True),
        "status": "success",
        "duration_ms": 0,
        "installation_id": record["installation_id"],
        "session_id": record["session_id"],
        "server_installation_id": server.server_installation_id,
        "source_sdk": SOURCE_SDK,
        "version": server.version,
        "schema_version": SCHEMA_VERSION,
        "python_version": server.python_version,
        "operating_system": server.operating_system,
    }
