"""What a stolen database holds: no token value, in any encoding, in any file or dump, and no
session row that grants access (a reset key, a confirmation key, an invitation key, a password).

These tests commit real rows (transactional tests), then read what a thief would get: the raw
bytes of the SQLite test database with its -wal/-journal/-shm files, or a `pg_dump` of the
PostgreSQL test database. Each scan first proves it can see plaintext (a marker stored in a
description is found), so "zero hits" means something.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.core import signing
from django.db import connection
from django.test import Client
from django.urls import reverse

from keys.models import WorkspaceKey
from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory
from tests.files import read_from_another_process
from tests.helpers import invitation_link
from tokens.models import Token

pytestmark = pytest.mark.django_db(transaction=True)

ON_SQLITE = connection.vendor == "sqlite"
ON_POSTGRES = connection.vendor == "postgresql"


def encodings(value: str) -> list[bytes]:
    """The value as a thief might find it: raw UTF-8, base64 (both alphabets), hex."""
    raw = value.encode("utf-8")
    return [
        raw,
        base64.b64encode(raw),
        base64.urlsafe_b64encode(raw),
        raw.hex().encode(),
        raw.hex().upper().encode(),
    ]


# Fixed text around the random parts of some values; windows made only of it prove nothing.
PUBLIC_PARTS = [
    b"-----BEGIN PRIVATE KEY-----\n",
    b"\n-----END PRIVATE KEY-----\n",
    "pässwört-".encode(),
    "-ключ".encode(),
]


def fragments(value: str, width: int = 12) -> list[bytes]:
    """Every 12-byte window of the value: finding one would be a partial leak (the stored hint
    is only the last 4 characters)."""
    raw = value.encode("utf-8")
    if len(raw) <= width:
        return [raw]
    windows = (raw[start : start + width] for start in range(len(raw) - width + 1))
    return [w for w in windows if not any(w in part for part in PUBLIC_PARTS)]


def hits(haystack: bytes, values: list[str]) -> list[str]:
    found = []
    for value in values:
        needles = encodings(value) + fragments(value)
        found += [f"{value[:8]}…: {needle[:16]!r}" for needle in needles if needle in haystack]
    return found


def random_values() -> list[str]:
    body = "\n".join(secrets.token_hex(32) for _ in range(4))
    return [
        secrets.token_hex(24),  # 48 characters: hint-bearing
        secrets.token_hex(24),
        secrets.token_hex(4),  # 8 characters: no hint
        f"pässwört-{secrets.token_hex(12)}-ключ",  # multi-byte UTF-8
        f"-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n",
    ]


def store_tokens(values: list[str], marker: str) -> list[Token]:
    """Create, edit (older versions too), revoke and delete tokens: every stored state."""
    workspace = WorkspaceFactory(slug=f"leak-{secrets.token_hex(3)}")
    environments = list(workspace.environments.all())
    tokens = []
    for number, value in enumerate(values[:-1]):
        tokens.append(
            Token.objects.create_token(
                workspace=workspace,
                key=f"LEAK_{number}",
                value=value,
                description=f"{marker} {number}",
                environments=environments,
            )
        )
    tokens[0].set_value(values[-1])  # values[0] is now an older version
    tokens[1].revoke()
    tokens[2].delete_token()
    return tokens


def sqlite_files() -> list[Path]:
    database = Path(connection.settings_dict["NAME"])
    return sorted(path for path in database.parent.glob(database.name + "*") if path.is_file())


def sqlite_bytes() -> bytes:
    files = sqlite_files()
    assert files and files[0].stat().st_size > 0
    return b"".join(read_from_another_process(files).values())


def checkpoint() -> None:
    """Copy the write-ahead log into the main file and empty it, as a clean shutdown does."""
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")


@pytest.mark.skipif(not ON_SQLITE, reason="reads the SQLite database file; see the pg_dump test")
def test_sqlite_files_hold_no_token_value():
    values = random_values()
    marker = f"PLAINTEXT-CONTROL-{secrets.token_hex(8)}"
    store_tokens(values, marker)
    moments = [("after the writes (rows in the WAL)", lambda: None)]
    moments.append(("after a checkpoint (rows in the main file)", checkpoint))
    for moment, step in moments:
        step()
        data = sqlite_bytes()
        assert marker.encode() in data, f"the scan cannot see committed rows {moment}"
        assert hits(data, values) == [], moment


@pytest.mark.skipif(not ON_SQLITE, reason="reads the SQLite database file")
def test_values_entered_in_the_admin_never_reach_the_sqlite_files():
    values = [secrets.token_hex(24), secrets.token_hex(24)]
    workspace = WorkspaceFactory(slug="admin-leak")
    admin = get_user_model().objects.create_superuser("leak-admin", "a@example.com", "pw-x-123")
    client = Client()
    client.force_login(admin)
    environments = [env.pk for env in workspace.environments.all()]
    marker = f"PLAINTEXT-CONTROL-{secrets.token_hex(8)}"
    added = client.post(
        reverse("admin:tokens_token_add"),
        {
            "workspace": workspace.pk,
            "key": "ADMIN_LEAK",
            "new_value": values[0],
            "description": marker,
            "type": "api_key",
            "environments": environments,
            "_save": "Save",
        },
    )
    assert added.status_code == 302
    token = Token.objects.get(key="ADMIN_LEAK")
    changed = client.post(
        reverse("admin:tokens_token_change", args=[token.pk]),
        {
            "key": "ADMIN_LEAK",
            "description": marker,
            "type": "api_key",
            "environments": environments,
            "new_value": values[1],
            "_save": "Save",
        },
    )
    assert changed.status_code == 302
    assert Token.objects.get(pk=token.pk).reveal() == values[1]
    for step in (lambda: None, checkpoint):
        step()
        data = sqlite_bytes()
        assert marker.encode() in data
        assert hits(data, values) == []


@pytest.mark.skipif(not ON_SQLITE, reason="SQLite's secure_delete; PostgreSQL reclaims on VACUUM")
def test_deleted_ciphertexts_and_shredded_data_keys_leave_no_bytes_in_the_sqlite_files():
    workspace = WorkspaceFactory(slug="shred-me")
    token = Token.objects.create_token(
        workspace=workspace,
        key="GONE",
        value=secrets.token_hex(24),
        environments=list(workspace.environments.all()),
    )
    ciphertext = bytes(token.ciphertext)
    wrapped = bytes(WorkspaceKey.objects.get(workspace=workspace).wrapped_dek)
    checkpoint()
    assert ciphertext in sqlite_bytes() and wrapped in sqlite_bytes()  # the control
    token.delete_token()
    checkpoint()
    assert ciphertext not in sqlite_bytes()
    workspace.delete()
    checkpoint()
    assert wrapped not in sqlite_bytes()


@pytest.mark.skipif(
    not ON_POSTGRES, reason="needs PostgreSQL (CI's DATABASE_URL pass); SQLite is scanned above"
)
def test_pg_dump_holds_no_token_value():
    pg_dump = shutil.which("pg_dump")
    assert pg_dump, "pg_dump is needed for this test (apt-get install postgresql-client)"
    values = random_values()
    marker = f"PLAINTEXT-CONTROL-{secrets.token_hex(8)}"
    store_tokens(values, marker)
    settings = connection.settings_dict
    command = [pg_dump, "--no-owner", "--dbname", settings["NAME"]]
    for option, key in (("--host", "HOST"), ("--port", "PORT"), ("--username", "USER")):
        if settings.get(key):
            command += [option, str(settings[key])]
    environ = os.environ | ({"PGPASSWORD": settings["PASSWORD"]} if settings["PASSWORD"] else {})
    dump = subprocess.run(command, capture_output=True, env=environ, timeout=120, check=True)
    assert marker.encode() in dump.stdout, "the dump does not contain the committed rows"
    assert b"COPY public.tokens_token" in dump.stdout
    assert hits(dump.stdout, values) == []


# --- Session rows --------------------------------------------------------------------------
# A session row is signed, not encrypted: whoever reads the table reads its values, without the
# secret key, as below. Each flow of allauth (and ours) that keeps something in the session
# between two requests must leave nothing there that opens an account.


def session_rows_as_a_thief_reads_them() -> bytes:
    """Every session row's values: the signed payload's base64 (zlib-compressed if it starts
    with a dot) needs no key to read."""
    rows = []
    for data in Session.objects.values_list("session_data", flat=True):
        payload = data.split(":", 1)[0]
        raw = signing.b64_decode(payload.lstrip(".").encode())
        rows.append(zlib.decompress(raw) if payload.startswith(".") else raw)
    assert rows, "no session row to read"
    return b"\n".join(rows)


def mailed_path(message, prefix: str) -> str:
    match = re.search(rf"https?://[^/\s]+({re.escape(prefix)}\S+/)", message.body)
    assert match, message.body
    return match.group(1)


def test_a_password_reset_keeps_no_usable_key_in_the_session(mailoutbox):
    user = UserFactory(username="resetter", email="resetter@example.com")
    client = Client()
    client.post(reverse("password_reset"), {"email": "resetter@example.com"})
    link = mailed_path(mailoutbox[0], "/accounts/password/reset/key/")
    key = link.rstrip("/").rpartition("-")[2]

    form = client.get(link, follow=True)  # the view keeps the key in the session, then redirects
    assert "Choose a new password" in form.content.decode()
    stored = session_rows_as_a_thief_reads_them()
    assert b"_password_reset_key" in stored, "the control: the scan sees allauth's session key"
    assert hits(stored, [key]) == []

    new = "a-brand-new-passphrase-77"
    done = client.post(form.redirect_chain[-1][0], {"password1": new, "password2": new})
    assert done.status_code == 302, "the sealed key still completes the reset"
    user.refresh_from_db()
    assert user.check_password(new)


def test_an_email_confirmation_keeps_no_key_in_the_session(mailoutbox):
    client = Client()
    client.force_login(UserFactory(username="mover", email="mover@example.com"))
    client.post(reverse("account_email"), {"action_add": "", "email": "mover@new.example"})
    link = mailed_path(mailoutbox[0], "/accounts/confirm-email/")
    key = link.rstrip("/").rpartition("/")[2]

    assert client.get(link).status_code == 200
    assert hits(session_rows_as_a_thief_reads_them(), [key]) == []
    client.post(link)
    assert hits(session_rows_as_a_thief_reads_them(), [key]) == []
    assert get_user_model().objects.get(username="mover").email == "mover@new.example"


def test_signing_up_keeps_no_password_or_invitation_key_in_the_session(mailoutbox, settings):
    settings.COFFER_OPEN_SIGNUP = True
    password = f"sign-up-{secrets.token_hex(8)}"
    fields = {"password1": password, "password2": password}
    opened = Client()
    opened.post(
        reverse("account_signup"), {"username": "solo", "email": "solo@example.com", **fields}
    )
    workspace = WorkspaceFactory(slug="joinme")
    owner = Client()
    owner.force_login(MembershipFactory(workspace=workspace, role="owner").user)
    owner.post(
        reverse("invitation_create", args=["joinme"]),
        {"email": "newbie@example.com", "role": "editor"},
    )
    link = invitation_link(mailoutbox[-1])
    invited = Client()
    invited.get(link)
    invited.post(reverse("invitation_accept"), {"username": "newbie", **fields})

    assert get_user_model().objects.filter(username__in=["solo", "newbie"]).count() == 2
    key = link.rstrip("/").rpartition("/")[2]
    assert hits(session_rows_as_a_thief_reads_them(), [password, key]) == []
