"""`manage.py verify_backup FILE | --live`: will every value come back with the keys on hand?"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor

from backups.archive import (
    BackupError,
    check_archive,
    client_tool,
    extracted_database,
    libpq_environment,
    psycopg_arguments,
    read_manifest,
    run_tool,
    sqlite_settings,
)
from backups.verify import Report, check_database, database_alias
from keys import crypto
from keys.sealed import SOURCES
from lib.commands import usage_error
from lib.text import printable

FAILED = 1
ALIAS = "coffer_backup_check"

HELP = """\
Check that a backup made by `manage.py backup` can be restored and read with the master keys on
hand. The archive must hold exactly what its manifest describes (its database member, of the
size and SHA-256 given) before anything is restored; then it is restored into a throwaway
database (a temporary SQLite file, or a temporary PostgreSQL database on the configured server,
created and dropped), every workspace data key must unwrap and every sealed thing decrypt and
authenticate: token values and versions, pending imports, two-factor secrets (TOTP keys and
recovery-code seeds, sealed straight under a master key) and webhook signing secrets. The
restored database must hold what the manifest counts and need exactly the master keys it
lists. Prints counts and names each failure (token, workspace, user, master key id), never a
value. --live checks the configured database itself (after a restore, or at any time).

exit status: 0 everything can be read; 1 something cannot (each failure is listed), or the
restore failed; 2 bad arguments, or FILE is missing or not a Coffer backup.
"""


class Command(BaseCommand):
    help = HELP
    requires_system_checks = []  # it reports key problems itself, naming each one

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", nargs="?", metavar="FILE", help="A backup file.")
        parser.add_argument(
            "--live", action="store_true", help="Check the configured database instead."
        )

    def handle(self, *args, **options) -> None:
        if options["live"] == (options["file"] is not None):
            raise usage_error("Name a backup FILE, or give --live (not both).")
        try:
            crypto.key_ring()
        except crypto.MasterKeyError as error:
            raise CommandError(f"No usable master key ring: {error}", returncode=FAILED) from None
        try:
            if options["live"]:
                self.verify_live()
            else:
                self.verify_file(Path(options["file"]))
        except DatabaseError as error:
            raise CommandError(printable(f"Database error: {error}"), returncode=FAILED) from None

    # --- the live database ---------------------------------------------------------------

    def verify_live(self) -> None:
        database = connections[DEFAULT_DB_ALIAS]
        self.stdout.write(f"Live database ({database.vendor}, {database.settings_dict['NAME']}):")
        problems = migration_problems(DEFAULT_DB_ALIAS, live=True)
        report = check_database(DEFAULT_DB_ALIAS)
        report.failures[:0] = problems
        self.finish(report, "in the live database")

    # --- a backup file -------------------------------------------------------------------

    def verify_file(self, path: Path) -> None:
        try:
            manifest = read_manifest(path)
        except BackupError as error:
            raise usage_error(str(error)) from None
        counts = manifest.get("counts", {})
        self.stdout.write(
            printable(
                f"Backup {path}: made {manifest.get('created_at')} by Coffer "
                f"{manifest.get('coffer_version')} ({manifest['database']}), "
                f"{counts.get('workspaces')} workspaces, {counts.get('tokens')} tokens."
            )
        )
        ring = crypto.key_ring()
        needed = [str(kek_id) for kek_id in manifest.get("master_key_ids", [])]
        self.stdout.write(
            "Master keys needed: "
            + (
                ", ".join(
                    f"{kek_id} ({'in the key ring' if kek_id in ring.keys else 'MISSING'})"
                    for kek_id in needed
                )
                or "none"
            )
            + "."
        )
        try:
            check_archive(path, manifest)
            with restored(path, manifest) as alias:
                self.stdout.write("Restored into a throwaway database.")
                problems = migration_problems(alias, live=False)
                if problems == ["migrate"]:
                    self.stdout.write(
                        "Its schema is older than this Coffer's: migrating the throwaway copy "
                        "first, as `migrate` will after a restore."
                    )
                    executor = MigrationExecutor(connections[alias])
                    executor.migrate(executor.loader.graph.leaf_nodes())
                    problems = []
                report = check_database(alias)
        except BackupError as error:
            raise CommandError(printable(str(error)), returncode=FAILED) from None
        report.failures[:0] = problems + manifest_mismatches(manifest, report)
        self.finish(report, "in this backup")

    # --- the report ----------------------------------------------------------------------

    def finish(self, report: Report, where: str) -> None:
        self.stdout.write(
            f"Data keys: {report.data_keys.checked} checked, "
            f"{report.data_keys.checked - report.data_keys.failed} unwrap "
            f"({report.workspaces} workspaces; master keys in use: "
            f"{', '.join(report.master_key_ids) or 'none'})."
        )
        for name, tally in report.sources.items():
            self.stdout.write(
                f"{name.capitalize()}: {tally.checked} checked, "
                f"{tally.checked - tally.failed} decrypt and authenticate."
            )
        for failure in report.failures:
            self.stderr.write(printable(f"FAILED: {failure}"), style_func=str)
        if report.failures:
            count = len(report.failures)
            raise CommandError(
                f"{count} problem{'s' if count != 1 else ''}: with the master keys on hand, not "
                f"every value {where} can be read.",
                returncode=FAILED,
            )
        self.stdout.write(
            f"OK: with the master keys on hand, every value {where} can be read.",
            style_func=self.style.SUCCESS,
        )


def manifest_mismatches(manifest: dict[str, Any], report: Report) -> list[str]:
    """What the manifest says the backup holds and the restored database does not: a count of
    any sealed thing, or the master keys it needs (a manifest from before a count was added
    simply does not have it)."""
    counts = manifest.get("counts", {})
    found = {
        "workspaces": report.workspaces,
        "data_keys": report.data_keys.checked,
        "tokens": report.count("token values"),
        **{source.manifest_name: report.count(source.name) for source in SOURCES},
    }
    problems = [
        f"the manifest counts {counts[name]} {name.replace('_', ' ')}, the restored "
        f"database holds {number}."
        for name, number in found.items()
        if name in counts and counts[name] != number
    ]
    listed = sorted(str(kek_id) for kek_id in manifest.get("master_key_ids", []))
    if listed != report.master_key_ids:
        problems.append(
            f"the manifest lists master keys {', '.join(listed) or 'none'}; the restored "
            f"database needs {', '.join(report.master_key_ids) or 'none'}."
        )
    return problems


def migration_problems(alias: str, *, live: bool) -> list[str]:
    """[] when the database's schema is this code's; ["migrate"] when a backup only needs
    migrating; otherwise the problems in words."""
    executor = MigrationExecutor(connections[alias])
    unknown = sorted(set(executor.loader.applied_migrations) - set(executor.loader.disk_migrations))
    if unknown:
        names = ", ".join(f"{app}.{name}" for app, name in unknown[:5])
        return [
            f"the database was migrated by a newer Coffer (migrations this one does not know: "
            f"{names}); check it with that version."
        ]
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        if live:
            return ["the database is not fully migrated: run `manage.py migrate`, then check."]
        return ["migrate"]
    return []


@contextmanager
def restored(path: Path, manifest: dict[str, Any]) -> Iterator[str]:
    """The backup restored into a throwaway database, as a connection alias."""
    default = connections[DEFAULT_DB_ALIAS].settings_dict
    with (
        tempfile.TemporaryDirectory(prefix="coffer-verify-") as folder,
        extracted_database(path, manifest, Path(folder)) as database,
    ):
        if manifest["database"] == "sqlite":
            with database_alias(ALIAS, sqlite_settings(default, database)) as alias:
                yield alias
            return
        if connections[DEFAULT_DB_ALIAS].vendor != "postgresql":
            raise BackupError(
                "A PostgreSQL backup is checked on a PostgreSQL server: set DATABASE_URL to one "
                "(a temporary database is created there, and dropped)."
            )
        with temporary_postgresql_database(default) as name:
            options = ["--no-owner", "--no-privileges", "--exit-on-error", f"--dbname={name}"]
            pg_restore = client_tool("pg_restore", ["pg_restore", *options, str(database)])
            run_tool(
                [pg_restore, *options, str(database)],
                libpq_environment(default, name),
                "pg_restore",
            )
            with database_alias(ALIAS, {**default, "NAME": name, "CONN_MAX_AGE": 0}) as alias:
                yield alias


@contextmanager
def temporary_postgresql_database(default: dict[str, Any]) -> Iterator[str]:
    import psycopg

    name = f"{str(default['NAME'])[:40]}_verify_{secrets.token_hex(4)}"
    arguments = psycopg_arguments(default, str(default["NAME"]))
    try:
        with psycopg.connect(**arguments, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    except psycopg.Error as error:
        raise BackupError(
            f"Cannot create the temporary database {name} (the database user needs CREATEDB): "
            f"{str(error).strip()}"
        ) from None
    try:
        yield name
    finally:
        with psycopg.connect(**arguments, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
