"""A token's History in a real browser: an accidental overwrite undone by Restore, and the
Revoke dialog naming the app and access key that resolved the token right after.

The token's value is edited twice in the Edit modal (the second edit overwrites the value by
mistake), Restore brings back the original from History, a CI job resolves the token through
the API with its access key, and the Revoke dialog names that job's context before anything is
broken. axe-core checks the token's page and the Restore and Destroy dialogs.
"""

from __future__ import annotations

import re

from django.test import Client
from playwright.sync_api import Page, expect

from tests.api_helpers import post_resolve
from tests.factories import (
    AppFactory,
    MembershipFactory,
    ProductFactory,
    TokenFactory,
    UserFactory,
    WorkspaceFactory,
    make_access_key,
)
from tests.helpers import sign_in
from tokens.models import Token
from workspaces.models import Role

ORIGINAL = "sk_live_original_5c7e1f9a2b"
ROTATED = "sk_live_rotated_8d2a4c6e1f"
MISTAKE = "sk_live_pasted_by_mistake_3b9d"


def acme():
    workspace = WorkspaceFactory(name="Acme", slug="acme")
    MembershipFactory(user=UserFactory(username="olivia"), workspace=workspace, role=Role.OWNER)
    payments = ProductFactory(workspace=workspace, name="Payments", slug="payments")
    checkout = AppFactory(workspace=workspace, name="Checkout", slug="checkout")
    token = TokenFactory(workspace=workspace, key="STRIPE_SECRET", value=ORIGINAL)
    production = workspace.environments.get(slug="production")
    _, key = make_access_key(
        workspace, name="ci-deploy", environment=production, product=payments, app=checkout
    )
    return workspace, token, key


def edit_value(page: Page, value: str) -> None:
    page.get_by_role("link", name="Edit STRIPE_SECRET").click()
    dialog = page.get_by_role("dialog", name="Edit token STRIPE_SECRET")
    dialog.get_by_label("Token Value").fill(value)
    dialog.get_by_role("button", name="Save changes").click()
    expect(dialog).to_be_hidden()


def axe_dialog(page: Page, axe) -> None:
    """axe on the modal once its fade-in is over (mid-fade, its text has too little contrast)."""
    expect(page.locator("#modal")).to_have_css("opacity", "1")
    axe(page, "#modal")


def test_restore_undoes_an_overwrite_and_revoke_names_who_used_it(
    page: Page, live_server, transactional_db, axe
):
    workspace, token, key = acme()
    sign_in(page, live_server, "olivia")
    edit_value(page, ROTATED)
    edit_value(page, MISTAKE)
    assert Token.objects.get(pk=token.pk).reveal() == MISTAKE

    page.get_by_role("link", name="History of STRIPE_SECRET").click()
    expect(page.get_by_role("heading", name="History")).to_be_visible()
    history = page.get_by_role("table", name="Versions of STRIPE_SECRET")
    expect(history.get_by_role("row")).to_have_count(4)  # the header and three versions
    axe(page)

    history.get_by_role("link", name="Destroy version 1").click()
    destroy = page.get_by_role("dialog", name="Destroy a version of STRIPE_SECRET")
    expect(destroy.get_by_role("radio", name=re.compile(r"^Version 1 "))).to_be_checked()
    axe_dialog(page, axe)
    destroy.get_by_role("link", name="Cancel").click()
    expect(destroy).to_be_hidden()

    history.get_by_role("link", name="Restore version 1").click()
    restore = page.get_by_role("dialog", name="Restore a version of STRIPE_SECRET")
    expect(restore.get_by_role("radio", name=re.compile(r"^Version 1 "))).to_be_checked()
    axe_dialog(page, axe)
    restore.get_by_role("button", name="Restore version").click()
    expect(restore).to_be_hidden()
    toast = page.get_by_role("status").filter(has_text="Version 1 of STRIPE_SECRET restored")
    expect(toast).to_contain_text("restored as version 4")
    expect(history.get_by_role("row").nth(1)).to_contain_text("Restored from version 1")
    expect(history.get_by_role("row").nth(1)).to_contain_text("Current")
    assert ORIGINAL not in page.content() and MISTAKE not in page.content()

    # The CI job resolves it with its access key: the original value is back.
    response = post_resolve(Client(), key, "STRIPE=$Secret{STRIPE_SECRET}", "?source=deploy.yaml")
    assert response.status_code == 200, response.content
    assert response.content.decode() == f"STRIPE={ORIGINAL}"

    page.reload()
    usage = page.get_by_role("table", name="Where STRIPE_SECRET is used")
    expect(usage).to_contain_text("Payments · Checkout · Production · access key ci-deploy")
    axe(page)
    page.goto(f"{live_server.url}/w/{workspace.slug}/tokens/")
    page.get_by_role("link", name="Revoke STRIPE_SECRET").click()
    revoke = page.get_by_role("dialog", name="Revoke STRIPE_SECRET?")
    expect(revoke.get_by_text("Used in the last 30 days by")).to_be_visible()
    expect(revoke.get_by_role("listitem").first).to_have_text(
        re.compile(
            r"^\s*Payments · Checkout · Production · access key ci-deploy "
            r"· resolve of deploy\.yaml "
            r"· 1 use, last (just now|1\xa0minute ago)\s*$"
        )
    )
    axe_dialog(page, axe)
    assert ORIGINAL not in page.content()
