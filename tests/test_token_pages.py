"""What every view of the Tokens pages promises alike: the table, the Activity tab, create, edit,
revoke and delete.

Sign-in first, 404 for outsiders and for other workspaces' tokens, 403 for viewers on every
change, never cached; and a submitted value or file never comes back to the browser.
"""

from __future__ import annotations

import json
import uuid

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from tests.factories import TokenFactory
from tests.helpers import (
    FILE_NAME,
    HTMX,
    PEM,
    PEM_LINE,
    SECRET,
    create_data,
    edit_data,
    pem_file,
    url,
)
from tokens.models import Token, TokenStatus

pytestmark = pytest.mark.django_db


# --- who may see what ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["list", "audit:activity", "create"])
def test_anonymous_users_are_sent_to_sign_in(workspace, client, name):
    response = client.get(url(name, workspace))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("name", ["edit", "revoke", "delete"])
def test_anonymous_users_are_sent_to_sign_in_from_token_pages(workspace, client, token, name):
    for method in (client.get, client.post):
        response = method(url(name, workspace, token))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("name", ["list", "audit:activity", "create"])
def test_outsiders_get_404(workspace, outsider_client, name):
    assert outsider_client.get(url(name, workspace)).status_code == 404
    assert outsider_client.get(url(name, workspace), headers=HTMX).status_code == 404


@pytest.mark.parametrize("name", ["edit", "revoke", "delete"])
def test_outsiders_get_404_for_tokens_and_nothing_changes(workspace, outsider_client, token, name):
    assert outsider_client.get(url(name, workspace, token)).status_code == 404
    response = outsider_client.post(url(name, workspace, token), {"confirm_key": token.key})
    assert response.status_code == 404
    token.refresh_from_db()
    assert token.status == TokenStatus.ACTIVE


@pytest.mark.parametrize("name", ["edit", "revoke", "delete"])
def test_a_token_of_another_workspace_is_404_through_ones_own_workspace(
    workspace, other_workspace, owner_client, name
):
    foreign = TokenFactory(workspace=other_workspace, key="FOREIGN")
    path = reverse(f"tokens:{name}", args=[workspace.slug, foreign.pk])
    assert owner_client.get(path).status_code == 404
    assert owner_client.post(path, {"confirm_key": "FOREIGN"}).status_code == 404
    assert Token.objects.filter(pk=foreign.pk, status=TokenStatus.ACTIVE).exists()


def test_an_unknown_token_is_404(workspace, owner_client):
    path = reverse("tokens:edit", args=[workspace.slug, uuid.uuid4()])
    assert owner_client.get(path).status_code == 404


@pytest.mark.parametrize("name", ["create", "edit", "revoke", "delete"])
def test_viewers_get_403_and_nothing_changes(workspace, viewer_client, token, name):
    path = url(name, workspace) if name == "create" else url(name, workspace, token)
    assert viewer_client.get(path).status_code == 403
    assert viewer_client.get(path, headers=HTMX).status_code == 403
    post = create_data(workspace, key="NEW_ONE") if name == "create" else {"confirm_key": token.key}
    assert viewer_client.post(path, post).status_code == 403
    assert list(Token.objects.values_list("key", "status")) == [("STRIPE_SECRET", "active")]


# --- never cached ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["list", "audit:activity", "create"])
def test_token_pages_are_never_cached_and_vary_on_htmx(workspace, owner_client, name):
    response = owner_client.get(url(name, workspace))
    assert "no-store" in response["Cache-Control"]
    assert "HX-Request" in response["Vary"]


@pytest.mark.parametrize("name", ["edit", "revoke", "delete"])
def test_token_dialogs_are_never_cached(workspace, owner_client, token, name):
    response = owner_client.get(url(name, workspace, token), headers=HTMX)
    assert "no-store" in response["Cache-Control"]
    assert "HX-Request" in response["Vary"]


# --- the value never comes back --------------------------------------------------------------


def test_submitted_values_never_reach_the_browser(workspace, owner_client: Client):
    """Every response after a value is submitted, valid or not, with and without htmx."""
    values = [f"never-echo-{n}-{uuid.uuid4().hex}" for n in range(6)]
    responses = []
    for headers in ({}, HTMX):
        responses.append(
            owner_client.post(
                url("create", workspace),
                create_data(workspace, key="bad key", value=values[0]),
                headers=headers,
            )
        )
        responses.append(
            owner_client.post(
                url("create", workspace),
                create_data(workspace, value="x" * 70_000 + values[1]),
                headers=headers,
            )
        )
    owner_client.post(url("create", workspace), create_data(workspace, value=values[2]))
    token = Token.objects.get(key="PAYMENT_API_KEY")
    responses.append(
        owner_client.post(
            url("edit", workspace, token),
            edit_data(token, value=values[3], environments=[]),
            headers=HTMX,
        )
    )
    responses.append(
        owner_client.post(url("edit", workspace, token), edit_data(token, value=values[4]))
    )
    for name in ("list", "audit:activity"):
        responses.append(owner_client.get(url(name, workspace)))
        responses.append(owner_client.get(url(name, workspace), headers=HTMX))
    for name in ("edit", "revoke", "delete"):
        responses.append(owner_client.get(url(name, workspace, token)))
        responses.append(owner_client.get(url(name, workspace, token), headers=HTMX))
    for response in responses:
        body = response.content.decode() + json.dumps(dict(response.headers))
        for value in values[:5]:
            assert value not in body
    token.refresh_from_db()
    assert token.reveal() == values[4]  # the last edit did go through


def test_file_contents_and_name_never_reach_the_browser(workspace, owner_client):
    """Every response to a request carrying a file, valid or not, with and without htmx."""
    responses = []
    for headers in ({}, HTMX):
        for overrides in ({"key": "bad key"}, {"value": SECRET}, {"environments": []}):
            responses.append(
                owner_client.post(
                    url("create", workspace),
                    {
                        **create_data(workspace, **{"value": "", **overrides}),
                        "value_file": pem_file(),
                    },
                    headers=headers,
                )
            )
    owner_client.post(
        url("create", workspace), {**create_data(workspace, value=""), "value_file": pem_file()}
    )
    token = Token.objects.get(key="PAYMENT_API_KEY")
    for headers in ({}, HTMX):
        responses.append(
            owner_client.post(
                url("edit", workspace, token),
                {**edit_data(token, environments=[]), "value_file": pem_file()},
                headers=headers,
            )
        )
        responses.append(
            owner_client.post(
                url("edit", workspace, token),
                {**edit_data(token), "value_file": pem_file()},
                headers=headers,
            )
        )
    for name in ("list", "audit:activity"):
        responses.append(owner_client.get(url(name, workspace), headers=HTMX))
    responses.append(owner_client.get(url("edit", workspace, token), headers=HTMX))
    for response in responses:
        body = response.content.decode() + json.dumps(dict(response.headers))
        assert PEM_LINE not in body
        assert FILE_NAME not in body
        assert "BEGIN EC PRIVATE KEY" not in body
    assert token.reveal().encode() == PEM
    assert not AuditEvent.objects.filter(detail__icontains="PRIVATE").exists()
