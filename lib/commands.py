"""What every management command shares: the usage-error exit status."""

from __future__ import annotations

from django.core.management.base import CommandError

from lib.text import printable

USAGE = 2


def usage_error(message: str) -> CommandError:
    """A CommandError for exit status 2; anything the user typed in it is shown escaped."""
    return CommandError(printable(message), returncode=USAGE)
