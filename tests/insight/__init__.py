"""Tests of relay/insight/."""
