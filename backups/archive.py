"""The backup file and the snapshots inside it.

A Coffer backup is a plain (uncompressed) tar archive with two members, so `tar` alone can open
it during an incident:

- `manifest.json`: when and by which Coffer it was made, the database vendor, the applied
  migrations, the master key ids whose keys are needed to read it (those of the data keys and
  those two-factor secrets are sealed under), the number of workspaces, data keys and of each
  sealed thing in the snapshot (keys/sealed.py), and the size and SHA-256 of the database
  member;
- `database.sqlite3` (SQLite's online backup API: a consistent copy of the live database,
  its WAL included, taken while the app keeps serving) or `database.pgdump` (`pg_dump
  --format=custom` of an exported snapshot, the one the manifest's counts were read from).

Values stay encrypted (the database holds only ciphertexts and wrapped data keys); master keys
are never in a backup.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shlex
import shutil
import sqlite3
import subprocess
import tarfile
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.db import connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

FORMAT = "coffer-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MEMBERS = {"sqlite": "database.sqlite3", "postgresql": "database.pgdump"}
MANIFEST_MAX_BYTES = 1024 * 1024
COPY_CHUNK = 1024 * 1024


class BackupError(Exception):
    """A backup could not be made or read. The message is safe to show (no value, no key)."""


def coffer_version() -> str:
    with open(Path(settings.BASE_DIR) / "pyproject.toml", "rb") as handle:
        return str(tomllib.load(handle)["project"]["version"])


# --- what a snapshot holds -------------------------------------------------------------------


SNAPSHOT_ALIAS = "coffer_backup_snapshot"


def snapshot_facts(using: str) -> dict[str, Any]:
    """The manifest's description of the database `using` (a connection alias on the snapshot):
    how many of each sealed thing it holds and the master keys they need (keys/sealed.py,
    the list verify_backup checks), and its applied migrations."""
    from keys.sealed import inventory
    from tokens.models import Token
    from workspaces.models import Workspace

    found = inventory(using)
    counts = {
        "workspaces": Workspace.objects.using(using).count(),
        **found.counts,
        "tokens": Token.objects.using(using).count(),  # manifest version 1's name
    }
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT app, name FROM django_migrations ORDER BY app, name")
        rows = cursor.fetchall()
    migrations: dict[str, list[str]] = {}
    for app, name in rows:
        migrations.setdefault(app, []).append(name)
    return {
        "counts": counts,
        "master_key_ids": found.master_key_ids,
        "migrations": migrations,
    }


def sqlite_settings(default: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """Connection settings for the SQLite file at `path`, beside the configured database."""
    return {
        **default,
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(path),
        "HOST": "",
        "PORT": "",
        "USER": "",
        "PASSWORD": "",
        "OPTIONS": {},
        "CONN_MAX_AGE": 0,
    }


def snapshot_sqlite(connection: BaseDatabaseWrapper, destination: Path) -> dict[str, Any]:
    """Copy the live SQLite database into `destination` with the online backup API, in one
    step (a consistent read of the database as it was when the step began, WAL included;
    writers go on meanwhile), and describe the copy."""
    from backups.verify import database_alias

    connection.ensure_connection()
    source = connection.connection
    target = sqlite3.connect(destination)
    try:
        source.backup(target)  # all pages in one step: one consistent snapshot
        # One self-contained file: no -wal beside it to lose on the way.
        target.execute("PRAGMA journal_mode=DELETE")
        if target.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            raise BackupError("The snapshot fails SQLite's integrity check; nothing was written.")
    finally:
        target.close()
    with database_alias(
        SNAPSHOT_ALIAS, sqlite_settings(connection.settings_dict, destination)
    ) as alias:
        return snapshot_facts(alias)


# --- PostgreSQL: the client tools and their connection -------------------------------------

_LIBPQ_OPTIONS = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "connect_timeout": "PGCONNECT_TIMEOUT",
}


def libpq_environment(settings_dict: Mapping[str, Any], database: str) -> dict[str, str]:
    """What pg_dump / pg_restore need to reach `database` on the configured server, as
    libpq environment variables (the password never appears in a process listing)."""
    env = dict(os.environ)
    for variable, key in (("PGHOST", "HOST"), ("PGPORT", "PORT"), ("PGUSER", "USER")):
        if settings_dict.get(key):
            env[variable] = str(settings_dict[key])
    if settings_dict.get("PASSWORD"):
        env["PGPASSWORD"] = str(settings_dict["PASSWORD"])
    for option, variable in _LIBPQ_OPTIONS.items():
        if option in (settings_dict.get("OPTIONS") or {}):
            env[variable] = str(settings_dict["OPTIONS"][option])
    env["PGDATABASE"] = database
    return env


def psycopg_arguments(settings_dict: Mapping[str, Any], database: str) -> dict[str, Any]:
    arguments: dict[str, Any] = {"dbname": database}
    for argument, key in (("host", "HOST"), ("port", "PORT"), ("user", "USER")):
        if settings_dict.get(key):
            arguments[argument] = settings_dict[key]
    if settings_dict.get("PASSWORD"):
        arguments["password"] = settings_dict["PASSWORD"]
    for option in _LIBPQ_OPTIONS:
        if option in (settings_dict.get("OPTIONS") or {}):
            arguments[option] = settings_dict["OPTIONS"][option]
    return arguments


def client_tool(name: str, example: list[str]) -> str:
    """The path of a PostgreSQL client tool, or a BackupError saying how to get it and exactly
    which command to run instead."""
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"{name} is not installed (Debian: apt-get install postgresql-client, of the "
            f"server's major version or newer). Run it by hand instead: {shlex.join(example)}"
        )
    return found


def run_tool(command: list[str], env: dict[str, str], what: str) -> None:
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        message = result.stderr.strip() or f"exit status {result.returncode}"
        raise BackupError(f"{what} failed: {message}")


def snapshot_postgresql(settings_dict: Mapping[str, Any], destination: Path) -> dict[str, Any]:
    """`pg_dump --format=custom` into `destination`, of a snapshot exported by a repeatable-read
    transaction that also reads the manifest's facts: the counts describe exactly the dump."""
    import psycopg

    database = str(settings_dict["NAME"])
    command = ["pg_dump", "--format=custom", f"--file={destination}"]
    pg_dump = client_tool("pg_dump", [*command[:2], "--file=coffer.pgdump", f"--dbname={database}"])
    env = libpq_environment(settings_dict, database)
    try:
        with psycopg.connect(**psycopg_arguments(settings_dict, database)) as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            with conn.cursor() as cursor:
                cursor.execute("SELECT pg_export_snapshot()")
                row = cursor.fetchone()
                assert row is not None
                facts = _facts_in_snapshot(settings_dict, row[0])
                # pg_dump reads the same snapshot while this transaction keeps it alive.
                run_tool([pg_dump, *command[1:], f"--snapshot={row[0]}"], env, "pg_dump")
            conn.rollback()
    except psycopg.Error as error:
        raise BackupError(f"PostgreSQL: {str(error).strip()}") from None
    return facts


