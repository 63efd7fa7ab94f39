"""Sessions: a stolen database gives no working session; idle and absolute lifetimes.

The session table keeps only a hash of each session key (config/sessions.py), the data
directory is 0700 and the SQLite files 0600 (config/database_files.py).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from config.sessions import SessionStore, stored_key
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.files import read_from_another_process

ROOT = Path(__file__).resolve().parent.parent
HOME = reverse("home")
LOGIN = reverse("login")


def sign_in(client: Client, username: str = "alice") -> str:
    UserFactory(username=username)
    response = client.post(LOGIN, {"username": username, "password": DEFAULT_PASSWORD})
    assert response.status_code == 302, "signed in"
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def is_signed_in(client: Client) -> bool:
    response = client.get(HOME)
    if response.status_code == 302:
        assert response["Location"].startswith(LOGIN)
        return False
    assert response.status_code == 200
    return True


def client_with_cookie(session_key: str) -> Client:
    thief = Client()
    thief.cookies[settings.SESSION_COOKIE_NAME] = session_key
    return thief


class Clock:
    """timezone.now() moved by hand (the session store and Django's db sessions read it)."""

    def __init__(self, monkeypatch) -> None:
        self.now = timezone.now()
        monkeypatch.setattr(timezone, "now", lambda: self.now)

    def advance(self, **delta) -> None:
        self.now += dt.timedelta(**delta)


# --- a stolen database ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_session_key_read_out_of_the_database_does_not_sign_in(client):
    cookie_key = sign_in(client)
    assert is_signed_in(client)

    with connection.cursor() as cursor:
        cursor.execute("SELECT session_key FROM django_session")
        stolen = [row[0] for row in cursor.fetchall()]

    assert stolen, "the table holds the session"
    assert cookie_key not in stolen
    for key in stolen:
        assert not is_signed_in(client_with_cookie(key))
    assert is_signed_in(client), "the real cookie still works"


@pytest.mark.django_db(transaction=True)
def test_session_key_is_nowhere_in_the_sqlite_files(client):
    if connection.vendor != "sqlite":
        pytest.skip("the PostgreSQL table is covered by the test above")
    cookie_key = sign_in(client)
    name = Path(connection.settings_dict["NAME"])
    files = [p for p in (name, Path(f"{name}-wal"), Path(f"{name}-journal")) if p.exists()]

    contents = read_from_another_process(files)

    assert all(cookie_key.encode() not in data for data in contents.values())
    assert any(stored_key(cookie_key).encode() in data for data in contents.values())


# --- the session lifecycle still works with hashed keys ------------------------------------


@pytest.mark.django_db
def test_sign_in_rotates_the_key_and_drops_the_old_row(client):
    client.get(LOGIN)
    anonymous = SessionStore()
    anonymous["note"] = "before sign-in"
    anonymous.save()
    client.cookies[settings.SESSION_COOKIE_NAME] = anonymous.session_key

    signed_in_key = sign_in(client)

    assert signed_in_key != anonymous.session_key
    assert not Session.objects.filter(session_key=stored_key(anonymous.session_key)).exists()
    assert Session.objects.filter(session_key=stored_key(signed_in_key)).exists()


@pytest.mark.django_db
def test_sign_out_ends_the_session_for_good(client):
    key = sign_in(client)

    client.post(reverse("logout"))

    assert not Session.objects.filter(session_key=stored_key(key)).exists()
    assert not is_signed_in(client_with_cookie(key))


@pytest.mark.django_db
def test_flush_and_exists_use_the_hashed_key():
    store = SessionStore()
    store["x"] = 1
    store.save()
    key = store.session_key
    assert store.exists(key)
    assert SessionStore(key)["x"] == 1

    store.flush()

    assert not store.exists(key)
    assert Session.objects.count() == 0


@pytest.mark.django_db
def test_clearsessions_removes_expired_sessions_only(client, monkeypatch):
    sign_in(client, "alice")
    clock = Clock(monkeypatch)
    clock.advance(minutes=settings.SESSION_COOKIE_AGE // 60 + 1)
    sign_in(Client(), "bob")

    call_command("clearsessions")

    assert Session.objects.count() == 1


# --- idle and absolute lifetimes -------------------------------------------------------------


@pytest.mark.django_db
def test_session_expires_after_the_idle_timeout(client, monkeypatch):
    assert settings.SESSION_COOKIE_AGE == 720 * 60, "12 hours by default"
    clock = Clock(monkeypatch)
    sign_in(client)

    clock.advance(hours=11, minutes=59)
    assert is_signed_in(client)
    clock.advance(hours=11, minutes=59)  # 24 h after sign-in, but each request slid the expiry
    assert is_signed_in(client)
    clock.advance(hours=12, minutes=1)

    assert not is_signed_in(client)


@pytest.mark.django_db
def test_session_ends_after_the_absolute_lifetime_however_active(client, monkeypatch):
    assert settings.COFFER_SESSION_MAX_SECONDS == 7 * 86_400, "7 days by default"
    clock = Clock(monkeypatch)
    key = sign_in(client)

    for _ in range(15):  # 165 hours of activity, a request every 11 hours
        clock.advance(hours=11)
        assert is_signed_in(client)
    clock.advance(hours=4)  # 169 hours

    assert not is_signed_in(client)
    assert not Session.objects.filter(session_key=stored_key(key)).exists()


@pytest.mark.django_db
def test_idle_refresh_writes_the_session_at_most_once_a_minute(client, monkeypatch):
    clock = Clock(monkeypatch)
    key = sign_in(client)
    expiry = Session.objects.get(session_key=stored_key(key)).expire_date

    clock.advance(seconds=30)
    assert is_signed_in(client)
    assert Session.objects.get(session_key=stored_key(key)).expire_date == expiry

    clock.advance(seconds=31)
    assert is_signed_in(client)
    assert Session.objects.get(session_key=stored_key(key)).expire_date > expiry


# --- file modes ------------------------------------------------------------------------------

MODES_OF_A_NEW_DATA_DIR = """
import json, os, stat, django
django.setup()
from django.conf import settings
from django.core.management import call_command
from django.db import connection
call_command("migrate", verbosity=0)
with connection.cursor() as cursor:  # a write, with the connection open: the WAL exists
    cursor.execute("CREATE TABLE probe (x)")
    cursor.execute("INSERT INTO probe VALUES (1)")
    modes = {
        name: stat.S_IMODE(os.stat(settings.DATA_DIR / name).st_mode)
        for name in os.listdir(settings.DATA_DIR)
        if name.startswith("coffer.sqlite3")
    }
modes["."] = stat.S_IMODE(os.stat(settings.DATA_DIR).st_mode)
print(json.dumps(modes))
"""


@pytest.mark.parametrize("existing_dir_mode", [None, 0o755])
def test_data_directory_is_0700_and_database_files_0600(tmp_path, existing_dir_mode):
    data_dir = tmp_path / "data"
    if existing_dir_mode is not None:
        data_dir.mkdir(mode=existing_dir_mode)
        data_dir.chmod(existing_dir_mode)
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "COFFER_DATA_DIR"}}
    env.update(COFFER_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="config.settings")

    result = subprocess.run(
        [sys.executable, "-c", MODES_OF_A_NEW_DATA_DIR],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        umask=0o022,
    )

    assert result.returncode == 0, result.stderr
    modes = json.loads(result.stdout.strip().splitlines()[-1])
    assert modes.pop(".") == 0o700
    assert {"coffer.sqlite3", "coffer.sqlite3-wal", "coffer.sqlite3-shm"} <= set(modes)
    assert {name: oct(mode) for name, mode in modes.items()} == {
        name: oct(stat.S_IRUSR | stat.S_IWUSR) for name in modes
    }


