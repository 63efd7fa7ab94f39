"""Create Token (`tokens:create`): the modal form, with and without htmx, typed or from a file."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from tests.factories import EnvironmentFactory, ProductFactory
from tests.helpers import (
    FILE_NAME,
    FIVE_MB,
    FIVE_MB_MESSAGE,
    HTMX,
    MANAGERS,
    PEM,
    PEM_LINE,
    SECRET,
    create_data,
    pem_file,
    text,
    triggers,
    url,
)
from tokens.models import Token

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("role", MANAGERS)
def test_create_form_has_the_documents_labels_and_groups(workspace, role_client, role):
    response = role_client[role].get(url("create", workspace), headers=HTMX)
    page = text(response)
    assert response.status_code == 200
    assert "<html" not in page
    for label in ("Token Key", "Token Value", "Description", "Type", "Expiry Date", "Period"):
        assert f">{label}<" in page
    for legend in ("Products", "Apps", "Environments"):
        assert f'<legend class="form-label">{legend}' in page
    for heading in ("Expiry", "Scope"):
        assert f"</i> {heading}</h2>" in page
    # The environments come right under Key and Type, in sight as the modal opens, none
    # chosen for the user, and a line says so.
    assert page.index('<legend class="form-label">Environments') < page.index(">Token Value<")
    assert " checked" not in page.split('<legend class="form-label">Environments')[1][:2000]
    assert "No environment chosen yet: choose at least one." in page
    assert "placeholder=" not in page  # none that could pass for a typed value
    for option in ("Credential", "API Key", "Bearer Token", "OAuth Token"):
        assert f">{option}</option>" in page
    assert "Production</label>" in page and "Sandbox</label>" in page
    assert 'type="password" name="value"' in page
    assert 'autocomplete="new-password"' in page
    assert "data-toggle-password" in page
    assert '<button type="submit" class="btn btn-primary">Create Token</button>' in page
    assert "If both fields are left empty, the token will never expire." in page


def test_create_form_is_a_whole_page_without_javascript(workspace, owner_client):
    page = text(owner_client.get(url("create", workspace)))
    assert "<html" in page and "Create Token" in page
    assert f'href="{url("list", workspace)}"' in page  # Cancel goes back to the table


@pytest.mark.parametrize("role", MANAGERS)
def test_create_with_htmx_closes_the_modal_and_refreshes_the_table(workspace, role_client, role):
    product = ProductFactory(workspace=workspace, name="Payments")
    response = role_client[role].post(
        url("create", workspace),
        create_data(workspace, products=[product.pk], period="custom", period_custom="45"),
        headers=HTMX,
    )
    assert response.status_code == 204
    token = Token.objects.get(key="PAYMENT_API_KEY")
    assert triggers(response) == {
        "tokensChanged": {"id": str(token.pk)},
        "closeModal": {},
        "showToast": {
            "message": "Token PAYMENT_API_KEY created. Reference it as $Secret{PAYMENT_API_KEY}.",
            "level": "success",
        },
    }
    assert token.reveal() == SECRET
    assert token.period_days == 45
    assert list(token.products.all()) == [product]
    assert token.created_by == role_client[role].user


def test_create_without_javascript_redirects_with_a_message(workspace, owner_client):
    response = owner_client.post(url("create", workspace), create_data(workspace))
    token = Token.objects.get(key="PAYMENT_API_KEY")
    assert response.status_code == 302
    assert response["Location"] == url("list", workspace, highlight=token.pk)
    page = text(owner_client.get(response["Location"]))
    assert "Token PAYMENT_API_KEY created." in page
    assert "row-highlight" in page


def test_invalid_create_shows_errors_in_the_modal_keeping_inputs_but_not_the_value(
    workspace, owner_client
):
    response = owner_client.post(
        url("create", workspace),
        create_data(workspace, key="bad key!", description="Keep me", environments=[]),
        headers=HTMX,
    )
    page = text(response)
    assert response.status_code == 200
    assert "<html" not in page
    assert "A Token Key starts with a letter or underscore" in page
    assert "Choose at least one environment." in page
    assert 'value="bad key!"' in page
    assert "Keep me" in page
    assert SECRET not in page
    assert "the value you typed was not sent back" in page
    assert not Token.objects.exists()


def test_a_key_already_valid_in_the_environment_is_explained(workspace, owner_client, token):
    response = owner_client.post(
        url("create", workspace), create_data(workspace, key="STRIPE_SECRET"), headers=HTMX
    )
    assert (
        "STRIPE_SECRET is already valid in Production and Sandbox (every product and app); "
        "choose other environments or narrow the scope."
    ) in text(response)
    assert SECRET not in text(response)
    assert Token.objects.count() == 1


def test_past_expiry_date_is_explained(workspace, owner_client):
    yesterday = (timezone.now().date() - dt.timedelta(days=1)).isoformat()
    response = owner_client.post(
        url("create", workspace), create_data(workspace, expiry_date=yesterday), headers=HTMX
    )
    assert "The Expiry Date must be in the future" in text(response)
    assert not Token.objects.exists()


def test_environment_of_another_workspace_is_rejected(workspace, other_workspace, owner_client):
    foreign = EnvironmentFactory(workspace=other_workspace)
    response = owner_client.post(
        url("create", workspace), create_data(workspace, environments=[foreign.pk]), headers=HTMX
    )
    assert response.status_code == 200
    assert "Select a valid choice." in text(response)
    assert not Token.objects.exists()


# --- the value from a file -------------------------------------------------------------------


def test_create_form_offers_a_file_and_posts_multipart(workspace, owner_client):
    page = text(owner_client.get(url("create", workspace), headers=HTMX))
    assert ">Or load the value from a file<" in page
    assert 'type="file" name="value_file" class="form-control"' in page
    assert 'enctype="multipart/form-data"' in page
    assert 'hx-encoding="multipart/form-data"' in page
    assert "the file&#x27;s exact contents become the value" in page


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_create_from_a_pem_file_keeps_its_exact_bytes(workspace, owner_client, headers):
    response = owner_client.post(
        url("create", workspace),
        {**create_data(workspace, value=""), "value_file": pem_file()},
        headers=headers,
    )
    assert response.status_code == (204 if headers else 302)
    token = Token.objects.get(key="PAYMENT_API_KEY")
    assert token.reveal().encode() == PEM
    assert PEM_LINE not in text(response) and FILE_NAME not in text(response)


@pytest.mark.parametrize(
    ("value", "content", "message"),
    [
        (SECRET, PEM, "Type a value or choose a file, not both."),
        ("", b"k" * 65_537, "The value is 65,537 bytes; the limit is 64 KiB (65,536 bytes)."),
        ("", b"-----BEGIN\xff\xfe-----\n", "The file must be UTF-8 text."),
        ("", b"", "The file is empty."),
    ],
    ids=["both", "oversize", "not-utf8", "empty"],
)
def test_a_bad_file_is_explained_next_to_it_and_nothing_is_stored(
    workspace, owner_client, value, content, message
):
    response = owner_client.post(
        url("create", workspace),
        {**create_data(workspace, value=value), "value_file": pem_file(content)},
        headers=HTMX,
    )
    page = text(response)
    assert response.status_code == 200
    assert f'<div class="invalid-feedback d-block" id="id_value_file_error">{message}</div>' in page
    assert "Enter the token value." not in page
    assert FILE_NAME not in page and PEM_LINE not in page and SECRET not in page
    assert not Token.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditAction.CREATED).exists()


def test_a_good_file_in_an_invalid_form_is_asked_for_again(workspace, owner_client):
    response = owner_client.post(
        url("create", workspace),
        {**create_data(workspace, value="", environments=[]), "value_file": pem_file()},
        headers=HTMX,
    )
    page = text(response)
    assert "Choose at least one environment." in page
    assert "the file you chose was not sent back to the browser. Please choose it again." in page
    assert 'type="file" name="value_file" class="form-control"' in page
    assert FILE_NAME not in page and PEM_LINE not in page
    assert not Token.objects.exists()


def test_a_5_mb_file_is_refused_with_its_real_size_and_never_held(
    workspace, owner_client, upload_peak
):
    response = owner_client.post(
        url("create", workspace),
        {**create_data(workspace, value=""), "value_file": pem_file(b"k" * FIVE_MB)},
        headers=HTMX,
    )
    page = text(response)
    assert response.status_code == 200
    assert (
        f'<div class="invalid-feedback d-block" id="id_value_file_error">{FIVE_MB_MESSAGE}</div>'
        in page
    )
    assert "Enter the token value." not in page and FILE_NAME not in page
    assert not Token.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditAction.CREATED).exists()
    assert upload_peak["chunks"] > 1  # the file went through the handler, chunk by chunk
    assert 0 < upload_peak["kept"] <= 64 * 1024
