"""Tests of relay/control/."""
