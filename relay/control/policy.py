"""On or off, and why: the one place that decides whether telemetry is collected.

The environment is read on every call (not cached in Config): an administrator who sets
DO_NOT_TRACK must not need a restart for it to take effect.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from .remote_config import RemoteConfig

TRUTHY = {"true", "1", "yes"}
OPT_OUT_VARIABLES = ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK")
CI_VARIABLES = (
    "CI", "GITHUB_ACTIONS", "CIRCLECI", "GITLAB_CI", "JENKINS_URL", "TRAVIS", "TF_BUILD",
    "BITBUCKET_BUILD_NUMBER", "CODEBUILD_BUILD_ARN", "BUILDKITE", "TEAMCITY_VERSION",
    "PYTEST_CURRENT_TEST",
)


@dataclass(frozen=True)
class Decision:
    enabled: bool
    # Who switched it off: "server" (administrator or environment), "remote_config",
    # "request" (the browser's privacy signal). None while on.
    source: str | None = None
    reason: str | None = None

    @property
    def words(self) -> str:
        return "on" if self.enabled else f"off: {self.reason}"


ON = Decision(True)


_NAMES = frozenset((*OPT_OUT_VARIABLES, "RELAY_IGNORE_CI", *CI_VARIABLES))
_BYTE_NAMES = frozenset(map(os.fsencode, _NAMES))


def _set_variables(env: Mapping[str, str]) -> dict[str, str]:
    """The policy's variables that are set in env, read afresh.

    This runs on every request, and nearly every name is missing. One pass over the names
    that are set costs half as much as asking for each of ours (a missing name raises and
    catches two KeyErrors inside os.environ.get), and a pass over os.environb, which Python
    keeps in step with os.environ, a third less again: its keys need no decoding.
    """
    if env is os.environ and os.supports_bytes_environ:
        return {os.fsdecode(name): os.fsdecode(os.environb[name])
                for name in _BYTE_NAMES.intersection(os.environb)}
    return {name: env[name] for name in _NAMES.intersection(env)}


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() in TRUTHY


def environment_decision(environ: Mapping[str, str] | None = None) -> Decision:
    """What the server's environment says, independent of any request or remote config."""
    env = _set_variables(os.environ if environ is None else environ)
    for name in OPT_OUT_VARIABLES:
        if _truthy(env.get(name)):
            return Decision(False, "server",
                            f"turned off by the server administrator: {name} is set")
    if not _truthy(env.get("RELAY_IGNORE_CI")):
        for name in CI_VARIABLES:
            if name in env:
                return Decision(False, "server",
                                f"turned off because {name} is set (a CI environment); "
                                "set RELAY_IGNORE_CI=true to collect anyway")
    return ON


def remote_decision(remote: Mapping[str, object] | None, error: str | None) -> Decision:
    """What the remote config says; `error` is set when it could not be fetched."""
    if error is not None:
        return Decision(False, "remote_config",
                        f"turned off because the remote config could not be fetched ({error})")
    if remote:
        for key in ("disable_telemetry", "disable_ui_telemetry"):
            if remote.get(key) is True:
                return Decision(False, "remote_config",
                                f"turned off by the remote config ({key} is true)")
    return ON


def request_decision(headers: Mapping[str, str]) -> Decision:
    """The browser's own privacy signals, honoured for that one request."""
    if headers.get("Sec-GPC", "").strip() == "1":
        return Decision(False, "request",
                        "turned off for this request: the browser sends Global Privacy Control "
                        "(Sec-GPC: 1)")
    if headers.get("DNT", "").strip() == "1":
        return Decision(False, "request",
                        "turned off for this request: the browser sends Do Not Track (DNT: 1)")
    return ON


def first_off(*decisions: Decision) -> Decision:
    return next((d for d in decisions if not d.enabled), ON)


class Policy:
    """The decision, made in one place for everyone who needs it: the endpoint, the pages, the
    forwarder, /health, /metrics and `ui-telemetry status`."""

    def __init__(self, remote: RemoteConfig) -> None:
        self.remote = remote

    def server(self) -> Decision:
        """On or off for the whole server: the environment first, then the remote config."""
        env = environment_decision()
        if not env.enabled:
            return env
        state = self.remote.get()
        return remote_decision(state.values, state.error)

    def for_request(self, headers: Mapping[str, str]) -> Decision:
        """On or off for one request: the server's decision, then the browser's signals."""
        return first_off(self.server(), request_decision(headers))
