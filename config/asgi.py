"""ASGI entry point.

Like config/wsgi.py, loads the master key ring at start-up so a server without a configured key
(DEBUG off) refuses to start with a message saying how to make one.
"""

from __future__ import annotations

import os
import sys

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_asgi_application()

from tokens import crypto  # noqa: E402  (needs the settings loaded above)

try:
    crypto.key_ring()
except crypto.MasterKeyError as error:
    sys.stderr.write(f"Coffer cannot start: {error}\n")
    raise
