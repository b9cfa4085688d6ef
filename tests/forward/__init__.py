"""Tests of relay/forward/."""
