"""config/asgi_worker.py: under COFFER_WEB_SERVER=asgi, uvicorn's access lines keep the rules of
gunicorn.conf.py's format: the path only (no query string), a mailed link's key redacted."""

from __future__ import annotations

import logging

from config.asgi_worker import PathOnlyAccessLine


def access_record(path: str) -> logging.LogRecord:
    """A record as uvicorn's HTTP protocol makes it for one request."""
    return logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("203.0.113.9:5000", "GET", path, "1.1", 200),
        None,
    )


def test_the_query_string_is_dropped():
    record = access_record("/api/v1/values?keys=DB_URL&source=deploy&wait=50")
    assert PathOnlyAccessLine().filter(record)
    assert record.getMessage() == '203.0.113.9:5000 - "GET /api/v1/values HTTP/1.1" 200'


def test_a_mailed_links_key_is_redacted():
    record = access_record("/invitations/s3cr3t-invitation-key/?next=/")
    PathOnlyAccessLine().filter(record)
    assert "s3cr3t-invitation-key" not in record.getMessage()
    assert "/invitations/[redacted]" in record.getMessage()


def test_other_records_pass_unchanged():
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, "plain", None, None)
    assert PathOnlyAccessLine().filter(record)
    assert record.getMessage() == "plain"
