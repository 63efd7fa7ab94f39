"""No log line holds the key of a mailed link (invitation, password reset, email confirmation):
the real gunicorn's log, in both formats, after each link is used; and every URL of the URLconf
that takes a key is one the redaction covers (config/log_redaction.py)."""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from config.log_redaction import REDACTED, RedactSecretPaths, redact
from tests.api_server import free_port, server_environment

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SAMPLE_KEY = "Zq7SampleKey-9xW:42"


def key_patterns(patterns, prefix: str = "") -> list[tuple[str, str]]:
    """(name, route) of every named URL whose pattern captures a `key`."""
    found = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            found += key_patterns(pattern.url_patterns, prefix + str(pattern.pattern))
        elif (
            isinstance(pattern, URLPattern)
            and pattern.name
            and "key" in pattern.pattern.regex.groupindex
        ):
            found.append((pattern.name, prefix + str(pattern.pattern)))
    return found


def test_every_url_that_takes_a_key_is_redacted():
    found = key_patterns(get_resolver().url_patterns)
    names = {name for name, _route in found}
    assert {"invitation_open", "account_reset_password_from_key", "account_confirm_email"} <= names
    for name, route in found:
        kwargs = {"key": SAMPLE_KEY} | ({"uidb36": "3"} if "uidb36" in route else {})
        path = reverse(name, kwargs=kwargs)
        for text in (path, f"GET {path}?next=/ HTTP/1.1", f"Not Found: {path}extra/"):
            assert SAMPLE_KEY not in redact(text) and REDACTED in redact(text), (name, text)


@pytest.mark.parametrize(
    "path",
    [
        "/invitations/accept/",
        "/accounts/password/reset/key/done/",
        "/accounts/password/reset/key/3-set-password/",
        "/accounts/confirm-email/",
        "/w/acme/tokens/",
    ],
)
def test_pages_without_a_key_are_logged_as_they_are(path):
    assert redact(path) == path


def test_the_filter_writes_the_redacted_message_and_drops_the_arguments():
    record = logging.LogRecord(
        "django.request",
        logging.WARNING,
        __file__,
        1,
        "Not Found: %s",
        (f"/invitations/{SAMPLE_KEY}/x/",),
        None,
    )
    assert RedactSecretPaths().filter(record)
    assert record.getMessage() == f"Not Found: /invitations/{REDACTED}/x/"


def test_an_error_mail_to_admins_holds_no_key(settings, rf, mailoutbox):
    """A 500 on a link's URL: the mail's subject and report (request URL, META, referrer) carry
    the key nowhere."""
    from django.utils.log import AdminEmailHandler

    settings.ADMINS = ["ops@example.com"]
    path = f"/invitations/{SAMPLE_KEY}/"
    request = rf.get(path, HTTP_REFERER=f"https://coffer.example.com{path}")
    try:
        raise RuntimeError("the view failed")
    except RuntimeError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "django.request", logging.ERROR, __file__, 1, "Internal Server Error: %s", (path,), exc_info
    )
    record.request = request  # as django.request's log_response attaches it
    mailer = next(
        h for h in logging.getLogger("django").handlers if isinstance(h, AdminEmailHandler)
    )
    mailer.handle(record)
    (mail,) = mailoutbox
    sent = mail.subject + mail.body + "".join(str(content) for content, _ in mail.alternatives)
    assert "Internal Server Error" in mail.subject and REDACTED in sent, "control: the report"
    assert SAMPLE_KEY not in sent and "Zq7SampleKey" not in sent


SEED = r"""
from allauth.account.forms import default_token_generator
from allauth.account.models import EmailAddress, EmailConfirmationHMAC
from allauth.account.utils import user_pk_to_url_str
from django.contrib.auth import get_user_model
from accounts.models import Invitation
from workspaces.models import Workspace

user = get_user_model().objects.create_user("olivia", "olivia@example.com", "pw-olivia-1234")
workspace = Workspace.objects.create(name="Acme", slug="acme")
_row, invitation = Invitation.create(workspace, email="n@example.com", role="viewer", by=user)
address = EmailAddress.objects.create(user=user, email="new@example.com", verified=False)
confirmation = EmailConfirmationHMAC(address).key
reset = default_token_generator.make_token(user)  # after the address: the token covers it
print(user_pk_to_url_str(user), invitation, reset, confirmation)
"""


@contextlib.contextmanager
def gunicorn(tmp_path: Path, log_format: str):
    (tmp_path / "staticfiles").mkdir(exist_ok=True)
    env = server_environment(tmp_path, COFFER_LOG_FORMAT=log_format, COFFER_LOG_LEVEL="INFO")
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "--no-input", "-v0"], cwd=ROOT, env=env, check=True
    )
    seeded = subprocess.run(
        [PYTHON, "-c", "import django; django.setup(); exec(open(0).read())"],
        input=SEED,
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    uid, *keys = seeded.stdout.split()
    port = free_port()
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [str(Path(PYTHON).with_name("gunicorn")), "config.wsgi"],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**env, "COFFER_BIND": f"127.0.0.1:{port}", "COFFER_WEB_WORKERS": "1"},
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    break
                assert server.poll() is None and time.monotonic() < deadline, "no gunicorn"
                time.sleep(0.1)
            yield port, uid, keys, log
        finally:
            server.terminate()
            server.wait(timeout=30)


def get(port: int, path: str, referer: str = "") -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers={"Referer": f"http://127.0.0.1:{port}{referer}"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


@pytest.mark.slow
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_the_gunicorn_log_holds_no_key_of_a_used_link(tmp_path, log_format):
    with gunicorn(tmp_path, log_format) as (port, uid, keys, log):
        invitation, reset, confirmation = keys
        links = {
            f"/invitations/{invitation}/": 302,  # on to /invitations/accept/
            f"/accounts/password/reset/key/{uid}-{reset}/": 302,  # on to .../set-password/
            f"/accounts/confirm-email/{confirmation}/": 200,
            f"/invitations/{invitation}": 301,  # a link missing its slash
            f"/invitations/{invitation}/extra/": 404,  # a damaged link: Django logs "Not Found"
        }
        for path, status in links.items():
            assert get(port, path, referer=path) == status, path
    output = log.read_text()

    if log_format == "json":
        entries = [json.loads(line) for line in output.splitlines()]
        paths = [entry.get("path") for entry in entries if entry["logger"] == "gunicorn.access"]
        assert f"/invitations/{REDACTED}/" in paths
        assert any(entry["logger"] == "django.request" for entry in entries)
    else:
        assert f"GET /invitations/{REDACTED}/ HTTP/1.1" in output
        assert f"Not Found: /invitations/{REDACTED}/extra/" in output
    assert output.count(REDACTED) >= len(links), "each use of a link is logged, redacted"
    for key in keys:
        assert key not in output and key[:12] not in output
