"""file:///path.jsonl: one DATA object a line, the default upstream (nothing leaves the machine)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..store.codec import StoredRecord
from .base import DONE, Outcome, Sink


def file_url_path(url: str) -> Path:
    """The path a file:// URL names."""
    return Path(unquote(urlsplit(url).path))


def sink_file(upstream: str) -> Path | None:
    """The file the records go to, or None when the upstream is not a file."""
    return file_url_path(upstream) if upstream.startswith("file://") else None


class FileSink(Sink):
    """Appends each batch and fsyncs it before the spool forgets the records."""

    # Not bound by MLflow's batch size: larger batches mean fewer fsyncs and spool deletes.
    batch_size = 10_000

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = file_url_path(url)

    def send(self, records: Sequence[StoredRecord]) -> Outcome:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write("".join(f"{r.data}\n" for r in records))
                f.flush()
                os.fsync(f.fileno())
        except OSError as err:
            return Outcome.retry("file_error", f"cannot write {self.path}: "
                                 f"{err.strerror or err}")
        return DONE

    def check(self) -> str | None:
        directory = self.path.parent
        if directory.exists() and not os.access(directory, os.W_OK):
            return f"cannot write to {directory}"
        return None
