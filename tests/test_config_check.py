"""Check a configuration (`tokens:check`): every reference that would fail, per environment, and
why; never a value, and the configuration is not sent back."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from audit.models import AuditEvent
from tests.factories import AppFactory, TokenFactory
from tests.helpers import ROLES, selected_tab, text, url
from tokens.models import Token

pytestmark = pytest.mark.django_db

LIVE = "sk_live_check_0123456789abcdef"
TEST = "sk_test_check_0123456789abcdef"
CONFIG = (
    "stripe: $Secret{STRIPE_SECRET}\n"
    "db: $Secret{DB_PASSWORD}\n"
    "missing: $Secret{NOWHERE}\n"
    "broken: $Secret{not a key}\n"
    "other_secret: hunter2-not-a-token-value\n"
)


def env(workspace, slug: str):
    return workspace.environments.get(slug=slug)


@pytest.fixture
def tokens(workspace):
    TokenFactory(
        workspace=workspace,
        key="STRIPE_SECRET",
        value=LIVE,
        environments=[env(workspace, "production")],
    )
    TokenFactory(
        workspace=workspace,
        key="STRIPE_SECRET",
        value=TEST,
        environments=[env(workspace, "sandbox")],
    )
    TokenFactory(
        workspace=workspace, key="DB_PASSWORD", environments=[env(workspace, "production")]
    )


def results(page: str) -> dict[str, list[tuple[str, str, str]]]:
    """Environment name -> (where, reference, reason) of each failing reference."""
    found = {}
    for name, body in re.findall(r'<h3 class="h6[^"]*">([^:<]+):(.*?)</div>', page, re.S):
        rows = re.findall(
            r'<tr><td[^>]*>([^<]+)</td><td[^>]*><span class="token-key" title="([^"]+)">.*?</span>'
            r"</td><td[^>]*>([^<]+)</td></tr>",
            body,
        )
        found[name.strip()] = rows
    return found


@pytest.mark.parametrize("role", ROLES)
def test_every_member_may_check(workspace, role_client, tokens, role):
    client = role_client[role]
    page = text(client.get(url("check", workspace)))
    assert "<h1>Check a configuration</h1>" in page
    assert selected_tab(page, url("compare", workspace))
    assert f'href="{url("check", workspace)}"' in text(client.get(url("compare", workspace)))
    response = client.post(url("check", workspace), {"text": CONFIG})
    assert response.status_code == 200


def test_each_environment_lists_what_would_fail_and_why(workspace, owner_client, tokens):
    page = text(owner_client.post(url("check", workspace), {"text": CONFIG}))
    found = results(page)
    assert [ref for _, ref, _ in found["Production"]] == ["$Secret{NOWHERE}", "$Secret{not a key}"]
    assert [ref for _, ref, _ in found["Sandbox"]] == [
        "$Secret{DB_PASSWORD}",
        "$Secret{NOWHERE}",
        "$Secret{not a key}",
    ]
    assert found["Sandbox"][0][0] == "line 2, column 5"  # not "2:5": it would read as a time
    assert "malformed reference" in page


def test_no_value_and_not_the_configuration_comes_back(workspace, owner_client, tokens):
    page = text(owner_client.post(url("check", workspace), {"text": CONFIG}))
    for secret in (LIVE, TEST, "hunter2", "cdef"):
        assert secret not in page


def test_checking_changes_nothing(workspace, owner_client, tokens):
    events = AuditEvent.objects.count()
    owner_client.post(url("check", workspace), {"text": CONFIG})
    assert AuditEvent.objects.count() == events
    assert not Token.objects.filter(last_used_at__isnull=False).exists()


def test_a_scoped_token_fails_without_its_app_and_passes_with_it(workspace, owner_client):
    checkout = AppFactory(workspace=workspace, name="Checkout")
    TokenFactory(workspace=workspace, key="SCOPED", apps=[checkout])
    page = text(owner_client.post(url("check", workspace), {"text": "$Secret{SCOPED}"}))
    assert "not in scope: no product or app given" in page
    page = text(
        owner_client.post(url("check", workspace), {"text": "$Secret{SCOPED}", "app": checkout.pk})
    )
    assert "Production: <span" in page and "every reference resolves" in page
    assert "reference would fail" not in page


def test_a_file_is_checked_too(workspace, owner_client, tokens):
    upload = SimpleUploadedFile("app.yaml", CONFIG.encode(), content_type="text/yaml")
    page = text(owner_client.post(url("check", workspace), {"config_file": upload}))
    assert "$Secret{NOWHERE}" in page and "hunter2" not in page


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "Paste a configuration or choose a file."),
        ({"text": "x" * (1024 * 1024 + 1)}, "The configuration is larger than 1 MiB."),
        ({"text": "a", "product": "999999"}, "Select a valid choice."),
    ],
)
def test_bad_input_is_explained(workspace, owner_client, data, message):
    response = owner_client.post(url("check", workspace), data)
    assert response.status_code == 200
    assert message in text(response)
    assert "Results" not in text(response)


def test_a_binary_file_is_explained(workspace, owner_client):
    upload = SimpleUploadedFile(
        "x.bin", b"\xff\xfe\x00bad", content_type="application/octet-stream"
    )
    page = text(owner_client.post(url("check", workspace), {"config_file": upload}))
    assert "The file is not UTF-8 text." in page


def test_outsiders_get_404(workspace, outsider_client):
    assert outsider_client.post(url("check", workspace), {"text": CONFIG}).status_code == 404
