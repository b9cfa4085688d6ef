"""Tests of relay/serve/."""
