"""A token's page is where you act on it, in a real browser: Edit and Revoke in the modal redraw
the page in place, Delete lands on the Tokens list with its message, Copy reference copies
`$Secret{KEY}`; with the mouse and with the keyboard only, at 1280 and 390 px, axe-core clean.
No native browser dialog ever opens."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_keyboard import tab_to
from tests.factories import (
    AppFactory,
    MembershipFactory,
    ProductFactory,
    TokenFactory,
    UserFactory,
    WorkspaceFactory,
)
from tests.helpers import sign_in
from tokens.models import Token, UseContext
from tokens.references.resolve import resolve_text
from workspaces.models import Role

VALUE = "sk_live_token_page_5c7e1f9a2b"
PHONE = {"width": 390, "height": 844}


def acme() -> Token:
    """Acme's STRIPE_SECRET in Production, with a second version, resolved by a CI job."""
    workspace = WorkspaceFactory(name="Acme", slug="acme")
    MembershipFactory(user=UserFactory(username="olivia"), workspace=workspace, role=Role.OWNER)
    MembershipFactory(user=UserFactory(username="vera"), workspace=workspace, role=Role.VIEWER)
    payments = ProductFactory(workspace=workspace, name="Payments", slug="payments")
    checkout = AppFactory(workspace=workspace, name="Checkout", slug="checkout")
    production = workspace.environments.get(slug="production")
    token = TokenFactory(
        workspace=workspace,
        key="STRIPE_SECRET",
        value=VALUE,
        description="Stripe live key",
        products=[payments],
        apps=[checkout],
        environments=[production],  # Sandbox still free: "Add for another environment"
    )
    token.update(by=None, value=VALUE + "_rotated")
    context = UseContext(production, product=payments, app=checkout)
    resolve_text("$Secret{STRIPE_SECRET}", context, source="deploy.yaml", actor="ci")
    TokenFactory(workspace=workspace, key="OTHER_TOKEN")
    return token


@pytest.fixture
def no_native_dialogs(page: Page):
    """Fail if the page ever opens alert(), confirm() or prompt()."""
    opened: list[str] = []
    page.on("dialog", lambda dialog: (opened.append(dialog.message), dialog.dismiss()))
    yield
    assert opened == [], f"native dialogs opened: {opened}"


def open_token_page(page: Page, live_server, token: Token, username: str = "olivia") -> None:
    sign_in(page, live_server, username)
    expect(page.get_by_role("heading", name="Tokens", level=1)).to_be_visible()
    page.goto(f"{live_server.url}/w/acme/tokens/{token.pk}/")
    expect(page.get_by_role("heading", name="STRIPE_SECRET", level=1)).to_be_visible()


def settled(page: Page) -> None:
    """The modal's fade-in is over (mid-fade, its text has too little contrast for axe)."""
    expect(page.locator("#modal")).to_have_css("opacity", "1")


def test_edit_revoke_and_delete_from_the_token_page(
    page: Page, live_server, transactional_db, axe, screenshot, no_native_dialogs
):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    token = acme()
    open_token_page(page, live_server, token)
    actions = page.locator(".token-actions")
    usage = page.get_by_role("table", name="Where STRIPE_SECRET is used")
    expect(usage).to_contain_text("Payments · Checkout · Production · ci · resolve of deploy.yaml")
    activity = page.get_by_role("table", name="Activity of STRIPE_SECRET")
    expect(activity.get_by_role("row")).to_have_count(3)  # the header, created, value changed
    axe(page)
    screenshot(page, "token-page", full_page=True)

    # Copy reference.
    actions.get_by_role("button", name=re.compile("^Copy reference")).click()
    expect(page.get_by_text("Copied $Secret{STRIPE_SECRET} to the clipboard")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == "$Secret{STRIPE_SECRET}"

    # Add for another environment: Create Token, filled in from this token, Production taken.
    actions.get_by_role("link", name="Add for another environment").click()
    create = page.get_by_role("dialog", name=re.compile("Create Token"))
    expect(create.get_by_label("Token Key")).to_have_value("STRIPE_SECRET")
    expect(create.get_by_role("checkbox", name="Sandbox")).to_be_visible()
    expect(create.get_by_role("checkbox", name="Production")).to_have_count(0)
    settled(page)
    create.get_by_role("button", name="Close").click()
    expect(create).to_be_hidden()

    # Edit: the modal, then the page redraws itself with the change and its Activity line.
    actions.get_by_role("link", name="Edit STRIPE_SECRET").click()
    edit = page.get_by_role("dialog", name="Edit token STRIPE_SECRET")
    settled(page)
    axe(page, "#modal")
    edit.get_by_label("Description").fill("Stripe live key (rotated quarterly)")
    edit.get_by_role("button", name="Save changes").click()
    expect(edit).to_be_hidden()
    expect(page.get_by_role("status").filter(has_text="Token STRIPE_SECRET saved.")).to_be_visible()
    expect(page.locator(".page-lede")).to_contain_text("Stripe live key (rotated quarterly)")
    expect(activity.get_by_role("row")).to_have_count(4)
    expect(activity.get_by_role("row").nth(1)).to_contain_text(
        "olivia changed the description of STRIPE_SECRET"
    )
    assert page.url.endswith(f"/tokens/{token.pk}/"), "still on the token's page"

    # Revoke: the page redraws, Edit and Revoke are gone, Delete stays.
    actions.get_by_role("link", name="Revoke STRIPE_SECRET").click()
    revoke = page.get_by_role("dialog", name="Revoke STRIPE_SECRET?")
    expect(revoke).to_contain_text("Used in the last 30 days by")
    settled(page)
    axe(page, "#modal")
    revoke.get_by_role("button", name="Revoke token").click()
    expect(revoke).to_be_hidden()
    expect(page.locator(".page-lede")).to_contain_text("Revoked")
    expect(actions.get_by_role("link", name="Edit STRIPE_SECRET")).to_have_count(0)
    expect(actions.get_by_role("link", name="Revoke STRIPE_SECRET")).to_have_count(0)
    expect(activity.get_by_role("row").nth(1)).to_contain_text("olivia revoked STRIPE_SECRET")
    axe(page)
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "token-page-revoked")

    # Delete: lands on the Tokens list, with the message.
    actions.get_by_role("link", name="Delete STRIPE_SECRET").click()
    delete = page.get_by_role("dialog", name="Delete STRIPE_SECRET?")
    settled(page)
    delete.get_by_role("textbox").fill("STRIPE_SECRET")
    delete.get_by_role("button", name="Delete token").click()
    expect(page.get_by_role("heading", name="Tokens", level=1)).to_be_visible()
    expect(page).to_have_url(f"{live_server.url}/w/acme/tokens/")
    expect(page.get_by_text("Token STRIPE_SECRET deleted for good.")).to_be_visible()
    expect(page.get_by_text("That no longer exists")).to_have_count(0)
    assert not Token.objects.filter(pk=token.pk).exists()
    assert VALUE not in page.content()


