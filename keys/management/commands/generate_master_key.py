"""`python manage.py generate_master_key`: print a new master key entry for the key ring.

Runs without any configured key (it skips the system checks), so it can make the first one.
Exit codes: 0 printed a key; 1 (CommandError) the id given is unusable.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from keys import crypto


class Command(BaseCommand):
    help = (
        "Print a new random 256-bit master key as one `id:base64` key ring entry (stdout), "
        "and how to use it (stderr)."
    )
    requires_system_checks = []  # must run when no master key exists yet

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--id",
            dest="kek_id",
            help="The key's id (1-32 letters, digits, '_', '-' or '.'); default k<UTC time>.",
        )

    def handle(self, *args, kek_id: str | None = None, **options) -> None:
        kek_id = kek_id or f"k{timezone.now():%Y%m%d%H%M%S}"
        if not crypto.KEK_ID_RE.match(kek_id):
            raise CommandError(
                f"{kek_id!r} cannot be a master key id: use 1-32 letters, digits, '_', '-' or '.'."
            )
        existing = self._existing_ids()
        if kek_id in existing:
            raise CommandError(f"The key ring already has a master key with id {kek_id!r}.")
        self.stdout.write(f"{kek_id}:{crypto.generate_master_key()}")
        self.stderr.write(self._how_to_use(kek_id, existing))

    def _existing_ids(self) -> list[str]:
        """The ids in the configured key ring, without making a development key file."""
        configured = (
            settings.COFFER_MASTER_KEYS.strip() or Path(settings.COFFER_MASTER_KEY_FILE).exists()
        )
        if not configured:
            return []
        try:
            return crypto.key_ring().ids
        except crypto.MasterKeyError:
            return []

    def _how_to_use(self, kek_id: str, existing: list[str]) -> str:
        if not existing:
            return (
                "\nThat line is a new master key. Keep it secret and back it up: without it, "
                "every stored value is lost.\n"
                f'Set it in the environment, COFFER_MASTER_KEYS="{kek_id}:<the key>", or put the '
                "line in the key file (COFFER_MASTER_KEY_FILE, mode 0600)."
            )
        ring = ",".join([f"{kek_id}:<new key>", *(f"{old}:<unchanged>" for old in existing)])
        return (
            "\nThat line is a new master key. Keep it secret and back it up.\n"
            "To rotate to it, put it FIRST in the key ring (the first key is the active one) "
            f'and keep the old keys after it:\n  COFFER_MASTER_KEYS="{ring}"\n'
            "then restart Coffer and run `python manage.py rotate_master_key`. It says when an "
            "old key is no longer used and can be removed."
        )
