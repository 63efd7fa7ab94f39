"""gunicorn's logger for Coffer (`logger_class` in gunicorn.conf.py): gunicorn's own, with no
key of a mailed link in its lines (config/log_redaction.py). Every text field of an access-log
line is redacted before the plain or the JSON format writes it (the path `U`, the request line
`r`, the referrer `f`, headers and environment variables alike), and the error log (which names
the path of a request that failed) gets the same filter as Django's handlers. A module of its
own, so manage.py commands never import gunicorn."""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from config.log_redaction import RedactSecretPaths, redact

_ERROR_LOG_FILTER = RedactSecretPaths()  # one instance: setup() runs again on a reload


class GunicornLogger(Logger):
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        self.error_log.addFilter(_ERROR_LOG_FILTER)

    def atoms(self, resp: Any, req: Any, environ: dict, request_time: Any) -> dict:
        atoms = super().atoms(resp, req, environ, request_time)
        return {
            name: redact(value) if isinstance(value, str) else value
            for name, value in atoms.items()
        }
