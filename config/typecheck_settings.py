"""Settings for the type checker only (django-stubs imports them to learn the models).

The real settings refuse to load without COFFER_SECRET_KEY when DEBUG is off. mypy serves no
request, so a random key for this one run is enough; the data directory goes inside mypy's own
cache so a type check never touches ./data.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

os.environ.setdefault("COFFER_SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault(
    "COFFER_DATA_DIR", str(Path(__file__).resolve().parent.parent / ".mypy_cache" / "data")
)

from config.settings import *  # noqa: E402, F403
