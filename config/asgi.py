"""ASGI entry point.

Like config/wsgi.py, loads the master key ring at start-up so a server without a configured key
(DEBUG off) refuses to start with a message saying how to make one.
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Served through this module is served under ASGI, however gunicorn was told: the settings and
# the URLs (the change feed's waiting view, api/urls.py) follow COFFER_WEB_SERVER.
os.environ["COFFER_WEB_SERVER"] = "asgi"

application = get_asgi_application()

from keys.checks import load_key_ring_at_startup  # noqa: E402  (needs the settings)

load_key_ring_at_startup()
