"""gunicorn's worker for `COFFER_WEB_SERVER=asgi`: uvicorn's, held to the same rules as the
gthread server's logs and addresses.

- The access log (uvicorn writes `client - "METHOD /path?query HTTP/1.1" status`) records the
  path only, as gunicorn.conf.py's format does: the query string is dropped and the key of a
  mailed link's path redacted (config/log_redaction.py); the error log is redacted too.
- uvicorn does not rewrite the client address from X-Forwarded-For: Django finds it, once, by
  COFFER_BEHIND_PROXY (lib/http.py), whatever the server.

A module of its own, so manage.py commands never import gunicorn or uvicorn.
"""

from __future__ import annotations

import logging
from typing import Any

from uvicorn_worker import UvicornWorker  # type: ignore[import-untyped]

from config.log_redaction import RedactSecretPaths, redact


class PathOnlyAccessLine(logging.Filter):
    """uvicorn's access record, its path without the query string and redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            path = redact(args[2].split("?", 1)[0])
            record.args = (*args[:2], path, *args[3:])
        return True


_ACCESS_FILTER = PathOnlyAccessLine()
_ERROR_FILTER = RedactSecretPaths()


class CofferUvicornWorker(UvicornWorker):
    CONFIG_KWARGS: dict[str, Any] = {**UvicornWorker.CONFIG_KWARGS, "proxy_headers": False}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        logging.getLogger("uvicorn.access").addFilter(_ACCESS_FILTER)
        logging.getLogger("uvicorn.error").addFilter(_ERROR_FILTER)
