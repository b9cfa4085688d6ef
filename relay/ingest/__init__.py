"""Stage 1: ingest. A POST becomes an Answer (answer.py) through endpoint.ingest(): the request
checked, each record validated against the schema (schema.py, validation.py), the valid ones
handed to the store."""
