"""The relay inside `mlflow server`: the `mlflow.app` entry points (plugin.py)."""
