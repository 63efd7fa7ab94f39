"""Gunicorn settings for Coffer in production: `gunicorn config.wsgi` reads this file by itself.

Everything that differs between machines comes from the environment:

- `COFFER_BIND` (default `127.0.0.1:8000`): where to listen; comma-separated for several.
- `COFFER_WEB_WORKERS` (default CPU cores + 1, at most 9): worker processes.
- `COFFER_WEB_THREADS` (default 4): threads per worker (gthread workers).
- `COFFER_WEB_TIMEOUT` (default 30): seconds a silent worker gets before it is restarted.
- `COFFER_WEB_SERVER` (default `wsgi`): `asgi` runs uvicorn workers, started as
  `gunicorn config.asgi`: the change feed's long poll (`GET /api/v1/values?wait=`) then holds
  a request without a thread; under `wsgi` it answers at once (api/feed.py).

The access log goes to stdout with the path only: a query string can carry a search a user
would not want kept, and the referrer (another of our own URLs) is left out for the same reason.
The key in a mailed link's path (invitation, password reset, email confirmation) is written as
`[redacted]`, in both log formats (config/gunicorn_logging.py).
"""

from __future__ import annotations

import os
import sys


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may use (containers)
    except AttributeError:
        return os.cpu_count() or 1


def _positive_int(name: str, default: int, maximum: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= maximum:
        sys.exit(f"{name} must be a whole number from 1 to {maximum}, not {raw!r}.")
    return value


bind = [
    address.strip()
    for address in os.environ.get("COFFER_BIND", "127.0.0.1:8000").split(",")
    if address.strip()
]
_server = os.environ.get("COFFER_WEB_SERVER", "wsgi").strip().lower() or "wsgi"
if _server not in {"wsgi", "asgi"}:
    sys.exit(f"COFFER_WEB_SERVER is wsgi or asgi, not {_server!r}.")
worker_class = "config.asgi_worker.CofferUvicornWorker" if _server == "asgi" else "gthread"
# One worker per core and one more, 4 threads each (bench/peer.py, docs/benchmarks.md
# "Production defaults"): on 2 cores, 3 workers served the API's reads as fast as 5, for the
# same CPU per request and about a third less memory; and with kept database connections each
# thread holds one, so fewer threads hold fewer of PostgreSQL's connection slots.
workers = _positive_int("COFFER_WEB_WORKERS", min(_cores() + 1, 9), maximum=64)
threads = _positive_int("COFFER_WEB_THREADS", 4, maximum=64)
timeout = _positive_int("COFFER_WEB_TIMEOUT", 30, maximum=600)
graceful_timeout = 30
keepalive = 5

# Restart each worker after about a thousand requests, not all at the same moment.
max_requests = 1000
max_requests_jitter = 100

proc_name = "coffer"
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("COFFER_LOG_LEVEL", "info").lower()
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms "%(a)s"'
logger_class = "config.gunicorn_logging.GunicornLogger"

# COFFER_LOG_FORMAT=json: gunicorn's own lines (errors, and the access log as fields: address,
# method, path, status, bytes, duration, user agent) are JSON objects too, one per line.
if os.environ.get("COFFER_LOG_FORMAT", "").strip().lower() == "json":
    logconfig_dict = {
        "formatters": {"json": {"()": "config.json_logs.JsonFormatter"}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            },
            "error_console": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            },
        },
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["error_console"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False},
        },
    }

# The heartbeat files of the workers: in memory where there is a /dev/shm (a container's disk
# may be slow enough to make healthy workers look stuck).
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"

# Gunicorn's runtime control socket would be one fixed path per user shared by every
# instance on the machine; Coffer does not use it.
control_socket_disable = True
