"""Leak scan: token values and access keys never appear anywhere but where they belong.

(A value belongs in the resolver's output; an access key in the one response that creates it;
an invitation key in the invitation mail and the one response that shows its link; a TOTP
secret on the set-up page and recovery codes on the page that shows them once.)

Tokens get random, distinctive values (`cofferleak` + 32 hex digits). Then the whole product is
exercised (every page and fragment for every role, the create/edit/revoke/delete forms, failed
submissions that carry a value, the Django admin with its write-only value field, the Activity
tab, `resolve --check`, password-reset mail) while every log record is captured at DEBUG with
SQL logging on. Finally every surface is searched for every value (whole, and in 16-character
windows, so a truncated display is caught too): the responses, the logs, the SQLite file with
its -wal and -journal files (or a pg_dump on PostgreSQL, where bytea shows as hex, so the hex
and base64 forms are searched as well), the cache and the mail outbox.

Separately, a server error with DEBUG off (the 500 page, the log, the error mail to ADMINS) and
Django's technical 500 page with DEBUG on (POST data and frame variables) are searched for the
value the failing request carried.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.management import CommandError, call_command, get_commands
from django.db import connection
from django.test import Client, override_settings
from django.urls import NoReverseMatch, reverse

from access.models import AccessKey
from keys import crypto
from tests.factories import AppFactory, TokenFactory
from tests.files import read_from_another_process
from tests.helpers import HTMX, access_key_data, access_url
from tests.html_forms import main_form
from tests.url_table import World, build_world, distinctive_value, routes_in_project
from tokens.models import Token, UseContext
from tokens.references.resolve import resolve_text

MASTER_KEY_B64 = os.environ["COFFER_MASTER_KEYS"].split(":", 1)[1]


def text_needles(value: str) -> list[str]:
    """The value, and 16-character windows of its random part (a truncated display)."""
    random_part = value.removeprefix("cofferleak")
    windows = {random_part[i : i + 16].lower() for i in range(0, len(random_part) - 15, 8)}
    return [value.lower(), *sorted(windows)]


def byte_needles(value: str) -> list[bytes]:
    raw = value.encode()
    return [
        *(needle.encode() for needle in text_needles(value)),
        raw.hex().encode(),  # how PostgreSQL prints bytea
        base64.b64encode(raw),
        value.encode("utf-16-le"),
    ]


@dataclass
class Scan:
    """Surfaces to search: name -> text or bytes."""

    surfaces: dict[str, str | bytes] = field(default_factory=dict)

    def add(self, name: str, content) -> None:
        if getattr(content, "streaming", False):  # an export: the whole stream is scanned
            body = b"".join(content.streaming_content)
            content = body.decode(errors="replace") + "\n" + str(content.headers)
        elif hasattr(content, "content") and hasattr(content, "status_code"):
            content = content.content.decode(errors="replace") + "\n" + str(content.headers)
        name = name if name not in self.surfaces else f"{name} #{len(self.surfaces)}"
        self.surfaces[name] = content

    def hits(self, values: list[str], text_only: bool = False) -> list[str]:
        """Where any value shows. `text_only`: skip byte surfaces (database files), where a short
        all-digit value such as a recovery code could occur by chance (codes are derived from
        an encrypted seed, never stored)."""
        found = []
        for name, content in self.surfaces.items():
            for value in values:
                if isinstance(content, bytes):
                    if text_only:
                        continue
                    lowered = content.lower()
                    if any(needle.lower() in lowered for needle in byte_needles(value)):
                        found.append(f"{value} in {name}")
                elif any(needle in content.lower() for needle in text_needles(value)):
                    found.append(f"{value} in {name}")
        return found


def htmx(client: Client, url: str):
    return client.get(url, headers=HTMX)


def form_on(client: Client, url: str):
    form = main_form(htmx(client, url).text)
    assert form is not None, f"no form at {url}"
    return form


def post_token_form(client: Client, url: str, *, key: str, value: str, htmx_post=True):
    form = form_on(client, url)
    data = form.defaults()
    data.update(key=key, value=value, environments=form.choices("environments"))
    headers = HTMX if htmx_post else {}
    return client.post(url, data, headers=headers)


def exercise_token_pages(world: World, scan: Scan, values: list[str]) -> None:
    """Create, edit, revoke and delete through the Tokens page, successes and failures."""
    editor = world.client("editor")
    create = reverse("tokens:create", args=["acme"])

    created = distinctive_value()
    response = post_token_form(editor, create, key="UI_CREATED", value=created)
    assert response.status_code == 204, response.text[:500]
    scan.add("create (htmx) success", response)
    plain = distinctive_value()
    response = post_token_form(editor, create, key="UI_PLAIN", value=plain, htmx_post=False)
    assert response.status_code == 302
    scan.add("create (plain) redirect target", editor.get(response["Location"]))
    refused = distinctive_value()
    for htmx_post in (True, False):
        response = post_token_form(
            editor, create, key="bad key!", value=refused, htmx_post=htmx_post
        )
        assert response.status_code == 200 and "Token Key" in response.text
        scan.add(f"create refused (htmx={htmx_post})", response)
    duplicate = distinctive_value()
    scan.add("create duplicate", post_token_form(editor, create, key="UI_CREATED", value=duplicate))
    values += [created, plain, refused, duplicate]

    token = Token.objects.get(workspace=world.a.workspace, key="UI_CREATED")
    edit = reverse("tokens:edit", args=["acme", token.pk])
    replaced = distinctive_value()
    response = post_token_form(editor, edit, key="UI_CREATED", value=replaced)
    assert response.status_code == 204
    assert Token.objects.get(pk=token.pk).reveal() == replaced
    refused_edit = distinctive_value()
    scan.add("edit refused", post_token_form(editor, edit, key="9bad", value=refused_edit))
    scan.add("edit form after change", htmx(editor, edit))
    values += [replaced, refused_edit]

    revoke = reverse("tokens:revoke", args=["acme", token.pk])
    scan.add("revoke dialog", htmx(editor, revoke))
    scan.add("revoke", editor.post(revoke, form_on(editor, revoke).defaults()))
    scan.add("revoke again", editor.post(revoke, {}))
    scan.add("edit revoked", htmx(editor, edit))

    doomed_value = distinctive_value()
    values.append(doomed_value)
    post_token_form(editor, create, key="UI_DOOMED", value=doomed_value)
    doomed = Token.objects.get(workspace=world.a.workspace, key="UI_DOOMED")
    delete = reverse("tokens:delete", args=["acme", doomed.pk])
    scan.add("delete dialog", htmx(editor, delete))
    scan.add("delete wrong confirmation", editor.post(delete, {"confirm_key": "nope"}))
    response = editor.post(delete, {"confirm_key": "UI_DOOMED"}, headers=HTMX)
    assert response.status_code == 204
    assert not Token.objects.filter(pk=doomed.pk).exists()


KEY_PATTERN = r"cfr_[0-9A-Za-z]{49}"


def exercise_workload_identity(world: World, scan: Scan, values: list[str], folder) -> None:
    """A CI job's OIDC token exchanged for a credential (the exchange's answer is the one
    place it belongs), the credential used, refused tokens, the identity deleted: neither the
    token nor the credential appears anywhere else."""
    import json

    from django.test import override_settings

    from tests.factories import make_workload_identity
    from tests.oidc_issuer import Issuer

    with (
        Issuer(folder) as issuer,
        override_settings(
            COFFER_WEBHOOK_ALLOW_PRIVATE=True, COFFER_WEBHOOK_CA_FILE=str(issuer.certificate)
        ),
    ):
        identity = make_workload_identity(
            world.a.workspace, name="scan-ci", issuer=issuer.url, environment=world.a.environment
        )
        token = issuer.token()
        job = Client()
        body = json.dumps({"identity": "acme/scan-ci", "token": token})
        answer = job.post(reverse("api:oidc_exchange"), body, content_type="application/json")
        assert answer.status_code == 200, "control: the exchange works"
        credential = answer.json()["credential"]
        # The token's signature is what makes it usable; its header and claims are public
        # (the key id and the claims also stand in the issuer's cached key set and in Activity),
        # so 16-character windows of them would match there by chance.
        values += [token.rsplit(".", 1)[1], credential]
        used = job.get(reverse("api:values"), headers={"Authorization": f"Bearer {credential}"})
        assert used.status_code == 200, "control: the credential works"
        exchange = reverse("api:oidc_exchange")
        for hostile in (issuer.token(repository="evil/app"), issuer.unsigned_token(), token + "x"):
            body = json.dumps({"identity": "acme/scan-ci", "token": hostile})
            refused = job.post(exchange, body, content_type="application/json")
            scan.add("oidc exchange refused", refused)
        owner = world.client("owner")
        scan.add("identities tab", owner.get(reverse("identities:list", args=["acme"])))
        delete = reverse("identities:delete", args=["acme", identity.pk])
        scan.add("identity delete dialog", htmx(owner, delete))
        assert owner.post(delete, {"confirm_name": "scan-ci"}, headers=HTMX).status_code == 204
        after = job.get(reverse("api:values"), headers={"Authorization": f"Bearer {credential}"})
        assert after.status_code == 401
        scan.add("credential after deletion", after)
        body = json.dumps({"identity": "acme/scan-ci", "token": token})
        replayed = job.post(exchange, body, content_type="application/json")
        scan.add("token replayed after deletion", replayed)


def exercise_access_key_pages(world: World, scan: Scan, values: list[str]) -> None:
    """Create (htmx and plain), refuse, revoke and delete keys through the Access keys tab.
    The create responses are the one place a key belongs; everything after is scanned."""
    import re

    owner = world.client("owner")
    workspace = world.a.workspace
    create = access_url("create", workspace)
    for name, headers in (("ui-htmx", HTMX), ("ui-plain", {})):
        response = owner.post(create, access_key_data(workspace, name=name), headers=headers)
        assert response.status_code == 200
        (key,) = set(re.findall(KEY_PATTERN, response.content.decode()))
        values.append(key)
    for overrides in ({"name": "ui-htmx"}, {"allowed_addresses": "not-an-address"}):
        response = owner.post(create, access_key_data(workspace, **overrides), headers=HTMX)
        assert "invalid-feedback" in response.text
        scan.add(f"access key create refused {overrides}", response)
    scan.add("access key form", htmx(owner, create))
    made = AccessKey.objects.get(workspace=workspace, name="ui-htmx")
    revoke = access_url("revoke", workspace, made)
    scan.add("access key revoke dialog", htmx(owner, revoke))
    scan.add("access key revoke", owner.post(revoke, {}, headers=HTMX))
    scan.add("access key revoke again", owner.post(revoke, {}))
    doomed = AccessKey.objects.get(workspace=workspace, name="ui-plain")
    delete = access_url("delete", workspace, doomed)
    scan.add("access key delete dialog", htmx(owner, delete))
    scan.add("access key delete refused", owner.post(delete, {"confirm_name": "nope"}))
    response = owner.post(delete, {"confirm_name": "ui-plain"}, headers=HTMX)
    assert response.status_code == 204
    scan.add("access key delete", response)


def exercise_every_page(world: World, scan: Scan) -> None:
    """Every GET route as owner, editor and viewer, page and fragment, plus table queries."""
    for who in ("owner", "editor", "viewer"):
        client = world.client(who)
        for route in routes_in_project():
            if route.get is None:
                continue
            for objects in (world.a,):
                url = route.url(objects)
                scan.add(f"{who} GET {url}", client.get(url))
                scan.add(f"{who} GET (htmx) {url}", htmx(client, url))
        tokens = reverse("tokens:list", args=["acme"])
        for query in (
            "?q=ACME",
            "?status=revoked",
            "?status=expired",
            "?sort=-last_used",
            "?page=2",
            "?type=api_key&environment=production",
        ):
            scan.add(f"{who} GET {tokens}{query}", client.get(tokens + query))
            scan.add(f"{who} GET (htmx) {tokens}{query}", htmx(client, tokens + query))


def exercise_admin(world: World, scan: Scan, values: list[str]) -> None:
    root = get_user_model().objects.create_superuser("root", "root@example.com", None)
    client = Client()
    client.force_login(root)
    scan.add("admin index", client.get(reverse("admin:index")))
    for model, model_admin in admin.site._registry.items():
        info = (model._meta.app_label, model._meta.model_name)
        changelist = admin_url(model, "changelist")
        scan.add(f"admin {info} changelist", client.get(changelist))
        scan.add(f"admin {info} search", client.get(changelist + "?q=ACME_TOKEN"))
        if model_admin.has_add_permission(_request_for(root)):
            scan.add(f"admin {info} add", client.get(admin_url(model, "add")))
        for obj in model.objects.all()[:3]:
            for view in ("change", "history", "delete"):
                try:
                    url = admin_url(model, view, obj.pk)
                except NoReverseMatch:
                    continue
                scan.add(f"admin {info} {view} {obj.pk}", client.get(url))

    token = world.a.token
    change = reverse("admin:tokens_token_change", args=[token.pk])
    form = main_form(client.get(change).text, skip_actions=("/accounts/logout/", "/admin/logout/"))
    secret_fields = form.secret_fields()
    assert secret_fields, "the admin has a write-only value field"
    new_value = distinctive_value()
    data = {**form.defaults(), secret_fields[0]: new_value, "_save": "Save"}
    response = client.post(change, data)
    assert response.status_code == 302, response.text[:2000]
    assert Token.objects.get(pk=token.pk).reveal() == new_value
    refused = distinctive_value()
    response = client.post(change, {**data, "key": "not a key", secret_fields[0]: refused})
    assert response.status_code == 200
    scan.add("admin change refused", response)
    scan.add("admin change after new value", client.get(change))
    values += [new_value, refused]


def admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def _request_for(user):
    from django.test import RequestFactory

    request = RequestFactory().get("/admin/")
    request.user = user
    return request


def exercise_resolve(world: World, scan: Scan, tmp_path: Path) -> None:
    if "resolve" not in get_commands():
        return
    template = tmp_path / "app.env"
    template.write_text("A=$Secret{ACME_TOKEN_0}\nB=$Secret{ACME_TOKEN_1}\nC=$Secret{UI_CREATED}\n")
    common = ["--workspace", "acme", "--environment", "production"]
    for extra in (["--check"], ["--check", "--format", "json"], []):
        # Without --check, stdout is the resolved file (bytes): the values belong there, and
        # the run fails anyway (UI_CREATED is revoked), so nothing may be written at all.
        out, err = (io.StringIO() if extra else io.BytesIO()), io.StringIO()
        with pytest.raises(CommandError) as failed:
            call_command("resolve", str(template), *common, *extra, stdout=out, stderr=err)
        scan.add(f"resolve {extra} error", str(failed.value))
        scan.add(f"resolve {extra} stdout", out.getvalue())
        scan.add(f"resolve {extra} stderr", err.getvalue())
    ok = tmp_path / "ok.env"
    ok.write_text("A=$Secret{ACME_TOKEN_1}\n")
    out, err = io.BytesIO(), io.StringIO()
    call_command("resolve", str(ok), *common, "--app", "checkout", stdout=out, stderr=err)
    assert out.getvalue() == f"A={world.a.values[1]}\n".encode(), "control: resolve sees values"
    scan.add("resolve success stderr", err.getvalue())


def exercise_mail(scan: Scan) -> None:
    get_user_model().objects.create_user("mailer", "mailer@example.com", "a-real-password-1")
    Client().post(reverse("password_reset"), {"email": "mailer@example.com"})
    assert mail.outbox, "control: a password-reset mail was sent"
    invitations = [m for m in mail.outbox if " invited you to " in m.subject]
    assert invitations, "control: invitation mails were sent (their link is where a key belongs)"
    for message in mail.outbox:
        if message not in invitations:
            scan.add(f"mail {message.subject}", message.message().as_string())


def exercise_accounts(world: World, scan: Scan, values: list[str], codes: list[str]) -> None:
    """Invitations (invite, resend, open, sign up, reuse) and two-factor (set-up, sign-in with a
    code and a recovery code, wrong codes): the key, the TOTP secret and the recovery codes may
    show only in the one response that displays them (and the invitation mail)."""
    import re

    import pyotp

    from tests.helpers import invitation_link

    values += [world.a.invitation_key, world.b.invitation_key]
    owner = world.client("owner")
    invite = reverse("invitation_create", args=["acme"])
    response = owner.post(invite, {"email": "scan@example.com", "role": "viewer"}, headers=HTMX)
    assert "Invitation sent" in response.text  # the one display of the link: not scanned
    first = invitation_link(mail.outbox[-1])
    invitation = world.a.workspace.invitations.get(email="scan@example.com")
    resend = reverse("invitation_resend", args=["acme", invitation.pk])
    scan.add("invitation resend dialog", htmx(owner, resend))
    assert "Invitation resent" in owner.post(resend, headers=HTMX).text
    link = invitation_link(mail.outbox[-1])
    values += [path.rstrip("/").rsplit("/", 1)[1] for path in (first, link)]
    scan.add("invite form", htmx(owner, invite))
    scan.add("invite refused", owner.post(invite, {"email": "nope", "role": "viewer"}))
    scan.add("members with pending invitations", owner.get(reverse("members", args=["acme"])))
    scan.add("old invitation link", Client().get(first))
    newcomer = Client()
    scan.add("invitation link", newcomer.get(link))
    accept = reverse("invitation_accept")
    scan.add("invitation accept page", newcomer.get(accept))
    password = "scan-passphrase-that-is-long"
    refused = {"username": "scanned", "password1": password, "password2": "other-passphrase-x"}
    scan.add("invitation sign-up refused", newcomer.post(accept, refused))
    done = {"username": "scanned", "password1": password, "password2": password}
    response = newcomer.post(accept, done, follow=True)
    assert "Welcome to Acme" in response.text
    scan.add("invitation accepted, landing", response)
    reuse = Client()
    scan.add("invitation used again", reuse.get(link, follow=True))

    # Two-factor: set up through the pages.
    newcomer.post(reverse("login"), {"username": "scanned", "password": password})
    setup = reverse("mfa_activate_totp")
    page = newcomer.get(setup).text  # the one display of the secret: not scanned
    secret = re.search(r'id="authenticator-secret" type="text" value="([A-Z2-7]+)"', page)[1]
    values.append(secret)
    response = newcomer.post(setup, {"code": pyotp.TOTP(secret).now()})
    shown = newcomer.get(response["Location"]).text  # the one display of the codes
    codes += re.search(r'id="recovery-codes"[^>]*>([^<]*)</textarea>', shown)[1].split()
    assert len(codes) == 10
    scan.add("recovery codes after their display", newcomer.get(reverse("mfa_view_recovery_codes")))
    scan.add("account page with two-factor", newcomer.get(reverse("account")))
    scan.add("two-factor off dialog", newcomer.get(reverse("mfa_deactivate_totp")))
    scan.add("new recovery codes dialog", newcomer.get(reverse("mfa_generate_recovery_codes")))
    again = Client()
    again.post(reverse("login"), {"username": "scanned", "password": password})
    code_page = reverse("mfa_authenticate")
    scan.add("two-factor sign-in page", again.get(code_page))
    scan.add("two-factor wrong code", again.post(code_page, {"code": "000000"}))
    scan.add("two-factor recovery code", again.post(code_page, {"code": codes[0]}, follow=True))
    scan.add("signed in with a recovery code", again.get(reverse("account")))


def scan_cache(scan: Scan) -> None:
    """The shared cache's rows (the database cache, config/settings.py): each key, and each
    value as stored (base64 of a pickle) and decoded."""
    from accounts.models import SharedCacheEntry

    rows = list(SharedCacheEntry.objects.values_list("cache_key", "value"))
    assert rows, "control: the flows above used the cache (used codes, rate limits)"
    scan.add(
        "cache",
        b"\n".join(k.encode() + b" " + v.encode() + b" " + base64.b64decode(v) for k, v in rows),
    )


def scan_database(scan: Scan) -> None:
    connection.close()  # let SQLite checkpoint; PostgreSQL: make sure everything is visible
    if connection.vendor == "sqlite":
        path = Path(connection.settings_dict["NAME"])
        assert path.exists(), "the test database is a file"
        parts = [Path(f"{path}{suffix}") for suffix in ("", "-wal", "-journal", "-shm")]
        for part, content in read_from_another_process(p for p in parts if p.exists()).items():
            scan.add(f"sqlite file {part.name}", content)
        written = b"".join(
            content for name, content in scan.surfaces.items() if name.startswith("sqlite file")
        )
        assert b"ACME_TOKEN_1" in written, "control: the committed rows are in the files"
    elif connection.vendor == "postgresql":
        pg_dump = shutil.which("pg_dump")
        assert pg_dump, "pg_dump is needed to scan PostgreSQL"
        db = connection.settings_dict
        env = {**os.environ, "PGPASSWORD": db.get("PASSWORD") or ""}
        dump = subprocess.run(
            [
                pg_dump,
                "-h",
                db.get("HOST") or "127.0.0.1",
                "-p",
                str(db.get("PORT") or 5432),
                "-U",
                db.get("USER") or "postgres",
                "--data-only",
                db["NAME"],
            ],
            capture_output=True,
            env=env,
            check=True,
            timeout=120,
        )
        assert b"COPY public.tokens_token" in dump.stdout
        assert b"ACME_TOKEN_1" in dump.stdout, "control: the committed rows are in the dump"
        scan.add("pg_dump", dump.stdout)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_no_value_on_any_surface(caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django.db.backends")
    connection.force_debug_cursor = True  # log every SQL statement with its parameters
    scan = Scan()
    try:
        world = build_world(tokens_per_workspace=2)
        values = list(world.values) + [world.a.access_key_secret, world.b.access_key_secret]
        codes: list[str] = []  # recovery codes: 8 digits, searched in text surfaces only
        exercise_token_pages(world, scan, values)
        exercise_access_key_pages(world, scan, values)
        exercise_workload_identity(world, scan, values, tmp_path)
        exercise_resolve(world, scan, tmp_path)  # first, so Activity shows its audit event
        exercise_accounts(world, scan, values, codes)
        exercise_admin(world, scan, values)
        exercise_every_page(world, scan)
        exercise_mail(scan)
    finally:
        connection.force_debug_cursor = False
    assert any("INSERT INTO" in r.getMessage() for r in caplog.records), "SQL was logged"
    scan.add("captured logs", caplog.text)
    scan.add(
        "log records",
        "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records),
    )
    activity = scan.surfaces["owner GET /w/acme/tokens/activity/"]
    assert "UI_CREATED" in activity, "control: the Activity tab lists the events scanned"
    if "resolve" in get_commands():
        assert "Resolved" in activity
    assert "ui-htmx" in activity and "Access key revoked" in activity, "control: key events"
    assert "ui-htmx" in scan.surfaces["viewer GET /w/acme/tokens/access-keys/"]
    assert "Invitation accepted" in activity and "Member invited" in activity
    scan_cache(scan)
    scan_database(scan)

    hits = scan.hits(values) + scan.hits(codes, text_only=True)

    print(
        f"\nleak scan: {len(values)} values x {len(scan.surfaces)} surfaces = "
        f"{len(values) * len(scan.surfaces)} searches, {len(hits)} hits"
    )
    assert len(values) >= 12
    assert len(scan.surfaces) >= 200
    if hits:  # where: a little context around the first hit in the logs
        log = caplog.text
        for value in values:
            at = log.lower().find(value.lower())
            if at >= 0:
                print("CONTEXT:", log[max(0, at - 600) : at + 100])
                break
    assert not hits, "\n".join(hits[:20])
    master_key_hits = [
        name
        for name, content in scan.surfaces.items()
        if MASTER_KEY_B64.encode() in (content if isinstance(content, bytes) else content.encode())
    ]
    assert not master_key_hits, f"the master key appears in {master_key_hits}"


@pytest.mark.django_db
def test_values_cannot_be_searched_for():
    """Searching the table or the admin for a value finds nothing: values are not indexed.
    (The query itself is echoed back in the search box, which is why the scan above never
    searches for a value.)"""
    world = build_world(tokens_per_workspace=1)
    value = world.a.values[0]
    table = world.client("owner").get(reverse("tokens:list", args=["acme"]) + f"?q={value}")
    assert table.status_code == 200
    assert "ACME_TOKEN_0" not in table.text
    assert "ACME_TOKEN_0" in world.client("owner").get(reverse("tokens:list", args=["acme"])).text
    root = get_user_model().objects.create_superuser("root", "root@example.com", None)
    client = Client()
    client.force_login(root)
    changelist = client.get(reverse("admin:tokens_token_changelist") + f"?q={value}")
    assert changelist.status_code == 200
    assert "ACME_TOKEN_0" not in changelist.text
    assert "0 tokens" in changelist.text


# --- server errors -------------------------------------------------------------------------


def post_failing_create(monkeypatch, client: Client, value: str):
    """Post a valid new token while encryption fails deep inside the create path (no frame of
    the test's own in between: `None.encrypt` raises AttributeError in crypto._seal)."""
    url = reverse("tokens:create", args=["acme"])
    form = form_on(client, url)
    data = {**form.defaults(), "key": "WILL_FAIL", "value": value}
    data["environments"] = form.choices("environments")
    monkeypatch.setattr(crypto, "AESGCM", lambda key: None)
    return client.post(url, data)


@pytest.mark.django_db
@override_settings(ADMINS=["ops@example.com"])
def test_server_error_with_debug_off_reveals_no_value(caplog, monkeypatch):
    world = build_world(tokens_per_workspace=1)
    client = world.client("editor")
    client.raise_request_exception = False
    value = distinctive_value()
    caplog.set_level(logging.DEBUG)

    response = post_failing_create(monkeypatch, client, value)

    assert response.status_code == 500
    assert "Something went wrong on our side" in response.text, "our styled 500 page"
    scan = Scan()
    scan.add("500 page", response)
    scan.add("logs", caplog.text)
    assert "Traceback" in caplog.text, "the error was logged with its traceback"
    assert mail.outbox, "ADMINS got an error report"
    for message in mail.outbox:
        scan.add("error mail", message.message().as_string())
        assert "WILL_FAIL" in message.body, "control: the report shows the other POST fields"
        assert "'value'" in message.body
    assert not scan.hits([value])


@pytest.mark.django_db
def test_technical_500_with_debug_on_hides_the_value(monkeypatch):
    world = build_world(tokens_per_workspace=1)
    client = world.client("editor")
    client.raise_request_exception = False
    value = distinctive_value()

    with override_settings(DEBUG=True):
        response = post_failing_create(monkeypatch, client, value)

    assert response.status_code == 500
    page = response.content.decode()
    assert "AttributeError" in page, "Django's technical 500 page"
    assert "WILL_FAIL" in page, "control: it shows the other POST fields"
    assert "********************" in page, "the value is replaced by stars"
    assert MASTER_KEY_B64 not in page, "settings holding keys are hidden"
    scan = Scan()
    scan.add("technical 500", page)
    assert not scan.hits([value]), "the value is in the DEBUG page (POST data or frame variables)"


# --- a token's own page: History, usage and the dialogs -----------------------------------


@pytest.mark.django_db
def test_history_usage_and_dialogs_show_no_value_nor_ciphertext(workspace, role_client):
    """A token with five versions (one restored, one destroyed) and usage in two contexts: its
    page, History's dialogs and the Revoke/Delete dialogs for every role. Hints follow the UI's
    rule: History and its dialogs list each kept version's hint (that is how a person tells
    versions apart); the Revoke and Delete dialogs and the table show the current one only; a
    destroyed version's hint is gone everywhere."""
    values = [distinctive_value() for _ in range(4)]
    token = TokenFactory(workspace=workspace, key="ROTATED", value=values[0])
    for value in values[1:]:
        token.set_value(value)
    token.restore_version(1)  # version 4 holds values[1] again
    token.destroy_version(0)
    production = workspace.environments.get(slug="production")
    checkout = AppFactory(workspace=workspace, name="Checkout", slug="checkout")
    for app in (None, checkout):
        resolve_text(
            "$Secret{ROTATED}", UseContext(production, app=app), source="ci.yaml", actor="deployer"
        )
    token.refresh_from_db()
    assert token.reveal() == values[1]

    scan = Scan()
    for role in ("owner", "editor", "viewer"):
        client = role_client[role]
        for name in ("detail", "restore", "destroy_version", "revoke", "delete"):
            address = reverse(f"tokens:{name}", args=[workspace.slug, token.pk])
            scan.add(f"{role} {name}", client.get(address))
            scan.add(f"{role} {name} (htmx)", htmx(client, address))
        scan.add(f"{role} table", client.get(reverse("tokens:list", args=[workspace.slug])))
    page = scan.surfaces["viewer detail"]
    assert "Checkout · Production · deployer · resolve of ci.yaml" in page, "control: usage"
    assert "Restored from version 2" in page and "Destroyed by" in page, "control: History"
    assert not scan.hits(values)

    blobs = [bytes(token.ciphertext)] + [bytes(v.ciphertext) for v in token.versions.all()]
    for blob in filter(None, blobs):
        for form in (blob.hex(), base64.b64encode(blob).decode()):
            assert not [n for n, c in scan.surfaces.items() if form[:24].lower() in c.lower()]

    hint = lambda value: f"••••{value[-4:]}"  # noqa: E731
    destroyed, current, old = hint(values[0]), hint(values[1]), [hint(v) for v in values[2:]]
    assert not [name for name, content in scan.surfaces.items() if destroyed in content]
    for name, content in scan.surfaces.items():
        if name.split()[1] in ("revoke", "delete", "table"):
            assert not [h for h in old if h in content], f"an old version's hint in {name}"
    assert current in page and all(h in page for h in old), "control: History lists hints"
