"""The Tokens home as a person uses it (docs/design.md, "The Tokens home"): the bulk bar only
with a selection, revoked tokens behind Show revoked, Alt+Shift+N for Create Token with the
environments in sight, and the phone's Filters button. axe-core checks each new state.
"""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser.test_tokens_page import acme, row
from tests.helpers import sign_in
from tokens.models import Token, UseContext
from tokens.references.resolve import resolve_text

PHONE = {"width": 390, "height": 844}


def bulk_bar(page: Page):
    return page.get_by_role("form", name="Act on the selected tokens")


def test_the_bulk_bar_shows_only_with_a_selection_and_counts_it(
    page: Page, live_server, transactional_db, axe
):
    workspace = acme()
    production = workspace.environments.get(slug="production")
    payments = workspace.products.get(name="Payments")
    used_in = UseContext(production, product=payments)
    resolve_text("$Secret{STRIPE_SECRET}", used_in, source="pay.yaml", actor="ci")
    sign_in(page, live_server, "olivia")
    expect(row(page, "DB_PASSWORD")).to_be_visible()
    expect(bulk_bar(page)).to_be_hidden()
    first = row(page, "DB_PASSWORD").bounding_box()

    row(page, "DB_PASSWORD").get_by_role("checkbox").check()
    expect(bulk_bar(page)).to_be_visible()
    expect(bulk_bar(page)).to_contain_text("1 selected")
    # The bar takes the column headings' place: the rows do not move under the pointer.
    assert row(page, "DB_PASSWORD").bounding_box() == first
    row(page, "GITHUB_OAUTH_TOKEN").get_by_role("checkbox").check()
    row(page, "DB_PASSWORD").get_by_role("checkbox").uncheck()
    row(page, "STRIPE_SECRET").get_by_role("checkbox").check()
    expect(bulk_bar(page)).to_contain_text("2 selected")
    axe(page)

    # The bulk Revoke says what breaks, as the single one does: the used token first.
    bulk_bar(page).get_by_role("button", name="Revoke selected").click()
    dialog = page.get_by_role("dialog", name="Revoke 2 tokens?")
    expect(dialog).to_contain_text("1 of the 2 was used in the last 30 days")
    uses = dialog.get_by_role("list", name="Selected tokens")
    expect(uses.locator(":scope > li").first).to_contain_text("STRIPE_SECRET")
    expect(uses).to_contain_text("Production · ci · resolve of pay.yaml")
    expect(uses).to_contain_text("1 use, last")
    expect(uses).to_contain_text("never used")
    page.wait_for_timeout(300)  # the modal's fade-in
    axe(page)
    dialog.get_by_role("link", name="Cancel").click()
    expect(dialog).to_be_hidden()

    page.get_by_label("Select all on this page").check()
    expect(bulk_bar(page)).to_contain_text("5 selected")
    page.get_by_label("Select all on this page").uncheck()
    expect(bulk_bar(page)).to_be_hidden()


def test_revoked_tokens_hide_behind_show_revoked_and_are_deleted_there(
    page: Page, live_server, transactional_db, axe
):
    acme()  # LEGACY_SMS_KEY is revoked
    sign_in(page, live_server, "olivia")
    expect(row(page, "DB_PASSWORD")).to_be_visible()
    expect(row(page, "LEGACY_SMS_KEY")).to_have_count(0)

    page.get_by_label("Show revoked").check()
    expect(page).to_have_url(re.compile(r"\?revoked=1$"))
    revoked = row(page, "LEGACY_SMS_KEY")
    expect(revoked).to_contain_text("Revoked")
    expect(row(page, "DB_PASSWORD")).to_be_visible()  # the others stay
    axe(page)
    revoked.get_by_role("link", name="Delete LEGACY_SMS_KEY").click()
    dialog = page.get_by_role("dialog", name="Delete LEGACY_SMS_KEY?")
    dialog.get_by_label("Type LEGACY_SMS_KEY to confirm").fill("LEGACY_SMS_KEY")
    dialog.get_by_role("button", name="Delete token").click()
    expect(dialog).to_be_hidden()
    expect(row(page, "LEGACY_SMS_KEY")).to_have_count(0)
    assert not Token.objects.filter(key="LEGACY_SMS_KEY").exists()

    # Revoking another one: it leaves the list, and Show revoked finds it.
    page.get_by_label("Show revoked").uncheck()
    expect(page).to_have_url(re.compile(r"/tokens/$"))
    row(page, "STRIPE_SECRET").get_by_role("link", name="Revoke STRIPE_SECRET").click()
    dialog = page.get_by_role("dialog", name="Revoke STRIPE_SECRET?")
    expect(dialog).to_contain_text("Show revoked lists it again")
    dialog.get_by_role("button", name="Revoke token").click()
    expect(dialog).to_be_hidden()
    expect(row(page, "STRIPE_SECRET")).to_have_count(0)
    page.get_by_label("Show revoked").check()
    expect(row(page, "STRIPE_SECRET")).to_contain_text("Revoked")


