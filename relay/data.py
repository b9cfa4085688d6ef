"""DATA: the upstream record, exactly the fields of the contract's section 5 and nothing else."""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import uuid
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

SOURCE_SDK = "ui-telemetry-relay"
SCHEMA_VERSION = 2  # MLflow's telemetry schema version

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


@dataclass(frozen=True)
class ServerInfo:
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
        return str(uuid.UUID(bytes=os.urandom(16), version=4))
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


# The compact form the spool keeps a common record in: these nine values, in this order,
# tab-separated. compact() writes them; the template in DataEncoder reads them back.
STORED_FIELDS = ("event_id", "event_name", "timestamp_ns", "params.componentId",
                 "params.componentType", "params.componentViewId", "params.eventType",
                 "installation_id", "session_id")
# The params of nearly every record (the browser module sends no optional ones), sorted.
COMMON_PARAMS = tuple(f.removeprefix("params.") for f in STORED_FIELDS if f.startswith("params."))
# A character a stored value may hold: printable ASCII but " and \, which JSON carries as it
# is inside quotes. A tab separates values; a record's text has exactly eight.
PLAIN = r"[ !#-\[\]-~]"
STORED_TEXT = rf"(?:{PLAIN}*\t){{{len(STORED_FIELDS) - 1}}}{PLAIN}*\Z"
_STORED = re.compile(STORED_TEXT).match


def compact(record: dict[str, Any]) -> str:
    """The nine values of STORED_FIELDS, tab-separated, unchecked: KeyError if one is missing,
    TypeError if one (the timestamp aside) is not a string."""
    params = record["params"]
    return "\t".join((record["event_id"], record["event_name"], str(record["timestamp_ns"]),
                      params["componentId"], params["componentType"], params["componentViewId"],
                      params["eventType"], record["installation_id"], record["session_id"]))


class DataEncoder:
    """DATA lines, and the compact form the spool keeps them in until they are sent.

    to_data() stays the readable definition; property tests check that every line parses to
    exactly what it returns. The relay's own fields never change, so they are encoded once.
    A record with the common params and plain text everywhere (nearly all of them) is stored
    as its nine values, tab-separated, a third the size of its DATA line; expand() puts them
    in a ready-made template. Any other record is stored as its DATA line (it starts with {).
    """

    def __init__(self, server: ServerInfo) -> None:
        self._server = server
        head = to_data({name: None for name in DATA_FIELDS} | {"params": {}}, server)
        own = {k: head[k] for k in DATA_FIELDS[DATA_FIELDS.index("server_installation_id"):]}
        self._tail = json.dumps(own, separators=(",", ":"))[1:]  # '"server_installation_id":…}'
        assert head["status"] == "success" and head["duration_ms"] == 0
        # The line around the nine values; JSON text holds no raw NUL to be mistaken for one.
        params = ",".join(f'\\"{name}\\":\\"\0\\"' for name in COMMON_PARAMS)
        line = ('{"event_id":"\0","event_name":"\0","timestamp_ns":\0,'
                f'"params":"{{{params}}}","status":"success","duration_ms":0,'
                '"installation_id":"\0","session_id":"\0",' + self._tail)
        self._pieces = line.split("\0")
        assert len(self._pieces) == len(STORED_FIELDS) + 1
        self._template = "%s".join(piece.replace("%", "%%") for piece in self._pieces)

    def stored(self, record: dict[str, Any]) -> str:
        """What the spool keeps for one validated record (event_id set)."""
        if len(record["params"]) == len(COMMON_PARAMS) and type(record["timestamp_ns"]) is int:
            try:
                text = compact(record)
            except (KeyError, TypeError):
                text = ""
            if _STORED(text):
                return text
        return json.dumps(to_data(record, self._server), separators=(",", ":"))

    @staticmethod
    def event_id(stored: str) -> str:
        """The event_id of a stored record: first in both forms, always a canonical UUID."""
        return stored[13:49] if stored[0] == "{" else stored[:36]

    def expand(self, stored: str) -> str:
        """The DATA line of a stored record."""
        return stored if stored[0] == "{" else self._template % tuple(stored.split("\t"))

    @staticmethod
    def row_values(data: str, n: int) -> list[str] | None:
        """The values of a spool row's n records, one flat list, when all n are compact (the
        usual row: a compact record has eight tabs, a DATA line none); else None."""
        values = data.replace("\n", "\t").split("\t")
        return values if len(values) == len(STORED_FIELDS) * n else None

    @staticmethod
    def event_ids(values: list[str]) -> list[str]:
        """The event_id of every record in row_values(): the first of each record's values."""
        return values[::len(STORED_FIELDS)]

    def expand_values(self, values: list[str]) -> list[str]:
        """expand() of every record in row_values(): slices and one join for the whole row,
        rather than a format a record (half the time)."""
        width = len(STORED_FIELDS)
        n = len(values) // width
        step = 2 * width + 1  # a record: piece, value, piece, ... value, piece
        parts = [""] * (step * n)
        for j in range(width):
            parts[2 * j::step] = [self._pieces[j]] * n
            parts[2 * j + 1::step] = values[j::width]
        parts[2 * width::step] = [self._pieces[width] + "\n"] * n
        return "".join(parts).split("\n")[:-1]
