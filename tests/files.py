"""Reading the live SQLite database files from a test without breaking SQLite's locks."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path


def read_from_another_process(paths: Iterable[Path]) -> dict[Path, bytes]:
    """Each file's bytes, read by a child process.

    Opening and closing a database file in this process (Path.read_bytes) silently drops every
    POSIX lock the process holds on it, including the locks of SQLite connections still open in
    other threads (the live server's). Another process closing its connection then believes it
    is the last one, deletes the WAL and shared-memory files, and this process's connections fail
    with "disk I/O error". A child process has its own locks, so reading there is harmless.
    """
    contents = {}
    for path in paths:
        result = subprocess.run(["cat", str(path)], capture_output=True, check=True)
        contents[path] = result.stdout
    return contents
