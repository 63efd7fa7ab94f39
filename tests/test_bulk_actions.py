"""Acting on many tokens at once (`tokens:bulk`): Revoke selected, Delete selected, Change
environments; the confirmation, roles, other workspaces' ids, the typed count and CSRF."""

from __future__ import annotations

import uuid

import pytest
from django.urls import reverse

from audit.models import AuditAction, AuditEvent
from tests.factories import EnvironmentFactory, TokenFactory
from tests.helpers import HTMX, text, triggers
from tokens.models import Token, TokenStatus

pytestmark = pytest.mark.django_db


def bulk_url(workspace) -> str:
    return reverse("tokens:bulk", args=[workspace.slug])


@pytest.fixture
def tokens(workspace):
    return [TokenFactory(workspace=workspace, key=f"BULK_{n}") for n in range(3)]


def selection(action: str, tokens, **extra) -> dict:
    return {"action": action, "tokens": [str(token.pk) for token in tokens], **extra}


def confirmed(action: str, tokens, **extra) -> dict:
    return selection(action, tokens, confirm="1", **extra)


# --- the table -----------------------------------------------------------------------------


def test_managers_get_checkboxes_and_the_bulk_bar(workspace, editor_client, tokens):
    page = text(editor_client.get(reverse("tokens:list", args=[workspace.slug])))
    assert 'aria-label="Select all on this page"' in page
    for token in tokens:
        assert f'aria-label="Select {token.key}"' in page
        assert f'name="page_tokens" value="{token.pk}"' in page
    for label in ("Revoke selected", "Delete selected", "Change environments"):
        assert label in page


def test_viewers_see_no_checkboxes(workspace, viewer_client, tokens):
    page = text(viewer_client.get(reverse("tokens:list", args=[workspace.slug])))
    assert "Select all on this page" not in page and "Revoke selected" not in page
    assert 'form="token-bulk"' not in page


def test_table_queries_stay_flat_with_checkboxes(
    workspace, editor_client, django_assert_max_num_queries
):
    for n in range(30):
        TokenFactory(workspace=workspace, key=f"MANY_{n:02d}")
    with django_assert_max_num_queries(12):
        editor_client.get(reverse("tokens:list", args=[workspace.slug]), {"per_page": 50})


# --- the confirmation page -----------------------------------------------------------------


def test_first_post_only_confirms_listing_the_keys(workspace, editor_client, tokens):
    response = editor_client.post(bulk_url(workspace), selection("revoke", tokens[:2]))
    page = text(response)
    assert response.status_code == 200
    assert "Revoke 2 tokens?" in page and "BULK_0" in page and "BULK_1" in page
    assert "BULK_2" not in page
    assert not Token.objects.revoked().exists()
    assert not AuditEvent.objects.filter(action=AuditAction.REVOKED).exists()


def test_select_all_on_this_page_takes_the_page_tokens(workspace, editor_client, tokens):
    data = {"action": "revoke", "all_on_page": "1", "page_tokens": [t.pk for t in tokens]}
    assert "Revoke 3 tokens?" in text(editor_client.post(bulk_url(workspace), data))


def test_nothing_selected_is_refused(workspace, editor_client, tokens):
    response = editor_client.post(bulk_url(workspace), {"action": "revoke"})
    assert response.status_code == 200
    assert "Select at least one token first." in text(response)


def test_an_unknown_action_is_refused(workspace, editor_client, tokens):
    response = editor_client.post(bulk_url(workspace), confirmed("explode", tokens))
    assert response.status_code == 200
    assert "That action does not exist" in text(response)
    assert Token.objects.count() == 3


# --- the actions ---------------------------------------------------------------------------


