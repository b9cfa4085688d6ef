"""The remote config: fetched with a short timeout, cached, and failing closed.

Blocking the config host must switch telemetry off, so a failed fetch means "off" until a later
fetch succeeds.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..store.data import package_version, user_agent
from .config import Config


@dataclass(frozen=True)
class ConfigState:
    values: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # set when the remote config could not be fetched

    @property
    def rollout_percentage(self) -> int:
        value = self.values.get("ui_rollout_percentage", 100)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return 100
        return int(min(100, max(0, value)))

    @property
    def disabled_events(self) -> list[str]:
        events = self.values.get("disable_ui_events") or []
        return [e for e in events if isinstance(e, str)] if isinstance(events, list) else []

    @property
    def ingestion_url(self) -> str | None:
        url = self.values.get("ingestion_url")
        ok = isinstance(url, str) and url.lower().startswith(("http://", "https://"))
        return url if ok else None


def fetch_json(url: str, timeout: float) -> dict[str, Any]:
    # Only our own User-Agent: nothing of any browser request goes into this fetch.
    request = urllib.request.Request(url, headers={
        "User-Agent": user_agent(), "Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        body = json.loads(resp.read(256 * 1024))
    if not isinstance(body, dict):
        raise ValueError("the config is not a JSON object")
    return body


class RemoteConfig:
    def __init__(self, config: Config, clock: Callable[[], float] = time.monotonic,
                 fetch: Callable[[str, float], dict[str, Any]] = fetch_json) -> None:
        self._config = config
        self._clock = clock
        self._fetch = fetch
        self._lock = threading.Lock()
        self._state: ConfigState | None = None
        self._expires = 0.0
        self.url = config.config_url.replace("{version}", package_version())

    def _local(self) -> ConfigState:
        return ConfigState({
            "ui_rollout_percentage": self._config.ui_rollout_percentage,
            "disable_ui_events": list(self._config.disable_ui_events),
        })

    def get(self) -> ConfigState:
        if not self.url:
            return self._local()
        now = self._clock()
        if self._state is not None and now < self._expires:
            return self._state
        with self._lock:  # one fetch at a time; the others wait at most the 1 s timeout
            if self._state is not None and self._clock() < self._expires:
                return self._state
            return self._refresh()

    def _refresh(self) -> ConfigState:
        try:
            values = self._fetch(self.url, self._config.config_timeout)
        except Exception as err:  # noqa: BLE001 - any failure means "off", said in words
            reason = type(err).__name__
            if isinstance(err, TimeoutError) or "timed out" in str(err):
                reason = f"no answer within {self._config.config_timeout:g} s"
            elif getattr(err, "code", None):
                reason = f"HTTP {err.code}"  # type: ignore[attr-defined]
            self._state = ConfigState({}, f"{reason} from {self.url}")
            self._expires = self._clock() + self._config.config_retry_seconds
        else:
            self._state = ConfigState(values)
            self._expires = self._clock() + self._config.config_cache_seconds
        return self._state

    @property
    def generation(self) -> float:
        """Changes whenever the config is refreshed: the forwarder resumes after a stop then."""
        return self._expires
