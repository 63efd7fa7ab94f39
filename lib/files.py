"""Files written whole or not at all, for commands that take `--output FILE`."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

from django.core.management.base import CommandError

from lib.commands import usage_error

# Exit status when the output could not be written (`resolve`: unresolved; `backup`: failed).
NOT_WRITTEN = 1


def _kind(mode: int) -> str | None:
    """What a non-regular file is, in words; None for a regular file."""
    for test, name in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) else "not a regular file"


class AtomicFile:
    """A file written whole or not at all: a 0600 temporary file beside it, then a rename.

    Only a new path or an existing regular file may be written: a rename replaces whatever the
    path names, so a device, FIFO, socket, symbolic link or directory is refused (exit 2), and
    the path is looked at again (without following links) right before the rename. A new path
    is linked into place, which never replaces anything that appeared in the meantime.

    The temporary file is made up front, so an unwritable destination is reported (exit 2)
    before anything is resolved, audited or marked used.
    """

    def __init__(self, path: str) -> None:
        if not path.strip():
            raise usage_error("--output must name a file (it is empty).")
        self.path = Path(path)
        self._inspect()
        parent = self.path.parent
        try:
            parent_is_dir = stat.S_ISDIR(os.stat(parent).st_mode)
        except OSError:
            parent_is_dir = False
        if not parent_is_dir:
            raise usage_error(f"Cannot write --output {path}: its folder {parent} does not exist.")
        try:
            fd, temporary = tempfile.mkstemp(
                dir=parent, prefix=f".{self.path.name}.", suffix=".tmp"
            )
        except OSError as error:
            raise usage_error(f"Cannot write --output {path}: {error.strerror}.") from None
        self.temporary: Path | None = Path(temporary)
        self.handle = os.fdopen(fd, "wb")
        os.fchmod(fd, 0o600)

    def _inspect(self) -> os.stat_result | None:
        """The path's own status (links not followed), None when it does not exist; a usage
        error when it is anything but a regular file."""
        try:
            status = os.lstat(self.path)
        except FileNotFoundError:
            return None
        except OSError as error:
            raise usage_error(f"Cannot write --output {self.path}: {error.strerror}.") from None
        if kind := _kind(status.st_mode):
            raise usage_error(
                f"--output {self.path} is {kind}; only a new path or a regular file is written."
            )
        return status

    def write(self, data: bytes) -> None:
        try:
            self.handle.write(data)
        except OSError as error:
            raise self._unwritable(error) from None

    def commit(self, data: bytes = b"") -> None:
        try:
            self.handle.write(data)
            self.handle.flush()
            os.fsync(self.handle.fileno())
            self.handle.close()
            self._put_in_place()
        except OSError as error:
            raise self._unwritable(error) from None
        self.temporary = None

    def _put_in_place(self) -> None:
        temporary = self.temporary
        assert temporary is not None, "committed twice"
        current = self._inspect()  # again: the path may have changed since the start
        if current is None:
            try:
                os.link(temporary, self.path)  # never replaces an entry that appeared
            except FileExistsError:
                current = self._inspect()
            except OSError as error:
                if error.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV):
                    raise
                os.replace(temporary, self.path)  # no hard links on this file system
                return
            else:
                temporary.unlink()
                return
        os.replace(temporary, self.path)

    def _unwritable(self, error: OSError) -> CommandError:
        return CommandError(
            f"Cannot write --output {self.path}: {error.strerror}; it was left unchanged.",
            returncode=NOT_WRITTEN,
        )

    def discard(self) -> None:
        """Remove the temporary file unless it was committed (safe to call twice)."""
        if not self.handle.closed:
            self.handle.close()
        if self.temporary is not None:
            self.temporary.unlink(missing_ok=True)
            self.temporary = None