def test_revoke_selected(workspace, editor_client, tokens):
    tokens[2].revoke()
    response = editor_client.post(bulk_url(workspace), confirmed("revoke", tokens))
    assert response.status_code == 302
    assert set(Token.objects.revoked().values_list("key", flat=True)) == {
        "BULK_0",
        "BULK_1",
        "BULK_2",
    }
    events = AuditEvent.objects.filter(action=AuditAction.REVOKED)
    assert sorted(events.values_list("token_key", flat=True)) == ["BULK_0", "BULK_1", "BULK_2"]
    assert events.filter(actor=editor_client.user).count() == 2  # BULK_2 was revoked before
    message = text(editor_client.get(response["Location"]))
    assert "Revoked 2 tokens. 1 already revoked, left as they were." in message


def test_revoke_selected_with_htmx(workspace, owner_client, tokens):
    response = owner_client.post(bulk_url(workspace), confirmed("revoke", tokens), headers=HTMX)
    assert response.status_code == 204
    assert "tokensChanged" in triggers(response)
    assert triggers(response)["showToast"]["message"] == "Revoked 3 tokens."


def test_delete_selected_needs_the_count_typed(workspace, editor_client, tokens):
    page = text(editor_client.post(bulk_url(workspace), selection("delete", tokens)))
    assert "Type <strong>3</strong> to confirm" in page
    for wrong in ("", "2", "three", "BULK_0"):
        response = editor_client.post(
            bulk_url(workspace), confirmed("delete", tokens, confirm_count=wrong)
        )
        assert response.status_code == 200
        assert "Type the number of tokens exactly as shown (3)" in text(response)
    assert Token.objects.count() == 3
    assert not AuditEvent.objects.filter(action=AuditAction.DELETED).exists()


def test_delete_selected(workspace, editor_client, tokens):
    keep = TokenFactory(workspace=workspace, key="KEEP")
    response = editor_client.post(
        bulk_url(workspace), confirmed("delete", tokens, confirm_count="3")
    )
    assert response.status_code == 302
    assert list(Token.objects.values_list("key", flat=True)) == [keep.key]
    deleted = AuditEvent.objects.filter(action=AuditAction.DELETED)
    assert sorted(deleted.values_list("token_key", flat=True)) == ["BULK_0", "BULK_1", "BULK_2"]
    assert "Deleted 3 tokens for good." in text(editor_client.get(response["Location"]))


def test_change_environments(workspace, editor_client, tokens):
    production = EnvironmentFactory(workspace=workspace, name="Canary", slug="canary")
    tokens[2].revoke()
    response = editor_client.post(
        bulk_url(workspace), confirmed("environments", tokens, environments=[production.pk])
    )
    assert response.status_code == 302
    for token in tokens[:2]:
        assert list(token.environments.all()) == [production]
    assert production not in tokens[2].environments.all()
    events = AuditEvent.objects.filter(action=AuditAction.UPDATED)
    assert sorted(events.values_list("token_key", flat=True)) == ["BULK_0", "BULK_1"]
    assert all(event.detail == {"changed": ["environments"]} for event in events)


def test_change_environments_needs_one(workspace, editor_client, tokens):
    before = {t.pk: set(t.environments.values_list("pk", flat=True)) for t in tokens}
    response = editor_client.post(bulk_url(workspace), confirmed("environments", tokens))
    assert "Choose at least one environment." in text(response)
    after = {t.pk: set(t.environments.values_list("pk", flat=True)) for t in tokens}
    assert before == after


def test_change_environments_refuses_another_workspaces(
    workspace, other_workspace, editor_client, tokens
):
    foreign = EnvironmentFactory(workspace=other_workspace)
    response = editor_client.post(
        bulk_url(workspace), confirmed("environments", tokens, environments=[foreign.pk])
    )
    assert response.status_code == 200 and "Select a valid choice" in text(response)
    assert not Token.environments.through.objects.filter(environment=foreign).exists()


# --- who may, and which tokens ---------------------------------------------------------------


@pytest.mark.parametrize("action", ["revoke", "delete", "environments"])
def test_viewer_gets_403(workspace, viewer_client, tokens, action):
    data = confirmed(action, tokens, confirm_count="3")
    assert viewer_client.post(bulk_url(workspace), data).status_code == 403
    assert viewer_client.post(bulk_url(workspace), data, headers=HTMX).status_code == 403
    assert Token.objects.active().count() == 3


