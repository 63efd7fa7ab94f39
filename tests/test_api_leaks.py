"""Leaks through the API: an access key is shown once (the command's output) and never again;
token values appear only in successful API answers, never in error bodies or logs.

Keys are searched whole and in 12-character windows of the part after the visible identifier
(`cfr_` + 6 characters, stored on purpose), in: the SQLite database file with its -wal (read by
another process, as a thief would), DEBUG logs with every SQL statement and its parameters, the
admin's pages, the Activity tab, and every API answer after the creation.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import subprocess

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse

from access.models import AccessKey
from audit.models import AuditEvent
from tests.api_helpers import audit_insert_fails, bearer, get_values, post_resolve
from tests.files import read_from_another_process
from tests.test_storage_leaks import checkpoint, sqlite_files
from tests.url_table import build_world

pytestmark = pytest.mark.django_db(transaction=True)


def stored_bytes() -> bytes:
    """What a thief of the database gets: the SQLite files (after a checkpoint, so the WAL's
    rows are in the main file too, and before, below) or a pg_dump."""
    if connection.vendor == "sqlite":
        before = b"".join(read_from_another_process(sqlite_files()).values())
        checkpoint()
        return before + b"".join(read_from_another_process(sqlite_files()).values())
    settings = connection.settings_dict
    pg_dump = shutil.which("pg_dump")
    assert pg_dump, "pg_dump is needed for this test (apt-get install postgresql-client)"
    command = [pg_dump, "--no-owner", "--dbname", settings["NAME"]]
    for option, key in (("--host", "HOST"), ("--port", "PORT"), ("--username", "USER")):
        if settings.get(key):
            command += [option, str(settings[key])]
    environ = os.environ | ({"PGPASSWORD": settings["PASSWORD"]} if settings["PASSWORD"] else {})
    return subprocess.run(command, capture_output=True, check=True, env=environ).stdout


def key_needles(key: str) -> list[str]:
    secret = key[10:]  # after the stored identifier
    return [key, *(secret[i : i + 12] for i in range(0, len(secret) - 11))]


def hits(haystack: str | bytes, needles: list[str]) -> list[str]:
    if isinstance(haystack, bytes):
        return [n for n in needles if n.encode() in haystack]
    return [n for n in needles if n in haystack]


@pytest.fixture
def sql_logging(caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django.db.backends")
    connection.force_debug_cursor = True
    yield caplog
    connection.force_debug_cursor = False


def all_logs(caplog) -> str:
    return caplog.text + "\n".join(
        f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records
    )


def test_a_created_key_is_never_seen_again(sql_logging, settings):
    settings.COFFER_API_AUTH_FAILURE_LIMIT = 1000
    world = build_world(tokens_per_workspace=1)
    out = io.StringIO()
    call_command(
        "create_access_key",
        "--workspace",
        "acme",
        "--environment",
        "production",
        "--app",
        "checkout",
        "--name",
        "leak-check",
        stdout=out,
    )
    key = out.getvalue().splitlines()[-1]
    row = AccessKey.objects.get(name="leak-check")
    assert key.startswith(row.identifier)
    needles = key_needles(key)
    surfaces: dict[str, str | bytes] = {}

    client = Client()
    surfaces["resolve"] = post_resolve(client, key, "$Secret{ACME_TOKEN_0}").content
    surfaces["resolve 422"] = post_resolve(client, key, "$Secret{NOPE}").content
    values = get_values(client, key)
    surfaces["values"] = values.content
    surfaces["values headers"] = str(values.headers)
    not_modified = get_values(client, key, HTTP_IF_NONE_MATCH=values["ETag"])
    assert not_modified.status_code == 304, "control: the change feed answered"
    surfaces["values 304 headers"] = str(not_modified.headers)
    surfaces["value"] = client.get("/api/v1/values/ACME_TOKEN_0", headers=bearer(key)).content
    surfaces["value 404"] = client.get("/api/v1/values/NOPE", headers=bearer(key)).content
    surfaces["wrong key"] = get_values(client, key[:-1] + "0").content
    row.revoke()
    surfaces["revoked"] = get_values(client, key).content

    root = get_user_model().objects.create_superuser("root", "root@example.com", None)
    admin = Client()
    admin.force_login(root)
    for url in (
        reverse("admin:access_accesskey_changelist"),
        reverse("admin:access_accesskey_changelist") + f"?q={row.identifier}",
        reverse("admin:access_accesskey_change", args=[row.pk]),
        reverse("admin:access_accesskey_delete", args=[row.pk]),
        reverse("admin:audit_auditevent_changelist"),
        *(
            reverse("admin:audit_auditevent_change", args=[pk])
            for pk in AuditEvent.objects.values_list("pk", flat=True)
        ),
    ):
        response = admin.get(url)
        assert response.status_code == 200, url
        surfaces[f"admin {url}"] = response.text
    assert "leak-check" in surfaces[f"admin {reverse('admin:access_accesskey_changelist')}"]
    assert row.key_hash not in "".join(str(s) for s in surfaces.values()), "no hash either"

    owner = world.client("owner")
    activity = owner.get(reverse("audit:activity", args=["acme"])).text
    assert "Access key created" in activity and "Resolved" in activity, "control"
    surfaces["activity"] = activity

    stored = stored_bytes()
    assert row.identifier.encode() in stored, "control: the scan sees the key's row"
    surfaces["database"] = stored

    surfaces["logs"] = all_logs(sql_logging)
    assert "UPDATE" in surfaces["logs"], "control: SQL with parameters was logged"
    leaked = {
        name: found for name, surface in surfaces.items() if (found := hits(surface, needles))
    }
    assert leaked == {}


def test_token_values_never_in_api_errors_or_logs(sql_logging, settings):
    settings.COFFER_API_AUTH_FAILURE_LIMIT = 1000
    settings.COFFER_API_MAX_BYTES = 2000
    world = build_world(tokens_per_workspace=2)
    a = world.a
    _, key = AccessKey.objects.create_key(
        workspace=a.workspace,
        name="k",
        environment=a.workspace.environments.get(slug="production"),
        app=a.app,
    )
    _, pinned = AccessKey.objects.create_key(
        workspace=a.workspace,
        name="pinned",
        app=a.app,
        environment=a.workspace.environments.get(slug="production"),
        allowed_networks=["203.0.113.0/24"],
    )
    client = Client()
    both = "$Secret{ACME_TOKEN_0} $Secret{ACME_TOKEN_1}"
    errors = {
        "422 resolve": post_resolve(client, key, both + " $Secret{GLOBEX_TOKEN_0}"),
        "422 values": get_values(client, key, "?keys=ACME_TOKEN_0,GLOBEX_TOKEN_0"),
        "400 values": get_values(client, key, "?keys=ACME_TOKEN_0,bad-key"),
        "401": post_resolve(client, "cfr_" + "1" * 49, both),
        "403": post_resolve(client, pinned, both),
        "413": post_resolve(client, key, both + " " * 3000),
        "404 value": client.get("/api/v1/values/GLOBEX_TOKEN_0", headers=bearer(key)),
        "400 value": client.get("/api/v1/values/bad-key", headers=bearer(key)),
        "400 values wait": get_values(client, key, "?wait=forever"),
    }
    etag = get_values(client, key)["ETag"]
    errors["304 values"] = get_values(client, key, HTTP_IF_NONE_MATCH=etag)
    with audit_insert_fails("audit down"):
        errors["503 resolve"] = post_resolve(client, key, both)
        errors["503 values"] = get_values(client, key)
        errors["503 value"] = client.get("/api/v1/values/ACME_TOKEN_0", headers=bearer(key))
    settings.COFFER_API_RATE_LIMIT = 0
    errors["429"] = post_resolve(client, key, both)
    settings.COFFER_API_RATE_LIMIT = 600
    for label, response in errors.items():
        assert str(response.status_code) == label.split()[0], label
    successes = [post_resolve(client, key, both), get_values(client, key, "?format=dotenv")]
    assert all(a.values[0] in response.text for response in successes), "control"

    surfaces = {label: response.text + str(response.headers) for label, response in errors.items()}
    surfaces["logs"] = all_logs(sql_logging)
    assert "audit event could not be written" in surfaces["logs"], "control: the 503 was logged"
    leaked = {
        name: [value for value in world.values if value in surface]
        for name, surface in surfaces.items()
    }
    assert {name: found for name, found in leaked.items() if found} == {}
    assert bearer(key)["Authorization"] not in surfaces["logs"]
