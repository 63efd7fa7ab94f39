"""Importing a malformed .env file: a bare secret line or the body of an unquoted multi-line PEM
key is reported by its line number only, never becomes a token named after the secret, and the
PEM value cut to its first line is refused, not imported truncated."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from audit.models import AuditEvent
from imports.models import PendingImport
from imports.parsing import BASE64_LINE, TRUNCATED_PEM, EntryState, parse_entries
from notifications.models import WebhookDelivery
from tests.factories import make_webhook
from tests.helpers import text
from tests.test_import import options, pending_of, preview_url
from tokens.models import Token

pytestmark = pytest.mark.django_db

# Letters and digits only, so that each reads as a valid Token Key to python-dotenv's parser.
BASE64_SECRET = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj"
PEM_BODY_1 = "MIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9OiJjRazXBZ1BjP5CE"
PEM_BODY_2 = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789bodyLineTwoSecretXyz"
BARE_SECRET = "sk_live_baresecretline7f3e9a1c"
SECRETS = [BASE64_SECRET, PEM_BODY_1, PEM_BODY_2, BARE_SECRET]

MALFORMED = (
    "API_KEY=ok-value-0123456789\n"  # line 1: the one good line
    f"{BASE64_SECRET}==\n"  # 2: python-dotenv reads KEY "MIIE…" with the value "="
    "PRIVATE_KEY=-----BEGIN PRIVATE KEY-----\n"  # 3: an unquoted PEM, cut to this line
    f"{PEM_BODY_1}\n"  # 4
    f"{PEM_BODY_2}=\n"  # 5: KEY "…Xyz" with an empty value
    "-----END PRIVATE KEY-----\n"  # 6
    f"{BARE_SECRET}\n"  # 7: a bare secret, a "key" with no value
)


def database_text() -> str:
    out = io.StringIO()
    call_command("dumpdata", stdout=out)
    return out.getvalue()


def test_malformed_lines_are_reported_by_line_number_only():
    entries = parse_entries(MALFORMED)
    assert [(e.line, e.key, e.state) for e in entries] == [
        (1, "API_KEY", EntryState.NEW),
        (2, "", EntryState.INVALID),
        (3, "PRIVATE_KEY", EntryState.INVALID),
        (4, "", EntryState.INVALID),
        (5, "", EntryState.INVALID),
        (6, "", EntryState.INVALID),
        (7, "", EntryState.INVALID),
    ]
    reasons = {e.line: e.reason for e in entries}
    assert reasons[2] == BASE64_LINE and reasons[3] == TRUNCATED_PEM
    assert all(e.value is None for e in entries if e.state is EntryState.INVALID)
    for secret in SECRETS:
        assert not any(secret in e.reason or secret in e.key for e in entries)


@pytest.mark.parametrize(
    ("value", "refused"),
    [
        ("-----BEGIN PRIVATE KEY-----", True),
        ('"-----BEGIN CERTIFICATE-----\nabc\n-----END PRIVATE KEY-----"', True),
        ('"-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----"', False),
        ("not-a-pem-----BEGIN", False),
    ],
)
def test_a_value_that_opens_a_pem_block_without_its_end_is_refused(value, refused):
    (entry,) = parse_entries(f"KEY={value}\n")
    assert (entry.state is EntryState.INVALID) is refused
    assert (entry.reason == TRUNCATED_PEM) is refused


def test_a_malformed_file_echoes_no_secret_and_imports_none_as_a_key(workspace, editor_client):
    make_webhook(workspace)
    pending, page = pending_of(editor_client, workspace, text=MALFORMED)
    assert "1 new, 0 already exist, 6 invalid" in page
    assert "Invalid: Not a KEY=VALUE line: it ends in = signs" in page
    assert "-----BEGIN …----- block without its -----END …----- line" in page
    response = editor_client.post(preview_url(workspace, pending), options(workspace))
    assert response.status_code == 302
    after = text(editor_client.get(response["Location"]))
    assert "Imported 1 new token, left out 6 invalid lines." in after

    assert list(Token.objects.values_list("key", flat=True)) == ["API_KEY"]
    assert not PendingImport.objects.exists()
    assert WebhookDelivery.objects.exists(), "control: the good line reached the webhook"
    surfaces = {
        "preview": page,
        "after": after,
        "database": database_text(),
        "audit": "\n".join(str(vars(event)) for event in AuditEvent.objects.all()),
    }
    leaked = {name: [s for s in SECRETS if s in surface] for name, surface in surfaces.items()}
    assert {name: found for name, found in leaked.items() if found} == {}
