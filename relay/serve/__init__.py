"""Stage 4: serve. The Flask extension and app factory (app.py), the routes, the served pages,
the WSGI entry, /metrics, scrubbed logs, gunicorn's settings and the command line."""
