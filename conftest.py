"""Test-run environment, set before Django's settings are read."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("COFFER_DEBUG", "false")
os.environ.setdefault("COFFER_SECRET_KEY", "test-secret-key-not-for-production-" + "x" * 20)
# A fixed master key for tests only (32 bytes, base64). Never used outside tests.
os.environ.setdefault("COFFER_MASTER_KEYS", "test1:dGVzdC1tYXN0ZXIta2V5LW9ubHktZm9yLXRlc3RzISE=")
os.environ.setdefault("COFFER_HTTPS", "false")
os.environ.setdefault("COFFER_MANIFEST_STATIC", "false")
os.environ.setdefault("COFFER_ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
# A connection per request, as before production kept them (tests that start servers choose their
# own; tests/test_settings.py checks the production default).
os.environ.setdefault("COFFER_DB_CONN_MAX_AGE", "0")
# Usage folded after every read (production: at most once a second per process), so a test can
# read exact counts right after a read; tests/test_usage_rollup.py runs the production interval.
os.environ.setdefault("COFFER_USAGE_ROLLUP_SECONDS", "0")
if "COFFER_DATA_DIR" not in os.environ:
    os.environ["COFFER_DATA_DIR"] = tempfile.mkdtemp(prefix="coffer-test-")
    atexit.register(shutil.rmtree, os.environ["COFFER_DATA_DIR"], ignore_errors=True)
os.makedirs(os.path.join(os.environ["COFFER_DATA_DIR"], "staticfiles"), exist_ok=True)
# Playwright's sync API runs an event loop in the test thread; the ORM calls are still sync.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Test runs side by side on one Redis (a developer's and CI's) keep their counters apart.
os.environ.setdefault("COFFER_RATELIMIT_REDIS_PREFIX", f"coffer-test-{os.getpid()}")

# pytest-django sets Django up from its own early hook, before this file is read, when the
# settings module is named in pytest's configuration; naming it here instead lets the defaults
# above apply first. pytest-django finishes the set-up (and blocks database access) afterwards.
import django  # noqa: E402

django.setup()
