"""A token's page is where it is acted on: Edit, Revoke, Delete, Copy reference and Add for
another environment, by the Tokens table's rules (viewers copy only; a revoked token can only be
deleted), through the Tokens page's own dialogs, which come back to the token's page."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import TokenFactory
from tests.helpers import HTMX, MANAGERS, edit_data, event_sentences, text, triggers, url
from tokens.models import Token

pytestmark = pytest.mark.django_db

BACK = "?back=token"


def actions(page: str) -> dict[str, str]:
    """The page header's actions: accessible name (aria-label, else the text) -> href; the Copy
    button -> what it copies."""
    header = page[page.index('class="page-actions token-actions"') :]
    header = header[: header.index("</div>")]
    found = {}
    for attributes, content in re.findall(r"<a ([^>]*)>(.*?)</a>", header, re.S):
        label = re.search(r'aria-label="([^"]+)"', attributes)
        name = label.group(1) if label else re.sub(r"<[^>]+>", "", content).strip()
        found[name] = re.search(r'href="([^"]+)"', attributes).group(1)
    for copy in re.findall(r'<button [^>]*data-copy="([^"]+)"', header):
        found["Copy"] = copy
    return found


@pytest.fixture
def live(workspace):
    """STRIPE_SECRET in Production only: Sandbox is still free for its key."""
    production = workspace.environments.get(slug="production")
    return TokenFactory(workspace=workspace, key="STRIPE_SECRET", environments=[production])


@pytest.mark.parametrize("role", MANAGERS)
def test_managers_get_every_action_on_an_active_token(workspace, role_client, role, live):
    token = live
    page = text(role_client[role].get(url("detail", workspace, token)))

    assert actions(page) == {
        "Copy": "$Secret{STRIPE_SECRET}",
        "Add for another environment": url("create", workspace, **{"from": token.pk}),
        "Revoke STRIPE_SECRET": url("revoke", workspace, token) + BACK,
        "Delete STRIPE_SECRET": url("delete", workspace, token) + BACK,
        "Edit STRIPE_SECRET": url("edit", workspace, token) + BACK,
    }
    # Each opens its dialog in the modal (hx-get), not in the page's self-refreshing region.
    assert 'class="page-actions token-actions" hx-target="#modal-content"' in page
    assert f'hx-get="{url("edit", workspace, token)}{BACK}"' in page


def test_add_for_another_environment_only_while_one_is_free(workspace, editor_client, live):
    """The Tokens table's rule: once the key has a token in every environment (for this scope),
    there is nowhere left to add it."""
    detail = url("detail", workspace, live)
    assert "Add for another environment" in set(actions(text(editor_client.get(detail))))
    sandbox = workspace.environments.get(slug="sandbox")
    TokenFactory(workspace=workspace, key="STRIPE_SECRET", environments=[sandbox])
    assert "Add for another environment" not in set(actions(text(editor_client.get(detail))))


def test_a_viewer_can_only_copy_the_reference(workspace, viewer_client, live):
    token = live
    page = text(viewer_client.get(url("detail", workspace, token)))

    assert actions(page) == {"Copy": "$Secret{STRIPE_SECRET}"}
    for action in ("Edit", "Revoke", "Delete"):
        assert f'aria-label="{action} STRIPE_SECRET"' not in page


@pytest.mark.parametrize("role", MANAGERS)
def test_a_revoked_token_offers_delete_only(workspace, role_client, role, live):
    token = live
    token.revoke()

    page = text(role_client[role].get(url("detail", workspace, token)))

    assert set(actions(page)) == {"Copy", "Delete STRIPE_SECRET"}
    assert '<span class="status status-revoked">Revoked</span>' in page


def test_the_page_redraws_itself_after_an_edit_or_revoke(workspace, editor_client, token):
    """Edit and Revoke answer with tokensChanged: the page listens for it, like the table."""
    page = text(editor_client.get(url("detail", workspace, token)))
    assert 'hx-trigger="tokensChanged from:body, tokenHistoryChanged from:body"' in page

    edit = url("edit", workspace, token) + BACK
    response = editor_client.post(edit, edit_data(token, description="Live key"), headers=HTMX)
    assert response.status_code == 204
    assert triggers(response)["tokensChanged"] == {"id": str(token.pk)}

    response = editor_client.post(url("revoke", workspace, token) + BACK, headers=HTMX)
    assert response.status_code == 204 and "tokensChanged" in triggers(response)
    redrawn = text(editor_client.get(url("detail", workspace, token), headers=HTMX))
    assert redrawn.lstrip().startswith('<div id="token-detail"'), "the fragment, not the page"
    assert "Live key" in redrawn and set(actions(redrawn)) == {"Copy", "Delete STRIPE_SECRET"}


def test_dialogs_opened_on_the_page_come_back_to_it(workspace, editor_client, token):
    """Cancel, and without JavaScript the redirect after a POST, return to the token's page."""
    detail = url("detail", workspace, token)
    for name in ("edit", "revoke", "delete"):
        dialog = text(editor_client.get(url(name, workspace, token) + BACK, headers=HTMX))
        assert f'href="{detail}" data-bs-dismiss="modal"' in dialog, name
        assert f'hx-post="{url(name, workspace, token)}{BACK}"' in dialog, name

    edit = url("edit", workspace, token) + BACK
    response = editor_client.post(edit, edit_data(token, description="Live key"))
    assert response.status_code == 302 and response["Location"] == detail
    assert "Token STRIPE_SECRET saved." in text(editor_client.get(detail))

    response = editor_client.post(url("revoke", workspace, token) + BACK)
    assert response.status_code == 302 and response["Location"] == detail
    token.refresh_from_db()
    assert token.is_revoked
    refused = text(editor_client.get(edit, headers=HTMX))
    assert "Revoked tokens cannot be edited" in refused and f'href="{detail}"' in refused


