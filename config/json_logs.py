"""JSON logs for log shippers (`COFFER_LOG_FORMAT=json`): one JSON object per line.

Each line has `time` (UTC, ISO 8601), `level`, `logger`, `message`, and where there is one, the
`exception` (its traceback, as text). gunicorn's access log (`gunicorn.conf.py` uses this
formatter in JSON mode) gets its fields instead: client address, method, path (never the query
string), status, bytes, duration and user agent. Nothing else of a log record is written: not
its arguments, not the request object Django attaches to request errors (only its method and
path, with a mailed link's key redacted as config/log_redaction.py says), so a value a form or
a header carried cannot reach the log through this formatter.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from config.log_redaction import redact

# gunicorn's access-log atoms -> our field names (the path `U` has no query string).
ACCESS_FIELDS = {
    "h": "remote_address",
    "m": "method",
    "U": "path",
    "s": "status",
    "B": "bytes",
    "M": "duration_ms",
    "a": "user_agent",
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
        }
        if record.name == "gunicorn.access" and isinstance(record.args, dict):
            entry["message"] = "request"
            for atom, name in ACCESS_FIELDS.items():
                value = record.args.get(atom)
                if value not in (None, "-"):
                    entry[name] = _number(value) if atom in "sBM" else str(value)
        else:
            entry["message"] = record.getMessage()
        status = getattr(record, "status_code", None)
        if isinstance(status, int):
            entry["status"] = status
        request: Any = getattr(record, "request", None)
        if request is not None and hasattr(request, "method") and hasattr(request, "path"):
            entry["method"], entry["path"] = str(request.method), redact(str(request.path))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        # ensure_ascii: control characters and line breaks are escaped, so one record is
        # always exactly one line.
        return json.dumps(entry, ensure_ascii=True, default=str)


def _number(value: object) -> object:
    try:
        return int(str(value))
    except ValueError:
        return str(value)
