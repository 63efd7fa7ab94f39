"""coffer: the Coffer client. Runs a command with its secrets, renders templates, survives an
outage with an encrypted fallback. Standard library plus `cryptography`."""

from __future__ import annotations

__version__ = "0.1.0"
