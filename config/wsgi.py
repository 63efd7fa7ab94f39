"""WSGI entry point (gunicorn config.wsgi).

Loads the master key ring at start-up, so a server without a configured key (DEBUG off) refuses
to start with a message saying how to make one, instead of failing on the first token request.
"""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_wsgi_application()

from keys.checks import load_key_ring_at_startup  # noqa: E402  (needs the settings)

load_key_ring_at_startup()
