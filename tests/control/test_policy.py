"""Every server-side opt-out source, its reason in words, and what "off" means."""

from __future__ import annotations

import json
import os

import pytest
from flask.testing import FlaskClient

from relay.control.policy import (
    CI_VARIABLES,
    OPT_OUT_VARIABLES,
    environment_decision,
    remote_decision,
    request_decision,
)
from relay.serve.extension import relay_of

from ..support import ENDPOINT, REPO, make_record

# Written out here, as the README lists them: a name dropped from the relay's own constants
# fails these tests instead of silently dropping its case.
CI_NAMES = ("CI", "GITHUB_ACTIONS", "CIRCLECI", "GITLAB_CI", "JENKINS_URL", "TRAVIS", "TF_BUILD",
            "BITBUCKET_BUILD_NUMBER", "CODEBUILD_BUILD_ARN", "BUILDKITE", "TEAMCITY_VERSION",
            "PYTEST_CURRENT_TEST")
OPT_OUT_NAMES = ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK")


def spool_depth(client: FlaskClient) -> int:
    return relay_of(client.application).spool.depth()


@pytest.mark.parametrize("name", OPT_OUT_NAMES)
@pytest.mark.parametrize("value", ["true", "TRUE", "1", "yes", "Yes"])
def test_opt_out_variables(name: str, value: str) -> None:
    decision = environment_decision({name: value})
    assert not decision.enabled
    assert decision.reason == f"turned off by the server administrator: {name} is set"


@pytest.mark.parametrize("value", ["false", "0", "no", ""])
def test_opt_out_variables_other_values_leave_it_on(value: str) -> None:
    assert environment_decision({"DO_NOT_TRACK": value, "RELAY_IGNORE_CI": "true"}).enabled




def test_the_relay_knows_exactly_the_documented_names() -> None:
    assert set(CI_VARIABLES) == set(CI_NAMES)
    assert set(OPT_OUT_VARIABLES) == set(OPT_OUT_NAMES)
    readme = (REPO / "README.md").read_text()
    for name in (*CI_NAMES, *OPT_OUT_NAMES):
        assert f"`{name}`" in readme, name


@pytest.mark.parametrize("name", CI_NAMES)
def test_ci_variables_switch_it_off_unless_ignored(name: str) -> None:
    decision = environment_decision({name: "whatever"})
    assert not decision.enabled and name in decision.reason
    assert "RELAY_IGNORE_CI" in decision.reason
    assert environment_decision({name: "x", "RELAY_IGNORE_CI": "true"}).enabled
    # The administrator's opt-out still wins over RELAY_IGNORE_CI.
    assert not environment_decision({name: "x", "RELAY_IGNORE_CI": "true",
                                     "DO_NOT_TRACK": "1"}).enabled


POLICY_VARIABLES = (*OPT_OUT_NAMES, "RELAY_IGNORE_CI", *CI_NAMES)


@pytest.mark.parametrize("name", POLICY_VARIABLES)
def test_the_live_environment_reads_as_a_copy_of_it_does(monkeypatch: pytest.MonkeyPatch,
                                                         name: str) -> None:
    # os.environ is read through os.environb (cheaper); a copy through the Mapping API.
    for other in POLICY_VARIABLES:
        monkeypatch.delenv(other, raising=False)
    assert environment_decision().enabled
    monkeypatch.setenv(name, "1")
    assert environment_decision() == environment_decision(dict(os.environ))
    assert environment_decision().enabled == (name == "RELAY_IGNORE_CI")
    monkeypatch.setenv("RELAY_IGNORE_CI", "true")
    assert environment_decision() == environment_decision(dict(os.environ))
    assert environment_decision().enabled == (name not in OPT_OUT_NAMES)


def test_request_signals() -> None:
    assert "Global Privacy Control" in request_decision({"Sec-GPC": "1"}).reason
    assert "Do Not Track" in request_decision({"DNT": "1"}).reason
    assert request_decision({"DNT": "0", "Sec-GPC": "0"}).enabled


def test_remote_config_decisions() -> None:
    assert "disable_telemetry" in remote_decision({"disable_telemetry": True}, None).reason
    assert "disable_ui_telemetry" in remote_decision({"disable_ui_telemetry": True}, None).reason
    assert "could not be fetched" in remote_decision({}, "timeout").reason
    assert remote_decision({"disable_telemetry": False}, None).enabled


@pytest.mark.parametrize("env", [{"MLFLOW_DISABLE_TELEMETRY": "true"}, {"DO_NOT_TRACK": "1"},
                                 {"RELAY_IGNORE_CI": "", "CI": "true"}])
def test_server_off_without_restart(client: FlaskClient, monkeypatch: pytest.MonkeyPatch,
                                    env: dict[str, str]) -> None:
    assert client.post(ENDPOINT, json={"records": [make_record()]}).get_json()["accepted"] == 1
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    resp = client.post(ENDPOINT, json={"records": [make_record()]})
    assert resp.status_code == 200 and resp.get_json() == {"status": "disabled"}
    assert client.get(ENDPOINT).get_json()["disable_ui_telemetry"] is True
    assert spool_depth(client) == 1  # nothing more was kept
    page = client.get("/settings").get_data(as_text=True)
    config = json.loads(page.split('id="ui-telemetry-config">')[1].split("</script>")[0])
    assert config["disabled"] is True and config["reason"]
    assert "ui_telemetry_enabled 0.0" in client.get("/metrics").get_data(as_text=True)
    for k in env:
        monkeypatch.delenv(k)
    monkeypatch.setenv("RELAY_IGNORE_CI", "true")
    assert client.post(ENDPOINT, json={"records": [make_record()]}).get_json()["accepted"] == 1


@pytest.mark.parametrize("header", [{"Sec-GPC": "1"}, {"DNT": "1"}])
def test_browser_signal_turns_off_that_request(client: FlaskClient, header: dict) -> None:
    resp = client.post(ENDPOINT, json={"records": [make_record()]}, headers=header)
    assert resp.get_json() == {"status": "disabled"}
    assert spool_depth(client) == 0
    assert client.get(ENDPOINT, headers=header).get_json()["disable_ui_telemetry"] is True
    # Other requests are unaffected.
    assert client.post(ENDPOINT, json={"records": [make_record()]}).get_json()["accepted"] == 1