def test_get_is_not_allowed(workspace, editor_client):
    assert editor_client.get(bulk_url(workspace)).status_code == 405


@pytest.mark.parametrize("action", ["revoke", "delete"])
def test_tokens_of_another_workspace_are_refused(
    workspace, other_workspace, editor_client, tokens, action
):
    foreign = TokenFactory(workspace=other_workspace, key="FOREIGN")
    data = confirmed(action, [*tokens, foreign], confirm_count="4")
    response = editor_client.post(bulk_url(workspace), data)
    assert response.status_code == 400
    assert "not in this workspace" in text(response)
    assert "FOREIGN" not in text(response)
    assert Token.objects.count() == 4 and not Token.objects.revoked().exists()
    assert not AuditEvent.objects.filter(action__in=[AuditAction.REVOKED, AuditAction.DELETED])


def test_forged_ids_are_refused(workspace, editor_client, tokens):
    for forged in ("not-a-uuid", str(uuid.uuid4()), "1' OR '1'='1"):
        data = confirmed("delete", [tokens[0]], confirm_count="2") | {
            "tokens": [str(tokens[0].pk), forged]
        }
        response = editor_client.post(bulk_url(workspace), data)
        assert response.status_code == 400
    assert Token.objects.count() == 3


def test_outsider_gets_404(workspace, outsider_client, tokens):
    response = outsider_client.post(bulk_url(workspace), confirmed("revoke", tokens))
    assert response.status_code == 404
    assert Token.objects.filter(status=TokenStatus.ACTIVE).count() == 3


def test_csrf_is_required(workspace, editor_client, tokens):
    editor_client.handler.enforce_csrf_checks = True
    response = editor_client.post(
        bulk_url(workspace), confirmed("delete", tokens, confirm_count="3")
    )
    assert response.status_code == 403
    assert Token.objects.count() == 3


def test_one_transaction_and_bounded_queries(
    workspace, editor_client, django_assert_max_num_queries
):
    many = [TokenFactory(workspace=workspace, key=f"MANY_{n:03d}") for n in range(100)]
    # Per token: its audit event and the webhooks' look-up; the rest is a handful of queries.
    with django_assert_max_num_queries(2 * 100 + 15):
        editor_client.post(bulk_url(workspace), confirmed("revoke", many))
    assert Token.objects.revoked().count() == 100


# --- a selection gone stale: a second click, someone else's deletion -------------------------


def test_a_second_click_on_delete_says_they_are_gone(workspace, editor_client, tokens):
    data = confirmed("delete", tokens, confirm_count="3")
    assert editor_client.post(bulk_url(workspace), data).status_code == 302
    again = editor_client.post(bulk_url(workspace), data)
    assert again.status_code == 200
    assert "The selected tokens no longer exist" in text(again)
    assert "Nothing more was changed." in text(again) and "not in this workspace" not in text(again)
    assert AuditEvent.objects.filter(action=AuditAction.DELETED).count() == 3


@pytest.mark.parametrize("action", ["revoke", "delete", "environments"])
def test_tokens_deleted_by_someone_else_meanwhile_refuse_the_whole(
    workspace, editor_client, tokens, action
):
    env = workspace.environments.first()
    data = confirmed(action, tokens, confirm_count="3", environments=[env.pk])
    tokens[1].delete()  # another user, between the selection and the confirmation
    for headers in ({}, HTMX):
        response = editor_client.post(bulk_url(workspace), data, headers=headers)
        assert "1 of the 3 selected tokens no longer exists" in text(response)
        assert "Nothing was changed." in text(response)
    assert Token.objects.count() == 2 and not Token.objects.revoked().exists()
    assert not AuditEvent.objects.filter(action__in=[AuditAction.REVOKED, AuditAction.DELETED])


