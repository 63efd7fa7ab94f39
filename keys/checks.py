"""System checks: the master key ring must load, and read the database's data keys, before
Coffer runs anything that needs it.

Every manage.py command that runs system checks (migrate, runserver, check, ...) stops with
coffer.E001 when the key ring is missing or malformed, and coffer.E002 when a master key id in
use in the database is missing from the ring or is not the key that wrapped its data keys or
sealed its two-factor secrets (one data key per id is unwrapped, and one item per id of each
kind sealed straight under a master key, from keys/sealed.py, is opened).
`generate_master_key` skips the checks so it can run to make the first key.
`config/wsgi.py` and `config/asgi.py` run both at start-up for the web server.
"""

from __future__ import annotations

import stat
import sys
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings
from django.core.checks import Error, Warning, register
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction

from keys import crypto
from keys.models import WorkspaceKey
from keys.sealed import Sealed, Source, master_key_sources


def master_key_problems() -> list[str]:
    """Open one thing per master key id in use, for each kind sealed under master keys: one
    data key per id (the items sealed under data keys follow their data key), and one item per
    id of each source sealed straight under a master key (keys/sealed.py: two-factor
    secrets). A message per id the ring cannot read.

    A database without the tables yet (before `migrate`) or out of reach has nothing to check.
    """
    problems = []
    try:
        with transaction.atomic():
            samples = list(WorkspaceKey.one_per_master_key())
            by_master_key = {
                (source.name, item.master_key_id): item
                for source in master_key_sources()
                for item in reversed(list(_one_per_master_key(source)))
                if item.master_key_id  # one in no known form names no key: verify_backup says
            }
    except DatabaseError:
        return []
    for record in samples:
        try:
            record.unwrap(label=f"workspace {record.workspace.slug}")
        except crypto.CryptoError as error:
            problems.append(
                f"Master key {record.kek_id!r} does not match the database: {error} "
                f"Configure the master key {record.kek_id!r} that wrapped these data keys."
            )
    for (name, kek_id), item in by_master_key.items():
        try:
            item.open(label=item.what)
        except (crypto.CryptoError, crypto.MasterKeyError) as error:
            problems.append(
                f"Master key {kek_id!r} does not read the {name}: {error} Configure the "
                f"master key {kek_id!r} that sealed them, or those people cannot sign in."
            )
    return problems


def _one_per_master_key(source: Source) -> Iterable[Sealed]:
    return (source.one_per_master_key or source.items)(DEFAULT_DB_ALIAS)


def load_key_ring_at_startup() -> None:
    """Called by the WSGI and ASGI entry points: a server without a usable master key, or with
    one that does not read the database's data keys, refuses to start, saying why, instead of
    failing on the first token request."""
    try:
        crypto.key_ring()
        problems = master_key_problems()
        if problems:
            raise crypto.MasterKeyError(" ".join(problems))
    except crypto.MasterKeyError as error:
        sys.stderr.write(f"Coffer cannot start: {error}\n")
        raise
    finally:
        # The check's connection is not carried into requests, or across a preloading fork.
        connections.close_all()


@register()
def check_master_key_matches_database(app_configs=None, **kwargs) -> list:
    """coffer.E002: a master key id in use is missing from the ring or is the wrong key."""
    try:
        crypto.key_ring()
    except crypto.MasterKeyError:
        return []  # coffer.E001 says it
    return [
        Error(
            problem,
            hint="Set COFFER_MASTER_KEYS (or the key file) to the key ring the data was "
            "encrypted with; a new key under an old id cannot read it.",
            id="coffer.E002",
        )
        for problem in master_key_problems()
    ]


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
