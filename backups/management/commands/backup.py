"""`manage.py backup --output FILE`: a consistent snapshot of the database while Coffer serves."""

from __future__ import annotations

import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, connection

from backups.archive import (
    BackupError,
    manifest_for,
    snapshot_postgresql,
    snapshot_sqlite,
    write_archive,
)
from lib.commands import usage_error
from lib.files import AtomicFile

FAILED = 1

HELP = """\
Write a backup of Coffer's database to FILE while the app keeps serving: on SQLite a copy made
with SQLite's online backup API (WAL included), on PostgreSQL `pg_dump --format=custom` of a
consistent snapshot. FILE is a tar archive with manifest.json (time, Coffer version, migrations,
the master key ids needed, counts) and the database; it is written atomically with mode 0600,
only to a new path or over a regular file. Values stay encrypted; master keys are never in it:
back them up apart. Check a backup with `manage.py verify_backup FILE`.

exit status: 0 written; 1 the snapshot failed (database, pg_dump), nothing written;
2 bad arguments or an --output that is empty, in a missing folder or not a regular file.
"""


class Command(BaseCommand):
    help = HELP
    # A backup needs no master key: an emergency backup must not wait for a key problem.
    requires_system_checks = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--output", required=True, metavar="FILE", help="Where to write the backup."
        )

    def handle(self, *args, **options) -> None:
        output = AtomicFile(options["output"])
        try:
            manifest = self.write(output)
        finally:
            output.discard()
        counts = manifest["counts"]
        ids = ", ".join(manifest["master_key_ids"]) or "none (no data keys yet)"
        self.stdout.write(
            f"Backup written to {output.path} ({output.path.stat().st_size:,} bytes, "
            f"{manifest['database']}): {counts['workspaces']} workspaces, {counts['tokens']} "
            f"tokens. Master keys needed to read it: {ids}. Keep them apart from the backup; "
            f"check it with `manage.py verify_backup {output.path}`."
        )

    def write(self, output: AtomicFile) -> dict:
        vendor = connection.vendor
        if vendor not in ("sqlite", "postgresql"):
            raise usage_error(f"backup supports SQLite and PostgreSQL, not {vendor}.")
        # The snapshot is made beside the output (same file system, Coffer's own folder).
        with tempfile.TemporaryDirectory(dir=output.path.parent, prefix=".coffer-backup-") as d:
            snapshot = Path(d) / "snapshot"
            try:
                if vendor == "sqlite":
                    facts = snapshot_sqlite(connection, snapshot)
                else:
                    facts = snapshot_postgresql(connection.settings_dict, snapshot)
            except BackupError as error:
                raise CommandError(f"{error} Nothing was written.", returncode=FAILED) from None
            except DatabaseError as error:
                raise CommandError(
                    f"Database error: {error}. Nothing was written.", returncode=FAILED
                ) from None
            manifest = manifest_for(vendor, facts, snapshot)
            try:
                write_archive(output.handle, manifest, snapshot)
            except OSError as error:
                raise output._unwritable(error) from None
            output.commit()
        return manifest
