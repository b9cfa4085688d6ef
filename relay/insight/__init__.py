"""Stage 5: insight. Forwarded records loaded once each into a DuckDB store (store.py), and the
usage figures a product team publishes from it, with a privacy threshold (report.py)."""