def test_a_second_revoke_says_there_was_nothing_to_revoke(workspace, editor_client, tokens):
    data = confirmed("revoke", tokens)
    editor_client.post(bulk_url(workspace), data)
    again = editor_client.post(bulk_url(workspace), data)
    page = text(editor_client.get(again["Location"]))
    assert "Nothing to revoke: the selected tokens were already revoked." in page
    assert "Revoked 0 tokens" not in page
    assert AuditEvent.objects.filter(action=AuditAction.REVOKED).count() == 3


def test_a_second_environment_change_says_nothing_changed(workspace, editor_client, tokens):
    canary = EnvironmentFactory(workspace=workspace, name="Canary", slug="canary")
    data = confirmed("environments", tokens, environments=[canary.pk])
    editor_client.post(bulk_url(workspace), data)
    again = editor_client.post(bulk_url(workspace), data)
    page = text(editor_client.get(again["Location"]))
    assert "Nothing to change: the selected tokens already had Canary" in page
    assert AuditEvent.objects.filter(action=AuditAction.UPDATED).count() == 3


def test_the_confirmation_ignores_a_second_click_while_the_first_runs(
    workspace, editor_client, tokens
):
    page = text(editor_client.post(bulk_url(workspace), selection("revoke", tokens), headers=HTMX))
    assert 'hx-sync="this:drop"' in page and 'hx-disabled-elt="find [type=submit]"' in page


def test_a_stale_selection_redraws_the_table_behind_the_modal(workspace, editor_client, tokens):
    data = confirmed("revoke", tokens)
    tokens[0].delete()
    response = editor_client.post(bulk_url(workspace), data, headers=HTMX)
    assert "1 of the 3 selected tokens no longer exists" in text(response)
    assert "tokensChanged" in triggers(response)
    assert not Token.objects.revoked().exists()


def test_the_bar_says_a_selection_covers_one_page(workspace, editor_client):
    for n in range(30):
        TokenFactory(workspace=workspace, key=f"MANY_{n:02d}")
    url = reverse("tokens:list", args=[workspace.slug])
    page = text(editor_client.get(url))
    assert "Selecting covers this page only: 25 of 30 tokens." in page
    assert "Selecting covers this page only" not in text(editor_client.get(url, {"per_page": 50}))


# --- what breaks: the bulk Revoke and Delete dialogs say each token's recent use -------------


@pytest.mark.parametrize("action", ["revoke", "delete"])
def test_bulk_dialog_shows_each_tokens_recent_use_used_ones_first(
    workspace, editor_client, tokens, action, django_assert_max_num_queries
):
    from tokens.models import UseContext
    from tokens.references.resolve import resolve_text

    production = workspace.environments.get(slug="production")
    for token in tokens:
        token.environments.set([production])
    resolve_text("$Secret{BULK_2}", UseContext(production), source="deploy.yaml", actor="ci")
    page = text(editor_client.post(bulk_url(workspace), selection(action, tokens), headers=HTMX))
    assert "1 of the 3</strong> was used in the last 30 days" in page
    assert "Production · ci · resolve of deploy.yaml" in page
    assert "1 use, last" in page
    assert page.count("· never used") == 2
    # The one in use comes first.
    assert (
        page.index('title="BULK_2"') < page.index('title="BULK_0"') < page.index('title="BULK_1"')
    )
    # Ten tokens cost what three do: the uses are read in one query for them all.
    many = tokens + [TokenFactory(workspace=workspace, key=f"MORE_{n}") for n in range(7)]
    with django_assert_max_num_queries(12):
        editor_client.post(bulk_url(workspace), selection(action, many), headers=HTMX)


def test_bulk_environments_dialog_says_nothing_of_use(workspace, editor_client, tokens):
    page = text(
        editor_client.post(bulk_url(workspace), selection("environments", tokens), headers=HTMX)
    )
    assert "used in the last" not in page and "never used" not in page
