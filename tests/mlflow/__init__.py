"""Tests of relay/mlflow/."""