def test_alt_shift_n_opens_create_token_with_the_environments_in_sight(
    page: Page, live_server, transactional_db, axe
):
    acme()
    sign_in(page, live_server, "olivia")
    create = page.locator("main .page-header").get_by_role("link", name="Create Token")
    expect(create).to_have_attribute("aria-keyshortcuts", "Alt+Shift+N")
    expect(create).to_have_attribute("title", re.compile(r"Alt\+Shift\+N"))
    page.get_by_label("Search tokens").focus()  # from anywhere on the page, even a text box
    page.keyboard.press("Alt+Shift+KeyN")
    dialog = page.get_by_role("dialog", name="Create Token")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Token Key")).to_be_focused()
    expect(dialog.get_by_label("Token Key")).not_to_have_attribute("placeholder", re.compile("."))

    # The environments are in sight without scrolling, none chosen, and it says so.
    environments = dialog.get_by_role("group", name="Environments")
    body = dialog.locator(".modal-body").bounding_box()
    box = environments.bounding_box()
    assert body and box and box["y"] + box["height"] <= body["y"] + body["height"]
    for name in ("Production", "Sandbox"):
        expect(environments.get_by_label(name)).not_to_be_checked()
    none = dialog.get_by_text("No environment chosen yet: choose at least one.")
    expect(none).to_be_visible()
    environments.get_by_label("Sandbox").check()
    expect(dialog.get_by_text("Valid in: Sandbox.")).to_be_visible()
    expect(none).to_be_hidden()
    page.wait_for_timeout(300)  # the modal's fade-in
    axe(page)
    environments.get_by_label("Sandbox").uncheck()
    expect(none).to_be_visible()

    # Another press while the modal is open does nothing more (the shortcut waits).
    page.keyboard.press("Alt+Shift+KeyN")
    expect(page.get_by_role("dialog", name="Create Token")).to_have_count(1)


def test_on_a_phone_one_filters_button_and_the_bar_at_the_bottom(
    page: Page, live_server, transactional_db, axe
):
    page.set_viewport_size(PHONE)
    acme()
    sign_in(page, live_server, "olivia")
    filters = page.get_by_role("button", name="Filters")
    expect(filters).to_have_attribute("aria-expanded", "false")
    expect(page.get_by_label("Filter by type")).to_be_hidden()
    expect(page.get_by_label("Sort by")).to_be_hidden()
    filters.click()
    expect(filters).to_have_attribute("aria-expanded", "true")
    expect(page.get_by_label("Filter by type")).to_be_visible()
    expect(page.get_by_label("Show revoked")).to_be_visible()
    expect(page.get_by_label("Sort by")).to_be_visible()
    page.get_by_label("Filter by type").select_option(label="API Key")
    expect(page).to_have_url(re.compile(r"\?type=api_key$"))
    expect(filters).to_have_accessible_name(re.compile(r"Filters \(1\) set"))
    axe(page)
    filters.click()
    expect(page.get_by_label("Filter by type")).to_be_hidden()

    row(page, "STRIPE_SECRET").get_by_role("checkbox").check()
    bar = bulk_bar(page)
    expect(bar).to_contain_text("1 selected")
    box = bar.bounding_box()
    assert box and abs(box["y"] + box["height"] - PHONE["height"]) <= 1, box
    expect(page.get_by_label("Select all on this page")).to_be_in_viewport()
    axe(page)
