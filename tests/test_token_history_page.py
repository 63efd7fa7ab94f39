"""The token's own page (`tokens:detail`), its Restore and Destroy dialogs, and the Revoke
dialog's "Used in the last 30 days by"."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.factories import AppFactory, TokenFactory, UserFactory
from tests.helpers import HTMX, text, triggers
from tokens.models import UseContext
from tokens.references.resolve import resolve_text

pytestmark = pytest.mark.django_db

FIRST, SECOND = "first-value-" + "a" * 16, "second-value-" + "b" * 16


@pytest.fixture
def edited(workspace):
    token = TokenFactory(workspace=workspace, key="API_KEY", value=FIRST)
    token.set_value(SECOND)
    return token


def detail(workspace, token) -> str:
    return reverse("tokens:detail", args=[workspace.slug, token.pk])


def restore(workspace, token) -> str:
    return reverse("tokens:restore", args=[workspace.slug, token.pk])


def test_viewer_sees_history_without_actions_and_no_value(workspace, viewer_client, edited):
    page = text(viewer_client.get(detail(workspace, edited)))
    assert "History" in page and "Current" in page and "Never used." in page
    assert "Restore version" not in page and "Destroy version" not in page
    assert FIRST not in page and SECOND not in page
    assert viewer_client.post(restore(workspace, edited), {"version": "0"}).status_code == 403


def test_editor_restores_the_first_version_with_htmx(workspace, editor_client, edited):
    assert 'aria-label="Restore version 1"' in text(editor_client.get(detail(workspace, edited)))
    response = editor_client.post(restore(workspace, edited), {"version": "0"}, headers=HTMX)
    assert response.status_code == 204
    assert "tokenHistoryChanged" in triggers(response)
    edited.refresh_from_db()
    assert (edited.value_version, edited.reveal()) == (2, FIRST)


def test_a_bad_version_re_shows_the_dialog_and_changes_nothing(workspace, editor_client, edited):
    for data in ({}, {"version": "1"}, {"version": "x"}):
        response = editor_client.post(restore(workspace, edited), data)
        assert response.status_code == 200
        assert "Choose" in text(response)
    edited.refresh_from_db()
    assert edited.value_version == 1


def test_revoke_dialog_names_the_context_that_used_it(workspace, editor_client, edited):
    checkout = AppFactory(workspace=workspace, name="Checkout", slug="checkout")
    production = workspace.environments.get(slug="production")
    resolve_text(
        "$Secret{API_KEY}", UseContext(production, app=checkout), source="deploy.yaml", actor="ci"
    )
    url = reverse("tokens:revoke", args=[workspace.slug, edited.pk])
    page = text(editor_client.get(url, headers=HTMX))
    assert "Used in the last 30 days by" in page
    assert "Checkout · Production · ci · resolve of deploy.yaml" in page
    assert "1 use," in page


def _token_with(workspace, count: int):
    """A token with `count` versions, `count` usage contexts and `count` audit events of its
    own (a new app and source for each use), by `count` different people."""
    token = TokenFactory(workspace=workspace, key=f"TOKEN_{count}", value=FIRST)
    production = workspace.environments.get(slug="production")
    for n in range(1, count):
        token.set_value(f"{SECOND}{n}", by=UserFactory(username=f"setter{count}_{n}"))
    for n in range(count):
        app = AppFactory(workspace=workspace, name=f"App {count}-{n}", slug=f"app-{count}-{n}")
        resolve_text(
            f"$Secret{{{token.key}}}",
            UseContext(production, app=app),
            source=f"deploy-{n}.yaml",
            actor="ci",
        )
    assert token.versions.count() == count and token.usages.count() == count
    return token


def test_the_token_page_costs_the_same_queries_with_1_or_10_versions_and_uses(
    workspace, viewer_client, django_assert_num_queries
):
    small, large = _token_with(workspace, 1), _token_with(workspace, 10)
    viewer_client.get(detail(workspace, small))  # the session is loaded once, as in real use
    with CaptureQueriesContext(connection) as one:
        assert viewer_client.get(detail(workspace, small)).status_code == 200
    with django_assert_num_queries(len(one)):
        page = text(viewer_client.get(detail(workspace, large)))
    assert page.count("deploy-") == 10 and "setter10_9" in page


def test_people_count_versions_from_1_while_storage_counts_from_0(workspace, editor_client, edited):
    """The first value is "version 1" on History, in the dialogs, the toast and Activity; the
    stored number (bound into the ciphertext's associated data) stays 0."""
    page = text(editor_client.get(detail(workspace, edited)))
    assert "version 2, set" in page, "the Value line names the current version"
    assert 'aria-label="Restore version 1"' in page and 'aria-label="Restore version 0"' not in page
    dialog = text(editor_client.get(restore(workspace, edited) + "?version=0", headers=HTMX))
    assert 'value="0" checked' in dialog, "the form posts the stored number"
    assert ">Version 1 · set" in dialog and "Current: version 2" in dialog

    response = editor_client.post(restore(workspace, edited), {"version": "0"})
    page = text(editor_client.get(response["Location"]))
    assert "Version 1 of API_KEY restored as version 3" in page
    assert "Restored from version 1" in page
    assert "restored version 1 of" in page, "the Activity sentence"
    assert "<dt>Restored version</dt><dd>1</dd>" in page
    assert "<dt>New version</dt><dd>3</dd>" in page
    assert sorted(edited.versions.values_list("version", flat=True)) == [0, 1, 2]
    assert edited.versions.get(version=0).number == 1


def test_restore_and_destroy_open_the_modal_not_the_pages_swap(workspace, editor_client, edited):
    """The page redraws itself with hx-target="this" hx-swap="outerHTML"; the History table
    overrides both, or the dialog would replace the page (found in the browser)."""
    page = text(editor_client.get(detail(workspace, edited)))
    history = page[page.index('<table class="table align-middle activity-table history-table"') :]
    assert (
        history.split("</thead>", 1)[1]
        .lstrip()
        .startswith('<tbody hx-target="#modal-content" hx-swap="innerHTML">')
    )
