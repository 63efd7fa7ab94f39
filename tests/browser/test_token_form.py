"""The Create/Edit token modal does not lose work: closing a changed form asks first, links that
leave it open a new tab, the Expiry Date refuses past days and says why where it can be seen,
and the expiry is previewed as it is typed."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from playwright.sync_api import Dialog, Page, expect

from tests.browser.test_tokens_page import acme
from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory
from tests.helpers import sign_in
from workspaces.models import Role


def open_create(page: Page):
    page.get_by_role("link", name="Create Token").first.click()
    dialog = page.get_by_role("dialog", name="Create Token")
    expect(dialog.get_by_label("Token Key")).to_be_focused()
    return dialog


def test_closing_a_changed_form_asks_first(page: Page, live_server, transactional_db):
    acme()
    sign_in(page, live_server, "olivia")
    dialog = open_create(page)
    page.keyboard.press("Escape")  # unchanged: closes without a question
    expect(dialog).to_be_hidden()

    dialog = open_create(page)
    dialog.get_by_label("Token Key").fill("HALF_DONE")
    dialog.get_by_label("Token Value").fill("typed-and-not-saved")
    questions: list[str] = []

    def keep(question: Dialog) -> None:
        questions.append(question.message)
        question.dismiss()

    page.once("dialog", keep)
    page.keyboard.press("Escape")
    page.wait_for_timeout(400)
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Token Value")).to_have_value("typed-and-not-saved")

    page.once("dialog", keep)
    page.mouse.click(10, 450)  # the backdrop
    page.wait_for_timeout(400)
    expect(dialog).to_be_visible()

    page.once("dialog", keep)
    dialog.get_by_role("link", name="Cancel").click()
    page.wait_for_timeout(400)
    expect(dialog).to_be_visible()
    assert questions == ["Discard what you typed in this form? Nothing has been saved."] * 3

    page.once("dialog", lambda question: question.accept())
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()


def test_a_form_with_errors_asks_before_closing_and_saving_does_not(
    page: Page, live_server, transactional_db
):
    acme()
    sign_in(page, live_server, "olivia")
    dialog = open_create(page)
    dialog.get_by_label("Token Key").fill("NEW_ONE")
    dialog.get_by_label("Token Value").fill("typed-value-12345")
    dialog.get_by_role("button", name="Create Token").click()
    expect(dialog.get_by_text("Choose at least one environment.")).to_be_visible()
    environments = dialog.get_by_role("group", name="Environments")
    expect(environments.get_by_label("Production")).to_be_focused()  # the first invalid field
    asked: list[str] = []

    def keep(question: Dialog) -> None:
        asked.append(question.message)
        question.dismiss()

    page.once("dialog", keep)
    page.keyboard.press("Escape")
    page.wait_for_timeout(400)
    expect(dialog).to_be_visible()
    assert asked

    def again(question: Dialog) -> None:
        asked.append("again")
        question.dismiss()

    page.on("dialog", again)
    environments.get_by_label("Sandbox").check()
    dialog.get_by_role("button", name="Create Token").click()
    expect(dialog).to_be_hidden()  # saved: nothing to ask
    assert "again" not in asked


def test_add_one_opens_a_new_tab_and_keeps_the_form(page: Page, live_server, transactional_db):
    workspace = WorkspaceFactory(name="Bare", slug="acme")
    MembershipFactory(user=UserFactory(username="olivia"), workspace=workspace, role=Role.OWNER)
    sign_in(page, live_server, "olivia")
    page.goto(f"{live_server.url}/w/acme/tokens/")
    dialog = open_create(page)
    dialog.get_by_label("Token Value").fill("half-typed-secret")
    products = dialog.get_by_role("group", name="Products")
    expect(products.get_by_text("No products yet.")).to_be_visible()
    with page.context.expect_page() as opened:
        products.get_by_role("link", name="Add one (opens in a new tab)").click()
    opened.value.wait_for_load_state()
    assert opened.value.url.endswith("/w/acme/products/")
    opened.value.close()
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Token Value")).to_have_value("half-typed-secret")


def test_past_dates_are_refused_and_the_message_is_in_view(
    page: Page, live_server, transactional_db
):
    acme()
    sign_in(page, live_server, "olivia")
    dialog = open_create(page)
    tomorrow = timezone.now().astimezone(dt.UTC).date() + dt.timedelta(days=1)
    expect(dialog.get_by_label("Expiry Date")).to_have_attribute("min", tomorrow.isoformat())
    dialog.get_by_label("Token Key").fill("OLD_DATE")
    dialog.get_by_label("Token Value").fill("typed-value-12345")
    dialog.get_by_role("group", name="Environments").get_by_label("Sandbox").check()
    dialog.get_by_label("Expiry Date").fill("2020-01-01")
    dialog.get_by_role("button", name="Create Token").click()
    message = dialog.locator("#id_expiry_date_error")
    expect(message).to_be_visible()
    expect(dialog.get_by_label("Expiry Date")).to_be_focused()
    expect(message).to_be_in_viewport(ratio=1)
    footer = dialog.get_by_role("button", name="Create Token").bounding_box()
    box = message.bounding_box()
    assert box and footer and box["y"] + box["height"] <= footer["y"], "under the footer"
    expect(dialog.get_by_label("Token Value")).to_have_value("typed-value-12345")


def test_the_expiry_is_previewed(page: Page, live_server, transactional_db):
    acme()
    sign_in(page, live_server, "olivia")
    dialog = open_create(page)
    preview = dialog.get_by_text("Never expires: both fields are empty.")
    expect(preview).to_be_visible()
    in_ten = timezone.now().astimezone(dt.UTC).date() + dt.timedelta(days=10)
    dialog.get_by_label("Expiry Date").fill(in_ten.isoformat())
    label = f"{in_ten:%b} {in_ten.day}, {in_ten.year}"
    expect(dialog.get_by_text(f"Expires on {label} at 00:00 UTC (in ")).to_be_visible()
    dialog.get_by_label("Period", exact=True).select_option(label="7 days")
    in_seven = timezone.now().astimezone(dt.UTC) + dt.timedelta(days=7)
    label = f"{in_seven:%b} {in_seven.day}, {in_seven.year}"
    expect(dialog.get_by_text(f"Expires on {label}")).to_be_visible()  # the earlier wins


@pytest.fixture
def no_js(browser):
    context = browser.new_context(java_script_enabled=False)
    yield context.new_page()
    context.close()


def test_without_javascript_the_value_is_cleared_and_the_message_says_so(
    no_js: Page, live_server, transactional_db
):
    page = no_js
    acme()
    sign_in(page, live_server, "olivia")
    page.goto(f"{live_server.url}/w/acme/tokens/new/")
    page.get_by_label("Token Key").fill("STRIPE SECRET")  # not a Token Key
    page.get_by_label("Token Value").fill("typed-without-js")
    page.get_by_role("button", name="Create Token").click()
    expect(page.get_by_text("A Token Key starts with a letter or underscore")).to_be_visible()
    expect(page.get_by_label("Token Value")).to_have_value("")
    said = "the value you typed was not sent back to the browser, so the field is empty"
    expect(page.get_by_text(said)).to_be_visible()
    assert "typed-without-js" not in page.content()
    summary = page.get_by_role("alert").filter(has_text="Please correct")
    expect(summary.get_by_role("link", name="Token Key")).to_have_attribute("href", "#id_key")


def test_the_other_modal_forms_ask_too(page: Page, live_server, transactional_db):
    acme()
    sign_in(page, live_server, "olivia")
    page.goto(f"{live_server.url}/w/acme/products/")
    page.get_by_role("link", name="Add product").click()
    dialog = page.get_by_role("dialog", name="Add product")
    dialog.get_by_label("Name").fill("Half a name")
    page.wait_for_timeout(400)  # Bootstrap ignores Escape during the fade-in
    asked: list[str] = []

    def keep(question: Dialog) -> None:
        asked.append(question.message)
        question.dismiss()

    page.once("dialog", keep)
    page.keyboard.press("Escape")
    page.wait_for_timeout(400)
    expect(dialog).to_be_visible()
    assert asked == ["Discard what you typed in this form? Nothing has been saved."]
