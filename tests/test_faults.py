"""Faults: a wrong or missing master key, a corrupted ciphertext, a rotation killed midway, the
database going away. Each ends in a clear error that names what is wrong (workspace, token,
master key id), never in garbage, an empty value, a traceback page or lost data.
"""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command, get_commands
from django.db import InterfaceError, OperationalError, connection
from django.test import override_settings
from django.urls import reverse

from keys.crypto import CryptoError
from keys.models import WorkspaceKey
from tests.factories import TokenFactory, WorkspaceFactory
from tests.helpers import HTMX
from tests.url_table import build_world, distinctive_value
from tokens.models import Token

ROOT = Path(__file__).resolve().parent.parent
TEST_KEY = os.environ["COFFER_MASTER_KEYS"]  # "test1:<base64>", set by the root conftest.py
OTHER_KEY = base64.b64encode(b"o" * 32).decode()
NEW_KEY = base64.b64encode(b"n" * 32).decode()

pytestmark = pytest.mark.django_db


def resolve(path: Path, workspace: str = "acme", environment: str = "production"):
    out, err = io.BytesIO(), io.StringIO()
    call_command(
        "resolve",
        str(path),
        "--workspace",
        workspace,
        "--environment",
        environment,
        stdout=out,
        stderr=err,
    )
    return out.getvalue(), err.getvalue()


needs_resolve = pytest.mark.skipif(
    "resolve" not in get_commands(), reason="manage.py resolve has not landed yet"
)


@pytest.fixture
def acme_token():
    workspace = WorkspaceFactory(slug="acme")
    value = distinctive_value()
    return TokenFactory(workspace=workspace, key="PAYMENT_API_KEY", value=value), value


# --- master keys ---------------------------------------------------------------------------


def test_wrong_master_key_is_a_clear_error_naming_workspace_and_key_id(acme_token):
    token, value = acme_token
    with (
        override_settings(COFFER_MASTER_KEYS=f"test1:{OTHER_KEY}"),
        pytest.raises(CryptoError) as caught,
    ):
        Token.objects.get(pk=token.pk).reveal()
    message = str(caught.value)
    assert "workspace acme" in message
    assert "master key 'test1'" in message
    assert "the master key is wrong" in message
    assert value not in message


def test_missing_master_key_is_a_clear_error_naming_the_missing_id(acme_token):
    token, value = acme_token
    with (
        override_settings(COFFER_MASTER_KEYS=f"k2:{NEW_KEY}"),
        pytest.raises(CryptoError) as caught,
    ):
        Token.objects.get(pk=token.pk).reveal()
    message = str(caught.value)
    assert "workspace acme" in message
    assert "master key 'test1' is not in the key ring (known: k2)" in message
    assert "Add it back to COFFER_MASTER_KEYS" in message


def test_corrupted_ciphertext_is_a_clear_error_naming_token_workspace_and_key(acme_token):
    token, value = acme_token
    Token.objects.filter(pk=token.pk).update(ciphertext=b"\0" * 40)
    with pytest.raises(CryptoError) as caught:
        Token.objects.get(pk=token.pk).reveal()
    message = str(caught.value)
    assert "token PAYMENT_API_KEY in workspace acme (master key 'test1')" in message
    assert value not in message


@needs_resolve
@pytest.mark.parametrize(
    "fault", ["wrong master key", "missing master key", "corrupted ciphertext"]
)
def test_resolve_fails_closed_with_a_clear_error_on_key_faults(acme_token, tmp_path, fault):
    token, value = acme_token
    template = tmp_path / "app.env"
    template.write_text("PAYMENT=$Secret{PAYMENT_API_KEY}\n")
    keys = {"wrong master key": f"test1:{OTHER_KEY}", "missing master key": f"k2:{NEW_KEY}"}
    if fault == "corrupted ciphertext":
        Token.objects.filter(pk=token.pk).update(ciphertext=b"\1" * 64)

    with (
        override_settings(COFFER_MASTER_KEYS=keys.get(fault, TEST_KEY)),
        pytest.raises(CommandError) as caught,
    ):
        resolve(template)

    message = str(caught.value)
    assert caught.value.returncode == 1
    assert "acme" in message
    assert "test1" in message, "the master key id is named"
    assert value not in message


# --- rotation killed midway ----------------------------------------------------------------


