"""System checks: the master key ring must load before Coffer runs anything that needs it.

Every manage.py command that runs system checks (migrate, runserver, resolve, ...) stops with
coffer.E001 when the key ring is missing or malformed; `generate_master_key` skips the checks so
it can run to make the first key. `config/wsgi.py` loads the ring at start-up for the web server.
"""

from __future__ import annotations

import stat
from pathlib import Path

from django.conf import settings
from django.core.checks import Error, Warning, register

from tokens import crypto


@register()
def check_master_key(app_configs=None, **kwargs) -> list:
    """coffer.E001: no usable master key ring; coffer.W001: a key file others can read."""
    try:
        crypto.key_ring()
    except crypto.MasterKeyError as error:
        return [
            Error(
                str(error),
                hint="Run `python manage.py generate_master_key` and follow what it prints.",
                id="coffer.E001",
            )
        ]
    if settings.COFFER_MASTER_KEYS.strip():
        return []
    path = Path(settings.COFFER_MASTER_KEY_FILE)
    try:
        mode = path.stat().st_mode
    except OSError:
        return []
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return [
            Warning(
                f"The master key file {path} can be read by other users.",
                hint=f"chmod 600 {path}",
                id="coffer.W001",
            )
        ]
    return []
