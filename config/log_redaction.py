"""No log line holds a key that opens an account: such path segments are written as `[redacted]`.

Three links in Coffer's mails carry their key in the path: an invitation
(`/invitations/<key>/`), a password reset (`/accounts/password/reset/key/<uid>-<key>/`) and an
email confirmation (`/accounts/confirm-email/<key>/`). Each view moves the browser on to a URL
without the key, but the first request is still logged, and a mistyped or truncated link may
end in a 404 that Django logs with its path. `redact()` replaces the segment after each of those
prefixes, wherever it appears in a text (a path, a request line, a referrer, a message), except
the pages of the same flows that hold no key (`/invitations/accept/`,
`.../reset/key/done/`, `.../reset/key/<uid>-set-password/`).

Used by `RedactSecretPaths`, a filter on every handler of Django's LOGGING (plain and JSON), and
by gunicorn's `logger_class` (config/gunicorn_logging.py), which redacts every field of an
access-log line before either access-log format writes it. tests/test_log_redaction.py
checks that every URL of the URLconf with a key is covered.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from django.utils.log import AdminEmailHandler

REDACTED = "[redacted]"

_SECRET_SEGMENT = re.compile(
    r"(?P<prefix>"
    r"/invitations/+(?!accept/)"
    r"|/accounts/password/reset/key/+(?!done/|[0-9A-Za-z]+-set-password/)"
    r"|/accounts/confirm-email/+"
    r")[^/\s?#\"']+"
)


def redact(text: str) -> str:
    """`text` with the key segment of every secret-bearing path in it replaced."""
    if "/invitations/" not in text and "/accounts/" not in text:
        return text  # the common case, without running the expression
    return _SECRET_SEGMENT.sub(rf"\g<prefix>{REDACTED}", text)


class RedactSecretPaths(logging.Filter):
    """A handler filter: a record whose message names a secret path gets the redacted message
    (formatted once here; its arguments are dropped so no formatter can put them back)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, dict):
            return True  # named arguments (gunicorn's access log) are redacted where they are made
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True  # a broken record: the handler reports it as usual
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class RedactingAdminEmailHandler(AdminEmailHandler):
    """Django's error mail to ADMINS, with every secret path redacted in its subject and in both
    bodies: the report repeats the request's path, its full URL and its META (PATH_INFO,
    REQUEST_URI, HTTP_REFERER), which the record's message filter cannot reach."""

    def send_mail(self, subject: Any, message: Any, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("html_message"):
            kwargs["html_message"] = redact(str(kwargs["html_message"]))
        super().send_mail(redact(str(subject)), redact(str(message)), *args, **kwargs)