@pytest.mark.skipif(
    "rotate_master_key" not in get_commands(), reason="rotate_master_key has not landed yet"
)
def test_rotation_killed_midway_then_rerun_loses_nothing(monkeypatch):
    values = {}
    for slug in ("acme", "globex", "initech", "umbrella"):
        workspace = WorkspaceFactory(slug=slug)
        for n in range(3):
            value = distinctive_value()
            token = TokenFactory(workspace=workspace, key=f"KEY_{n}", value=value)
            values[token.pk] = value

    real_rotate = WorkspaceKey.rotate.__func__
    calls = []

    def killed_on_third(cls, workspace_id, **kwargs):
        calls.append(workspace_id)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_rotate(cls, workspace_id, **kwargs)

    with override_settings(COFFER_MASTER_KEYS=f"k2:{NEW_KEY},{TEST_KEY}"):
        monkeypatch.setattr(WorkspaceKey, "rotate", classmethod(killed_on_third))
        with pytest.raises(CommandError, match="Interrupted after 2"):
            call_command("rotate_master_key", stdout=io.StringIO(), stderr=io.StringIO())
        assert sorted(WorkspaceKey.objects.values_list("kek_id", flat=True)) == [
            "k2",
            "k2",
            "test1",
            "test1",
        ]
        for token in Token.objects.all():
            assert token.reveal() == values[token.pk], "half-rotated: every value still opens"

        monkeypatch.undo()
        out = io.StringIO()
        call_command("rotate_master_key", stdout=out, stderr=io.StringIO())
        assert "Re-wrapped 2 workspace data key(s)" in out.getvalue()
        assert "'test1' is no longer used" in out.getvalue()

    with override_settings(COFFER_MASTER_KEYS=f"k2:{NEW_KEY}"):
        assert set(WorkspaceKey.objects.values_list("kek_id", flat=True)) == {"k2"}
        for token in Token.objects.all():
            assert token.reveal() == values[token.pk], "the old key is no longer needed"


# --- the database goes away ----------------------------------------------------------------


def fail_every_query(monkeypatch, error: Exception) -> None:
    def unavailable(*args, **kwargs):
        raise error

    monkeypatch.setattr(connection, "cursor", unavailable)
    monkeypatch.setattr(connection, "ensure_connection", unavailable)


@pytest.mark.parametrize(
    "error",
    [
        OperationalError('connection to server at "127.0.0.1", port 5432 failed: refused'),
        InterfaceError("connection already closed"),
    ],
    ids=["operational", "interface"],
)
@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_database_unavailable_during_a_request_is_a_clear_503(monkeypatch, caplog, error, htmx):
    world = build_world(tokens_per_workspace=1)
    client = world.client("owner")
    client.get(reverse("tokens:list", args=["acme"]))  # a working session first
    fail_every_query(monkeypatch, error)

    response = client.get(reverse("tokens:list", args=["acme"]), headers=HTMX if htmx else {})

    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert "no-store" in response["Cache-Control"]
    page = response.text
    assert "Coffer is temporarily unavailable" in page
    assert "Nothing you saved has been lost" in page
    assert "/static/css/coffer.css" in page, "the styled page"
    assert "Traceback" not in page and "OperationalError" not in page
    assert "Database unavailable during GET /w/acme/tokens/" in caplog.text


def test_database_unavailable_during_a_post_is_a_503_too(monkeypatch):
    world = build_world(tokens_per_workspace=1)
    client = world.client("editor")
    client.get(reverse("tokens:list", args=["acme"]))
    fail_every_query(monkeypatch, OperationalError("server closed the connection unexpectedly"))

    response = client.post(reverse("tokens:create", args=["acme"]), {"key": "NEW_KEY"})

    assert response.status_code == 503
    assert "Coffer is temporarily unavailable" in response.text


UNREACHABLE_PROBE = r"""
import django
django.setup()
from django.test import Client
client = Client(raise_request_exception=False)
client.cookies["sessionid"] = "a-session-the-database-would-know"
for url in ("/", "/w/acme/tokens/", "/w/acme/tokens/new/"):
    response = client.get(url)
    print(url, response.status_code, "temporarily unavailable" in response.text,
          "Traceback" in response.text)
"""


@pytest.mark.slow
def test_unreachable_postgresql_server_gives_503_pages(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(
        DATABASE_URL="postgres://postgres@127.0.0.1:9/coffer_nowhere",  # the discard port
        COFFER_DATA_DIR=str(tmp_path),
    )
    result = subprocess.run(
        [sys.executable, "-c", UNREACHABLE_PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines == [
        "/ 503 True False",
        "/w/acme/tokens/ 503 True False",
        "/w/acme/tokens/new/ 503 True False",
    ], result.stdout + result.stderr
    assert "Database unavailable during GET" in result.stderr
    assert "Traceback" not in result.stderr, "one clear log line, no traceback"