def _facts_in_snapshot(settings_dict: Mapping[str, Any], snapshot: str) -> dict[str, Any]:
    """`snapshot_facts` read through a second connection that imports the exported snapshot:
    exactly what pg_dump writes."""
    import psycopg

    from backups.verify import database_alias

    options = {
        **(settings_dict.get("OPTIONS") or {}),
        "isolation_level": psycopg.IsolationLevel.REPEATABLE_READ,
    }
    snapshot_settings = {**settings_dict, "OPTIONS": options, "CONN_MAX_AGE": 0}
    with database_alias(SNAPSHOT_ALIAS, snapshot_settings) as alias, transaction.atomic(alias):
        with connections[alias].cursor() as cursor:
            cursor.execute("SET TRANSACTION SNAPSHOT %s", [snapshot])  # before any query
        return snapshot_facts(alias)


# --- writing and reading the archive ---------------------------------------------------------


def manifest_for(vendor: str, facts: dict[str, Any], database: Path) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "coffer_version": coffer_version(),
        "database": vendor,
        "database_member": MEMBERS[vendor],
        "database_sha256": sha256_of(database),
        "database_bytes": database.stat().st_size,
        **facts,
    }


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(COPY_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_archive(stream: IO[bytes], manifest: dict[str, Any], database: Path) -> None:
    encoded = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
    with tarfile.open(fileobj=stream, mode="w", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mode, info.mtime = len(encoded), 0o600, int(dt.datetime.now().timestamp())
        archive.addfile(info, _BytesReader(encoded))
        info = archive.gettarinfo(str(database), arcname=manifest["database_member"])
        info.mode, info.uid, info.gid, info.uname, info.gname = 0o600, 0, 0, "", ""
        with open(database, "rb") as handle:
            archive.addfile(info, handle)


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self.data, self.position = data, 0

    def read(self, size: int = -1) -> bytes:
        end = len(self.data) if size < 0 else self.position + size
        chunk, self.position = self.data[self.position : end], min(end, len(self.data))
        return chunk


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of the backup at `path`; a BackupError saying what is wrong with it."""
    with _open_archive(path) as archive:
        member = _regular_member(archive, MANIFEST, path)
        if member.size > MANIFEST_MAX_BYTES:
            raise BackupError(f"{path}: its manifest is {member.size:,} bytes; not a backup.")
        stream = archive.extractfile(member)
        assert stream is not None
        try:
            manifest = json.loads(stream.read())
        except ValueError:
            raise BackupError(f"{path}: its manifest is not JSON.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{path} is not a Coffer backup (its manifest says otherwise).")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError(
            f"{path} is a version {manifest.get('format_version')!r} Coffer backup; this "
            f"Coffer reads version {FORMAT_VERSION}. Verify it with the Coffer that made it."
        )
    if manifest.get("database") not in MEMBERS:
        raise BackupError(f"{path}: unknown database {manifest.get('database')!r}.")
    return manifest


def check_archive(path: Path, manifest: dict[str, Any]) -> None:
    """The archive holds exactly what its manifest describes (the manifest and the one
    database member it names, of the size it gives), or a BackupError saying what differs:
    checked before anything is extracted or restored. (The member's SHA-256 is checked as it
    is extracted.)"""
    name = MEMBERS[manifest["database"]]
    if manifest.get("database_member") != name:
        raise BackupError(
            f"{path}: its manifest names the member {manifest.get('database_member')!r}; a "
            f"{manifest['database']} backup holds {name}. Nothing was restored."
        )
    with _open_archive(path) as archive:
        names = archive.getnames()
        member = _regular_member(archive, name, path)
    if sorted(names) != sorted([MANIFEST, name]):
        raise BackupError(
            f"{path}: the archive holds {', '.join(names)}; its manifest describes only "
            f"{MANIFEST} and {name}. Nothing was restored."
        )
    if member.size != manifest.get("database_bytes"):
        raise BackupError(
            f"{path}: {name} is {member.size:,} bytes; its manifest says "
            f"{manifest.get('database_bytes')!r}. Nothing was restored."
        )


@contextmanager
def extracted_database(path: Path, manifest: dict[str, Any], folder: Path) -> Iterator[Path]:
    """The backup's database member written into `folder` (mode 0600), its SHA-256 checked
    against the manifest's. Only that one member is read: nothing else in the archive (a link,
    a path outside the folder) is ever written."""
    name = MEMBERS[manifest["database"]]
    target = folder / name
    digest = hashlib.sha256()
    with _open_archive(path) as archive:
        stream = archive.extractfile(_regular_member(archive, name, path))
        assert stream is not None
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            while chunk := stream.read(COPY_CHUNK):
                digest.update(chunk)
                handle.write(chunk)
    if digest.hexdigest() != manifest.get("database_sha256"):
        raise BackupError(
            f"{path}: {name} does not match the SHA-256 in its manifest: the file was damaged "
            "or altered after it was made."
        )
    try:
        yield target
    finally:
        target.unlink(missing_ok=True)


@contextmanager
def _open_archive(path: Path) -> Iterator[tarfile.TarFile]:
    try:
        with tarfile.open(path, mode="r:") as archive:
            yield archive
    except FileNotFoundError:
        raise BackupError(f"{path} does not exist.") from None
    except IsADirectoryError:
        raise BackupError(f"{path} is a directory, not a backup file.") from None
    except PermissionError:
        raise BackupError(f"Cannot read {path}: permission denied.") from None
    except (tarfile.TarError, EOFError):
        raise BackupError(
            f"{path} is not a Coffer backup (not a tar archive), or it is truncated."
        ) from None


def _regular_member(archive: tarfile.TarFile, name: str, path: Path) -> tarfile.TarInfo:
    try:
        member = archive.getmember(name)
    except KeyError:
        raise BackupError(f"{path} is not a Coffer backup: it holds no {name}.") from None
    if not member.isreg():
        raise BackupError(f"{path}: {name} is not a regular file in the archive.")
    return member