# --- the settings ----------------------------------------------------------------------------

SHOW_LIFETIMES = """
import django
django.setup()
from django.conf import settings
print(settings.SESSION_COOKIE_AGE, settings.COFFER_SESSION_MAX_SECONDS)
"""


def lifetimes(**env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", SHOW_LIFETIMES],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_session_lifetimes_come_from_the_environment():
    result = lifetimes(COFFER_SESSION_IDLE_MINUTES="30", COFFER_SESSION_MAX_DAYS="1")
    assert result.stdout.split() == ["1800", "86400"]


@pytest.mark.parametrize("bad", ["abc", "0", "-5", "1.5"])
def test_a_bad_session_lifetime_is_refused_with_a_clear_message(bad):
    result = lifetimes(COFFER_SESSION_IDLE_MINUTES=bad)
    assert result.returncode != 0
    assert f"COFFER_SESSION_IDLE_MINUTES must be a whole number of at least 1, not {bad!r}" in (
        result.stderr
    )


@pytest.mark.django_db
def test_a_reset_key_stored_in_the_clear_before_sealing_is_dropped_not_trusted():
    from django.core import signing

    store = SessionStore()
    store["kept"] = "yes"
    store.save()
    clear = signing.dumps(
        {"kept": "yes", "_password_reset_key": "clear-key"},
        salt=store.key_salt,
        serializer=signing.JSONSerializer,
        compress=True,
    )
    Session.objects.filter(session_key=stored_key(store.session_key)).update(session_data=clear)

    loaded = SessionStore(store.session_key)
    assert loaded["kept"] == "yes"
    assert "_password_reset_key" not in loaded
