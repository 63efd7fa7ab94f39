"""Editing a token (`tokens:edit`): prefilled but for the value, renames, values from files."""

from __future__ import annotations

import pytest

from tests.factories import ProductFactory, TokenFactory
from tests.helpers import (
    FILE_NAME,
    FIVE_MB,
    FIVE_MB_MESSAGE,
    HTMX,
    MANAGERS,
    PEM,
    PEM_LINE,
    SECRET,
    edit_data,
    pem_file,
    text,
    triggers,
    url,
)
from tokens.models import TokenType

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("role", MANAGERS)
def test_edit_form_is_prefilled_except_the_value(workspace, role_client, role):
    product = ProductFactory(workspace=workspace, name="Payments")
    token = TokenFactory(
        workspace=workspace,
        key="STRIPE_SECRET",
        value=SECRET,
        description="Live mode",
        type=TokenType.OAUTH_TOKEN,
        period_days=30,
        products=[product],
    )
    response = role_client[role].get(url("edit", workspace, token), headers=HTMX)
    page = text(response)
    assert response.status_code == 200
    assert 'value="STRIPE_SECRET"' in page
    assert "Live mode" in page
    assert '<option value="oauth_token" selected>' in page
    assert '<option value="30" selected>' in page
    assert f'value="{product.pk}" id="id_products_0" checked' in page
    assert SECRET not in page
    assert "Leave blank to keep the current value" in page
    assert "Changing the key breaks existing $Secret{STRIPE_SECRET} references." in page
    assert "Save changes" in page


def test_edit_with_blank_value_keeps_it(workspace, editor_client, token):
    response = editor_client.post(
        url("edit", workspace, token), edit_data(token, description="Rotated"), headers=HTMX
    )
    assert response.status_code == 204
    token.refresh_from_db()
    assert token.description == "Rotated"
    assert token.reveal() == SECRET
    assert triggers(response)["showToast"]["message"] == "Token STRIPE_SECRET saved."


def test_edit_with_a_new_value_replaces_it(workspace, editor_client, token):
    response = editor_client.post(
        url("edit", workspace, token), edit_data(token, value="brand-new-value-xyz"), headers=HTMX
    )
    assert response.status_code == 204
    token.refresh_from_db()
    assert token.reveal() == "brand-new-value-xyz"
    assert token.value_version == 1
    assert "brand-new-value-xyz" not in text(response)


def test_edit_with_no_change_says_so(workspace, editor_client, token):
    response = editor_client.post(url("edit", workspace, token), edit_data(token), headers=HTMX)
    assert triggers(response)["showToast"]["message"] == "Nothing changed in STRIPE_SECRET."


def test_renaming_warns_about_old_references(workspace, editor_client, token):
    response = editor_client.post(
        url("edit", workspace, token), edit_data(token, key="STRIPE_LIVE"), headers=HTMX
    )
    token.refresh_from_db()
    assert token.key == "STRIPE_LIVE"
    assert triggers(response)["showToast"]["message"] == (
        "Token STRIPE_SECRET renamed to STRIPE_LIVE: update any $Secret{STRIPE_SECRET} references."
    )


def test_invalid_rename_keeps_the_warning_visible(workspace, editor_client, token):
    response = editor_client.post(
        url("edit", workspace, token),
        edit_data(token, key="STRIPE_LIVE", environments=[], value="typed-again"),
        headers=HTMX,
    )
    page = text(response)
    assert "Choose at least one environment." in page
    assert "data-key-change-warning>" in page  # not hidden
    assert "will stop resolving" in page
    assert "typed-again" not in page
    token.refresh_from_db()
    assert token.key == "STRIPE_SECRET"


def test_edit_without_javascript_redirects(workspace, owner_client, token):
    response = owner_client.post(url("edit", workspace, token), edit_data(token, description="x"))
    assert response.status_code == 302
    assert response["Location"] == url("list", workspace, highlight=token.pk)


def test_revoked_tokens_cannot_be_edited(workspace, owner_client, token):
    token.revoke(by=None)
    full = owner_client.get(url("edit", workspace, token))
    assert full.status_code == 409
    assert "Revoked tokens cannot be edited." in text(full)
    modal = owner_client.get(url("edit", workspace, token), headers=HTMX)
    assert modal.status_code == 200  # htmx only swaps 2xx: the explanation shows in the modal
    assert "Revoked tokens cannot be edited." in text(modal)
    response = owner_client.post(url("edit", workspace, token), edit_data(token, description="x"))
    assert response.status_code == 409
    token.refresh_from_db()
    assert token.description == ""


# --- the value from a file -------------------------------------------------------------------


def test_edit_with_a_file_replaces_the_value_and_bumps_its_version(workspace, editor_client, token):
    response = editor_client.post(
        url("edit", workspace, token), {**edit_data(token), "value_file": pem_file()}, headers=HTMX
    )
    assert response.status_code == 204
    assert triggers(response)["showToast"]["message"] == "Token STRIPE_SECRET saved."
    token.refresh_from_db()
    assert token.reveal().encode() == PEM
    assert token.value_version == 1
    assert PEM_LINE not in text(response) and FILE_NAME not in text(response)


def test_a_5_mb_file_on_edit_is_refused_and_the_value_is_unchanged(
    workspace, editor_client, token, upload_peak
):
    response = editor_client.post(
        url("edit", workspace, token),
        {**edit_data(token), "value_file": pem_file(b"k" * FIVE_MB)},
        headers=HTMX,
    )
    assert response.status_code == 200
    assert FIVE_MB_MESSAGE in text(response)
    token.refresh_from_db()
    assert token.reveal() == SECRET
    assert token.value_version == 0
    assert upload_peak["kept"] <= 64 * 1024