def test_from_the_list_the_dialogs_still_go_back_to_the_list(workspace, editor_client, token):
    listed = url("list", workspace)
    dialog = text(editor_client.get(url("revoke", workspace, token), headers=HTMX))
    assert f'href="{listed}" data-bs-dismiss="modal"' in dialog
    response = editor_client.post(url("edit", workspace, token), edit_data(token))
    assert response["Location"] == f"{listed}?highlight={token.pk}"


def test_deleting_on_the_page_lands_on_the_list_with_the_message(workspace, editor_client, token):
    delete = url("delete", workspace, token) + BACK

    response = editor_client.post(delete, {"confirm_key": "STRIPE_SECRET"}, headers=HTMX)

    # htmx goes to the list (HX-Redirect); the page's region is not told to redraw itself,
    # which would ask for the deleted token.
    assert response.status_code == 204
    assert response["HX-Redirect"] == url("list", workspace)
    assert set(triggers(response)) == {"closeModal"}
    assert not Token.objects.filter(pk=token.pk).exists()
    listed = text(editor_client.get(url("list", workspace)))
    assert "Token STRIPE_SECRET deleted for good." in listed


def test_deleting_on_the_page_without_javascript_lands_on_the_list(workspace, editor_client, token):
    response = editor_client.post(
        url("delete", workspace, token) + BACK, {"confirm_key": "STRIPE_SECRET"}
    )

    assert response.status_code == 302 and response["Location"] == url("list", workspace)
    assert "Token STRIPE_SECRET deleted for good." in text(editor_client.get(response["Location"]))


def test_a_wrong_confirmation_changes_nothing_and_stays_in_the_dialog(
    workspace, editor_client, token
):
    delete = url("delete", workspace, token) + BACK
    response = editor_client.post(delete, {"confirm_key": "stripe_secret"}, headers=HTMX)
    assert response.status_code == 200 and "HX-Redirect" not in response
    assert Token.objects.filter(pk=token.pk).exists()


def test_a_viewer_cannot_act_from_the_page_either(workspace, viewer_client, token):
    for name in ("edit", "revoke", "delete"):
        assert viewer_client.post(url(name, workspace, token) + BACK).status_code == 403
    token.refresh_from_db()
    assert not token.is_revoked


def test_the_activity_reads_as_the_activity_log_and_links_to_all_of_it(
    workspace, editor_client, token
):
    edit = url("edit", workspace, token) + BACK
    editor_client.post(edit, edit_data(token, description="Live key"), headers=HTMX)

    page = text(editor_client.get(url("detail", workspace, token)))

    sentences = event_sentences(page)
    assert sentences[0] == "eddie changed the description of STRIPE_SECRET"
    assert sentences[-1].endswith("created STRIPE_SECRET")
    all_activity = url("audit:activity", workspace) + "?token=STRIPE_SECRET"
    assert f'<a href="{all_activity}">All activity for this token</a>' in page
    assert "Token page" not in page, "no link from the page to itself"
    assert "None" not in page
    filtered = text(editor_client.get(all_activity))
    assert event_sentences(filtered)[0] == sentences[0]


def test_an_editors_page_costs_the_same_queries_with_2_or_30_events(
    workspace, editor_client, django_assert_num_queries
):
    """The actions cost no query; the Activity's sentences read the catalog's names once."""
    few, many = (TokenFactory(workspace=workspace, key=key) for key in ("FEW", "MANY"))
    few.update(description="once")
    for n in range(29):
        many.update(description=f"edit {n}")
    editor_client.get(url("detail", workspace, few))  # the session is loaded once
    with CaptureQueriesContext(connection) as baseline:
        assert editor_client.get(url("detail", workspace, few)).status_code == 200
    with django_assert_num_queries(len(baseline)):
        page = text(editor_client.get(url("detail", workspace, many)))
    assert len(event_sentences(page)) == 20, "the latest 20, then All activity"
    assert "(the latest 20)" in page