def test_on_a_phone_the_actions_fit_and_axe_is_clean(
    page: Page, live_server, transactional_db, axe, screenshot
):
    page.set_viewport_size(PHONE)
    token = acme()
    open_token_page(page, live_server, token)
    axe(page)
    screenshot(page, "token-page-phone", full_page=True)
    width = page.evaluate("() => document.documentElement.clientWidth")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width
    links = page.locator(".token-actions").get_by_role("link")
    expect(links).to_have_count(4)
    for box in [
        page.locator(".token-actions > *").nth(n).bounding_box()
        for n in range(page.locator(".token-actions > *").count())
    ]:
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= width, box

    page.locator(".token-actions").get_by_role("link", name="Edit STRIPE_SECRET").click()
    expect(page.get_by_role("dialog", name="Edit token STRIPE_SECRET")).to_be_visible()
    settled(page)
    axe(page)


def test_a_viewer_sees_no_action_but_copy(page: Page, live_server, transactional_db, axe):
    token = acme()
    open_token_page(page, live_server, token, "vera")
    actions = page.locator(".token-actions")
    expect(actions.get_by_role("button", name=re.compile("^Copy reference"))).to_be_visible()
    expect(actions.get_by_role("link")).to_have_count(0)
    axe(page)


def test_the_actions_work_with_the_keyboard_only(
    page: Page, live_server, transactional_db, no_native_dialogs
):
    token = acme()
    open_token_page(page, live_server, token)

    # Edit: Tab to it, Enter; the dialog starts on its first field; Save with Enter.
    tab_to(page, "Edit STRIPE_SECRET")
    page.keyboard.press("Enter")
    edit = page.get_by_role("dialog", name="Edit token STRIPE_SECRET")
    expect(edit).to_be_visible()
    tab_to(page, "Description")
    page.keyboard.press("Control+A")
    page.keyboard.type("Typed with the keyboard")
    tab_to(page, "Save changes")
    page.keyboard.press("Enter")
    expect(edit).to_be_hidden()
    expect(page.locator(".page-lede")).to_contain_text("Typed with the keyboard")
    # The focus is back on Edit, in the redrawn page.
    expect(page.get_by_role("link", name="Edit STRIPE_SECRET")).to_be_focused()

    # Revoke: its dialog starts on Cancel; Tab to Revoke token, Enter.
    tab_to(page, "Revoke STRIPE_SECRET", back=True)
    page.keyboard.press("Enter")
    revoke = page.get_by_role("dialog", name="Revoke STRIPE_SECRET?")
    expect(revoke.get_by_role("link", name="Cancel")).to_be_focused()
    page.keyboard.press("Tab")
    expect(revoke.get_by_role("button", name="Revoke token")).to_be_focused()
    page.keyboard.press("Enter")
    expect(revoke).to_be_hidden()
    expect(page.locator(".page-lede")).to_contain_text("Revoked")
    # Its button is gone: the focus goes to the page's heading, not lost to the body.
    expect(page.get_by_role("heading", name="STRIPE_SECRET", level=1)).to_be_focused()

    # Delete: type the key, Tab to Delete token, Enter: the Tokens list.
    tab_to(page, "Delete STRIPE_SECRET")
    page.keyboard.press("Enter")
    delete = page.get_by_role("dialog", name="Delete STRIPE_SECRET?")
    expect(delete.get_by_role("textbox")).to_be_focused()
    page.keyboard.type("STRIPE_SECRET")
    tab_to(page, "Delete token")
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{live_server.url}/w/acme/tokens/")
    expect(page.get_by_text("Token STRIPE_SECRET deleted for good.")).to_be_visible()
