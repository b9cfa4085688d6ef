"""Tests of relay/ingest/."""
