"""How a record is kept in the spool and read back as its DATA line: the one file that knows.

A validated record becomes one line of text, in one of two forms:

- **compact**, for a record with exactly the four params the browser module sends (nearly all
  of them): its nine values in STORED_FIELDS order, separated by tabs. A third of the size of
  its DATA line, and read back by putting the values into a ready-made DATA template.
- **a DATA line** for any other record: the JSON of `to_data()`. It starts with "{", which no
  compact text does (its first value is a UUID).

Either way the event_id comes first, in canonical form, and a spool row holds its records one
a line. The event_id is settled here, once: the browser's, written canonically, or a new one
when it sent none; it is stored with the record, so every retry of the row sends the same id.

Read back, each record is a StoredRecord (event_id, key, DATA line): the one type the forwarder
and every sink handle.
"""

from __future__ import annotations

import json
import re
import uuid
from itertools import repeat
from typing import Any, NamedTuple

from ..ingest.schema import ParamsSchema, RecordSchema, alphabet
from .data import DATA_FIELDS, ServerInfo, to_data

STORED_FIELDS = ("event_id", "event_name", "timestamp_ns", "params.componentId",
                 "params.componentType", "params.componentViewId", "params.eventType",
                 "installation_id", "session_id")
# The params of a compact record, in the sorted order of to_data()'s params string.
COMMON_PARAMS = ("componentId", "componentType", "componentViewId", "eventType")
_COMMON = frozenset(COMMON_PARAMS)

# What a compact value may hold: it is put inside a JSON string unescaped, and tabs and
# newlines separate values and records. Printable ASCII but " and \ is safe for all three.
PLAIN = frozenset(map(chr, range(0x20, 0x7F))) - {'"', "\\"}

KEY_BYTES = 16  # an event id as a key: the 128 bits its UUID spells

_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


class StoredRecord(NamedTuple):
    """One record as it leaves the spool: what the forwarder checks and a sink sends."""

    event_id: str  # canonical UUID text, the upstream's de-duplication key
    key: int  # the same id as a 128-bit int: cheap to keep in a set of delivered ids
    data: str  # the DATA line, JSON text


def keys_of(event_ids: list[str]) -> list[int]:
    """Each canonical event id as the 128-bit int it spells, in one pass."""
    return list(map(int, "\n".join(event_ids).replace("-", "").split("\n"), repeat(16)))


def pack(keys: list[int]) -> bytes:
    """Keys as KEY_BYTES bytes each, the spool's record of what was delivered."""
    return b"".join(k.to_bytes(KEY_BYTES, "big") for k in keys)


def unpack(blob: bytes) -> list[int]:
    return [int.from_bytes(blob[i:i + KEY_BYTES], "big")
            for i in range(0, len(blob), KEY_BYTES)]


def compact_is_safe() -> bool:
    """True while the schema declares every stored string plain: then a validated record's
    values need no escaping. If a schema change ever allows more, every record is kept as
    its DATA line instead, which is always right, only larger."""
    fields = RecordSchema().fields
    params = ParamsSchema().fields
    # encode() tells a compact record by its number of params: right only while the four are
    # exactly the required ones (a validated record has every required param, and no optional
    # one unless it was sent).
    if {name for name, field in params.items() if field.required} != _COMMON:
        return False
    for name in STORED_FIELDS:
        if name == "timestamp_ns":
            continue  # an int, written by str()
        field = params[name.removeprefix("params.")] if name.startswith("params.") \
            else fields[name]
        chars = alphabet(field)
        if chars is None or not chars <= PLAIN:
            return False
    return True


def settle_event_id(event_id: str | None) -> str:
    """The record's event_id for good: canonical (lower case, dashed), or new if absent."""
    if event_id is None:
        return str(uuid.uuid4())
    return event_id if _CANONICAL_UUID.match(event_id) else str(uuid.UUID(event_id))


class Codec:
    """Writes records in their stored form and reads stored text back as DATA lines."""

    def __init__(self, server: ServerInfo, compact: bool | None = None) -> None:
        self.server = server
        self.compact = compact_is_safe() if compact is None else compact
        # The DATA line around the nine values, cut into the ten pieces between them. The
        # relay's own fields never change, so they are encoded once, here.
        own = DATA_FIELDS[DATA_FIELDS.index("server_installation_id"):]
        tail = json.dumps({k: v for k, v in to_data(_BLANK, server).items() if k in own},
                          separators=(",", ":"))[1:]
        params = ",".join(f'\\"{name}\\":\\"\0\\"' for name in COMMON_PARAMS)
        line = ('{"event_id":"\0","event_name":"\0","timestamp_ns":\0,'
                f'"params":"{{{params}}}","status":"success","duration_ms":0,'
                '"installation_id":"\0","session_id":"\0",' + tail)
        self._pieces = line.split("\0")  # JSON text holds no raw NUL to be mistaken for one
        assert len(self._pieces) == len(STORED_FIELDS) + 1
        self._template = "%s".join(piece.replace("%", "%%") for piece in self._pieces)

    # -- writing ----------------------------------------------------------------------------

    def encode(self, records: list[dict[str, Any]]) -> list[str]:
        """The stored text of each validated record; sets its event_id for good first."""
        texts = []
        compact = self.compact
        for record in records:
            event_id = record["event_id"]
            # A validated id is hex digits with or without its four dashes: 36 characters
            # and no capital letter is the canonical form (a third of the regex's cost).
            if event_id is None or len(event_id) != 36 or not event_id.islower():
                event_id = record["event_id"] = settle_event_id(event_id)
            params = record["params"]
            if compact and len(params) == len(COMMON_PARAMS):
                texts.append("\t".join((
                    event_id, record["event_name"], str(record["timestamp_ns"]),
                    params["componentId"], params["componentType"], params["componentViewId"],
                    params["eventType"], record["installation_id"], record["session_id"])))
            else:
                texts.append(json.dumps(to_data(record, self.server), separators=(",", ":")))
        return texts

    # -- reading ----------------------------------------------------------------------------

    @staticmethod
    def event_id(text: str) -> str:
        """The event_id of one stored record: first in both forms, 36 characters."""
        return text[13:49] if text[0] == "{" else text[:36]

    def data_line(self, text: str) -> str:
        """The DATA line of one stored record."""
        return text if text[0] == "{" else self._template % tuple(text.split("\t"))

    def read_row(self, data: str, n: int) -> list[StoredRecord]:
        """The records of a spool row of n records (one a line)."""
        ids, lines = self._ids_and_lines(data, n)
        return list(map(StoredRecord, ids, keys_of(ids), lines))

    def _ids_and_lines(self, data: str, n: int) -> tuple[list[str], list[str]]:
        width = len(STORED_FIELDS)
        values = data.replace("\n", "\t").split("\t")
        if len(values) != width * n:  # some record is a DATA line (it holds no tab)
            texts = data.split("\n")
            return [self.event_id(t) for t in texts], [self.data_line(t) for t in texts]
        # The usual row, every record compact: whole-row slices and one join, half the time
        # of a record at a time.
        step = 2 * width + 1  # a record: piece, value, piece, ... value, piece
        parts = [""] * (step * n)
        for j in range(width):
            parts[2 * j::step] = [self._pieces[j]] * n
            parts[2 * j + 1::step] = values[j::width]
        parts[2 * width::step] = [self._pieces[width] + "\n"] * n
        return values[::width], "".join(parts).split("\n")[:-1]


# A record whose every field is empty: what to_data() makes of the relay's own fields.
_BLANK: dict[str, Any] = {name: None for name in DATA_FIELDS} | {"params": {}}
