"""The SQLite database files are readable by Coffer's own user only (mode 0600).

SQLite creates the database file on the first connection, and its -wal, -shm and -journal
files with the database file's mode, all under the process umask (usually 0644). Each new
connection tightens whichever of them exist, so a file made by any command (migrate, the
server, the test runner) ends up 0600; the data directory is 0700 meanwhile (config/settings.py).
"""

from __future__ import annotations

import contextlib
import os

from django.db.backends.signals import connection_created
from django.dispatch import receiver

SUFFIXES = ("", "-wal", "-shm", "-journal")


@receiver(connection_created)
def keep_sqlite_files_private(sender, connection, **kwargs) -> None:
    if connection.vendor != "sqlite":
        return
    name = str(connection.settings_dict["NAME"])
    if connection.is_in_memory_db() or not name:
        return
    for suffix in SUFFIXES:
        # Missing (no WAL yet) or not ours to change (another user's command): nothing to do.
        with contextlib.suppress(OSError):
            os.chmod(name + suffix, 0o600)
