"""The README stays the front door: every setting documented, CI runs the README's command."""

from __future__ import annotations

import re

from relay.control.config import SETTINGS
from relay.ingest.schema import describe

from .support import REPO

README = (REPO / "README.md").read_text()


def test_every_setting_is_in_the_configuration_table() -> None:
    for setting in SETTINGS:
        assert f"| `{setting.env}` |" in README, setting.env


def test_every_collected_field_is_listed() -> None:
    for field in describe():
        assert f"| `{field.name}` |" in README, field.name


def test_ci_runs_exactly_the_readme_test_command() -> None:
    commands = re.findall(r"```sh\n(.+?)\n```", README, re.S)
    assert "bash scripts/test.sh" in commands
    assert "exec bash scripts/test.sh" in (REPO / ".ci/run").read_text()
