"""The product document's steps 1-8 on the Tokens page, in a real browser, as a user does them.

Elements are found the way a user finds them: by role, label and text. The suite also saves the
screenshots the docs show (into docs/screenshots/ only with `make screenshots`).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from tests.factories import (
    AppFactory,
    MembershipFactory,
    ProductFactory,
    TokenFactory,
    UserFactory,
    WorkspaceFactory,
)
from tests.helpers import WARNING, sign_in
from tokens.models import Token, TokenStatus, TokenType
from workspaces.models import Role


def acme(username: str = "olivia", role: Role = Role.OWNER, tokens: bool = True):
    """Workspace Acme as the demo has it, with a few tokens in every state the table shows."""
    workspace = WorkspaceFactory(name="Acme", slug="acme")
    MembershipFactory(user=UserFactory(username=username), workspace=workspace, role=role)
    products = {
        name: ProductFactory(workspace=workspace, name=name, slug=name.lower())
        for name in ("Payments", "Storefront")
    }
    apps = {
        name: AppFactory(workspace=workspace, name=name, slug=name.lower())
        for name in ("Checkout", "Mobile", "Backoffice")
    }
    if not tokens:
        return workspace
    envs = {env.name: env for env in workspace.environments.all()}
    today = timezone.now().date()
    now = timezone.now()
    made = {}
    for key, kind, description, extra in (
        (
            "DB_PASSWORD",
            TokenType.CREDENTIAL,
            "Read replica password",
            {"period_days": 30, "apps": [apps["Backoffice"]], "environments": [envs["Production"]]},
        ),
        (
            "GITHUB_OAUTH_TOKEN",
            TokenType.OAUTH_TOKEN,
            "",
            {
                "expiry_date": today + dt.timedelta(days=200),
                "products": [products["Storefront"]],
                "apps": [apps["Mobile"]],
                "environments": [envs["Sandbox"]],
            },
        ),
        (
            "INTERNAL_SERVICE_TOKEN",
            TokenType.BEARER_TOKEN,
            "Storefront to backoffice calls",
            {"period_days": 90},
        ),
        (
            "LEGACY_SMS_KEY",
            TokenType.API_KEY,
            "Old SMS provider, being phased out",
            {"apps": [apps["Mobile"]], "environments": [envs["Production"]]},
        ),
        (
            "SANDBOX_WEBHOOK_SECRET",
            TokenType.CREDENTIAL,
            "Webhook signing secret for tests",
            {"period_days": 7, "environments": [envs["Sandbox"]]},
        ),
        (
            "STRIPE_SECRET",
            TokenType.API_KEY,
            "Stripe secret key (live mode)",
            {
                "expiry_date": today + dt.timedelta(days=4),
                "products": [products["Payments"]],
                "environments": [envs["Production"]],
            },
        ),
    ):
        made[key] = TokenFactory(
            workspace=workspace,
            key=key,
            type=kind,
            description=description,
            value=f"sk_live_{key.lower()}_9f8e7d6c5b4a",
            **extra,
        )
    Token.objects.filter(pk=made["DB_PASSWORD"].pk).update(last_used_at=now - dt.timedelta(days=2))
    Token.objects.filter(pk=made["STRIPE_SECRET"].pk).update(
        last_used_at=now - dt.timedelta(hours=3)
    )
    Token.objects.filter(pk=made["SANDBOX_WEBHOOK_SECRET"].pk).update(
        expires_at=now - dt.timedelta(days=3)
    )
    made["LEGACY_SMS_KEY"].revoke(by=None)
    return workspace


def no_sideways_scroll(page: Page) -> bool:
    """Neither the page nor the table's card reaches past its width."""
    return page.evaluate(
        """() => [document.documentElement, ...document.querySelectorAll('.card-table')]
          .every((box) => box.scrollWidth <= box.clientWidth + 1)"""
    )


def toast(page: Page, text: str):
    return page.get_by_role("status").filter(has_text=text)


def row(page: Page, key: str):
    return page.get_by_role("row").filter(has=page.get_by_text(key, exact=True))


def test_document_steps_1_to_8(page: Page, live_server, transactional_db, screenshot):
    page.set_viewport_size({"width": 1280, "height": 860})
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    acme()
    sign_in(page, live_server, "olivia")

    # Step 1: Open the Tokens page: in the sidebar click Tokens, select the Tokens tab.
    sidebar = page.get_by_role("navigation", name="Workspace")
    sidebar.get_by_role("link", name="Products & Apps").click()
    sidebar.get_by_role("link", name="Tokens").click()
    page.get_by_role("tab", name="Tokens").click()
    expect(page.get_by_role("tab", name="Tokens")).to_have_attribute("aria-selected", "true")
    table = page.get_by_role("table", name="Tokens in Acme")
    expect(table).to_be_visible()
    for heading in ("Key", "Type", "Description", "Scope", "Environments", "Expiry", "Status"):
        expect(table.get_by_role("columnheader", name=heading, exact=True)).to_be_visible()
    expect(table.get_by_role("columnheader", name="Last used")).to_be_visible()
    assert no_sideways_scroll(page), "the docs' screenshot would show an overflow"
    screenshot(page, "tokens-table")

    # Step 2: Create a Token: click Create Token, a configuration modal appears.
    page.get_by_role("link", name="Create Token").click()
    dialog = page.get_by_role("dialog", name="Create Token")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Token Key")).to_be_focused()
    dialog.get_by_label("Token Key").fill("PAYMENT_API_KEY")
    value = dialog.get_by_label("Token Value")
    expect(value).to_have_attribute("type", "password")
    expect(value).to_have_attribute("autocomplete", "new-password")
    value.fill("pk_live_51HfA9cE2bq7d")
    dialog.get_by_role("button", name="Show value").click()
    expect(value).to_have_attribute("type", "text")
    dialog.get_by_role("button", name="Hide value").click()
    expect(value).to_have_attribute("type", "password")
    dialog.get_by_label("Description").fill("Payment gateway API key for card processing")

    # Step 3: Select the Token Type.
    type_select = dialog.get_by_label("Type", exact=True)
    options = type_select.locator("option")
    expect(options).to_have_text(["Credential", "API Key", "Bearer Token", "OAuth Token"])
    type_select.select_option(label="API Key")

    # Step 4: Set Expiry (Expiry Date and/or Period; both empty: never expires).
    expect(
        dialog.get_by_text("If both fields are left empty, the token will never expire.")
    ).to_be_visible()
    expect(dialog.get_by_label("Custom days")).to_be_hidden()
    expiry = (timezone.now().date() + dt.timedelta(days=365)).isoformat()
    dialog.get_by_label("Expiry Date").fill(expiry)
    dialog.get_by_label("Period", exact=True).select_option(label="Custom")
    expect(dialog.get_by_label("Custom days")).to_be_focused()
    dialog.get_by_label("Custom days").fill("180")

    # Step 5: Define Token Scope: products and apps.
    dialog.get_by_role("group", name="Products").get_by_label("Payments").check()
    dialog.get_by_role("group", name="Apps").get_by_label("Checkout").check()

    # Step 6: Choose Environments: Production and Sandbox are offered.
    environments = dialog.get_by_role("group", name="Environments")
    expect(environments.get_by_label("Production")).to_be_visible()
    expect(environments.get_by_label("Sandbox")).to_be_visible()
    environments.get_by_label("Production").check()

    page.set_viewport_size({"width": 1280, "height": 1400})
    page.wait_for_timeout(300)  # the modal's fade-in
    dialog.locator(".modal-body").evaluate("(body) => { body.scrollTop = 0; }")
    screenshot(page, "create-token-modal")
    page.set_viewport_size({"width": 1280, "height": 860})

    # Step 7: Save the Token: click Create Token; it appears in the table.
    dialog.get_by_role("button", name="Create Token").click()
    expect(dialog).to_be_hidden()
    expect(
        page.get_by_role("status").filter(has_text="Token PAYMENT_API_KEY created.")
    ).to_be_visible()
    created = row(page, "PAYMENT_API_KEY")
    expect(created).to_have_class(re.compile("row-highlight"))
    expect(created).to_contain_text("API Key")
    expect(created).to_contain_text("Payment gateway API key")
    expect(created).to_contain_text("Payments")
    expect(created).to_contain_text("Checkout")
    expect(created).to_contain_text("Production")
    expect(created).to_contain_text("Active")
    expect(created).to_contain_text("in 5\xa0months")  # the 180-day Period wins over the date
    for action in ("Edit", "Revoke", "Delete"):
        expect(created.get_by_role("link", name=f"{action} PAYMENT_API_KEY")).to_be_visible()
    token = Token.objects.get(key="PAYMENT_API_KEY")
    assert token.reveal() == "pk_live_51HfA9cE2bq7d"
    assert token.period_days == 180
    assert "pk_live_51HfA9cE2bq7d" not in page.content()

    # Step 8: Referencing Tokens: copy the $Secret notation.
    created.get_by_role("button", name="Copy $Secret{PAYMENT_API_KEY}").click()
    expect(
        page.get_by_role("status").filter(
            has_text="Copied $Secret{PAYMENT_API_KEY} to the clipboard"
        )
    ).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == "$Secret{PAYMENT_API_KEY}"


def test_escape_closes_the_modal_and_cancel_too(page: Page, live_server, transactional_db):
    acme()
    sign_in(page, live_server, "olivia")
    page.get_by_role("link", name="Create Token").click()
    dialog = page.get_by_role("dialog", name="Create Token")
    expect(dialog.get_by_label("Token Key")).to_be_focused()  # the modal has finished opening
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("link", name="Create Token")).to_be_focused()  # back where it was
    page.keyboard.press("Enter")
    expect(dialog.get_by_label("Token Key")).to_be_focused()
    dialog.get_by_role("link", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(page).to_have_url(re.compile(r"/w/acme/tokens/$"))


def test_invalid_input_is_explained_in_the_modal_and_the_value_kept_in_the_browser(
    page: Page, live_server, transactional_db
):
    acme()
    sign_in(page, live_server, "olivia")
    page.get_by_role("link", name="Create Token").click()
    dialog = page.get_by_role("dialog", name="Create Token")
    dialog.get_by_label("Token Key").fill("STRIPE SECRET")
    dialog.get_by_label("Token Value").fill("typed-secret-value")
    dialog.get_by_label("Description").fill("Kept after the error")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        dialog.get_by_role("button", name="Create Token").click()
    assert "typed-secret-value" not in posted.value.text()  # the server never sends it back

    expect(dialog.get_by_text("A Token Key starts with a letter or underscore")).to_be_visible()
    expect(dialog.get_by_text("Choose at least one environment.")).to_be_visible()
    expect(dialog.get_by_label("Token Key")).to_be_focused()
    expect(dialog.get_by_label("Token Key")).to_have_attribute("aria-invalid", "true")
    expect(dialog.get_by_label("Description")).to_have_value("Kept after the error")
    # The browser kept what was typed (hx-preserve), and says so.
    expect(dialog.get_by_label("Token Value")).to_have_value("typed-secret-value")
    expect(dialog.get_by_text("The value you typed is still in the field")).to_be_visible()
    expect(dialog.get_by_text("the value you typed was not sent back")).to_be_hidden()
    assert "typed-secret-value" not in page.content()

    # The summary at the top links to each field with a problem.
    summary = dialog.get_by_role("alert").filter(has_text="Please correct")
    summary.get_by_role("link", name="Environments").click()
    expect(
        dialog.get_by_role("group", name="Environments").get_by_label("Production")
    ).to_be_focused()

    dialog.get_by_label("Token Key").fill("STRIPE_RESTRICTED")
    dialog.get_by_role("group", name="Environments").get_by_label("Sandbox").check()
    dialog.get_by_role("button", name="Create Token").click()
    expect(dialog).to_be_hidden()
    expect(row(page, "STRIPE_RESTRICTED")).to_contain_text("Sandbox")


PEM = (
    "-----BEGIN PRIVATE KEY-----\r\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgevZzL1gdAFr88hb2\r\n"
    "OF/2NxApJCzGCEDdfSp6VQO30hyhRANCAAQRWz+jn65BtOMvdyHKcvjBeBSDZH2r\n"
    "-----END PRIVATE KEY-----\n"
)


def test_a_pem_key_is_loaded_from_a_file_exactly(
    page: Page, live_server, transactional_db, tmp_path: Path, screenshot
):
    acme()
    sign_in(page, live_server, "olivia")
    key_file = tmp_path / "signing-key.pem"
    key_file.write_bytes(PEM.encode())
    page.get_by_role("link", name="Create Token").click()
    dialog = page.get_by_role("dialog", name="Create Token")
    dialog.get_by_label("Token Key").fill("SIGNING_KEY")
    dialog.get_by_label("Token Value").fill("typed-too")
    picker = dialog.get_by_label("Or load the value from a file")
    expect(picker).to_have_attribute("type", "file")
    picker.set_input_files(key_file)
    dialog.get_by_role("group", name="Environments").get_by_label("Production").check()
    dialog.get_by_role("button", name="Create Token").click()

    expect(dialog.get_by_text("Type a value or choose a file, not both.")).to_be_visible()
    expect(dialog.get_by_label("Token Value")).to_have_value("typed-too")  # kept by the browser
    expect(dialog.get_by_label("Or load the value from a file")).to_have_value("")
    assert "signing-key.pem" not in page.content()
    assert not Token.objects.filter(key="SIGNING_KEY").exists()

    dialog.get_by_label("Token Value").fill("")
    dialog.get_by_label("Or load the value from a file").set_input_files(key_file)
    page.set_viewport_size({"width": 1280, "height": 1240})
    page.wait_for_timeout(300)
    screenshot(page, "create-token-from-file")
    dialog.get_by_role("button", name="Create Token").click()
    expect(dialog).to_be_hidden()
    expect(toast(page, "Token SIGNING_KEY created.")).to_be_visible()
    assert Token.objects.get(key="SIGNING_KEY").reveal() == PEM
    assert "MIGHAgEAMBMGByqGSM49" not in page.content()


def test_edit_is_prefilled_keeps_the_value_and_warns_on_rename(
    page: Page, live_server, transactional_db
):
    acme()
    sign_in(page, live_server, "olivia")
    row(page, "DB_PASSWORD").get_by_role("link", name="Edit DB_PASSWORD").click()
    dialog = page.get_by_role("dialog", name="Edit token DB_PASSWORD")
    expect(dialog.get_by_label("Token Key")).to_have_value("DB_PASSWORD")
    expect(dialog.get_by_label("Description")).to_have_value("Read replica password")
    expect(dialog.get_by_label("Period", exact=True)).to_have_value("30")
    expect(dialog.get_by_role("group", name="Apps").get_by_label("Backoffice")).to_be_checked()
    expect(dialog.get_by_label("Token Value")).to_have_value("")
    expect(dialog.get_by_text("Leave blank to keep the current value")).to_be_visible()

    warning = dialog.get_by_text("Renaming breaks references")
    expect(warning).to_be_hidden()
    dialog.get_by_label("Token Key").fill("REPLICA_PASSWORD")
    expect(warning).to_be_visible()
    expect(dialog.get_by_role("alert")).to_contain_text("$Secret{DB_PASSWORD}")
    dialog.get_by_label("Token Key").fill("DB_PASSWORD")
    expect(warning).to_be_hidden()
    dialog.get_by_label("Token Key").fill("REPLICA_PASSWORD")
    dialog.get_by_label("Description").fill("Read replica, rotated monthly")
    dialog.get_by_role("button", name="Save changes").click()

    expect(dialog).to_be_hidden()
    expect(
        page.get_by_role("status").filter(has_text="update any $Secret{DB_PASSWORD} references")
    ).to_be_visible()
    edited = row(page, "REPLICA_PASSWORD")
    expect(edited).to_contain_text("Read replica, rotated monthly")
    expect(edited.get_by_role("button", name="Copy $Secret{REPLICA_PASSWORD}")).to_be_focused()
    token = Token.objects.get(key="REPLICA_PASSWORD")
    assert token.reveal() == "sk_live_db_password_9f8e7d6c5b4a"


def test_revoke_shows_the_warning_and_last_use_then_locks_editing(
    page: Page, live_server, transactional_db
):
    acme()
    sign_in(page, live_server, "olivia")
    row(page, "STRIPE_SECRET").get_by_role("link", name="Revoke STRIPE_SECRET").click()
    dialog = page.get_by_role("dialog", name="Revoke STRIPE_SECRET?")
    expect(dialog.get_by_text(WARNING)).to_be_visible()
    expect(dialog).to_contain_text("Last used")
    expect(dialog).to_contain_text("3\xa0hours ago")
    dialog.get_by_role("button", name="Revoke token").click()

    expect(dialog).to_be_hidden()
    expect(
        page.get_by_role("status").filter(has_text="Token STRIPE_SECRET revoked.")
    ).to_be_visible()
    # Revoked tokens leave the list; Show revoked lists them, with Delete only.
    expect(row(page, "STRIPE_SECRET")).to_have_count(0)
    page.get_by_label("Show revoked").check()
    revoked = row(page, "STRIPE_SECRET")
    expect(revoked).to_contain_text("Revoked")
    expect(revoked.get_by_role("link", name="Edit STRIPE_SECRET")).to_have_count(0)
    expect(revoked.get_by_role("link", name="Revoke STRIPE_SECRET")).to_have_count(0)
    assert Token.objects.get(key="STRIPE_SECRET").status == TokenStatus.REVOKED


def test_delete_asks_for_the_key_typed(page: Page, live_server, transactional_db):
    acme()
    sign_in(page, live_server, "olivia")
    row(page, "GITHUB_OAUTH_TOKEN").get_by_role("link", name="Delete GITHUB_OAUTH_TOKEN").click()
    dialog = page.get_by_role("dialog", name="Delete GITHUB_OAUTH_TOKEN?")
    expect(dialog.get_by_text(WARNING)).to_be_visible()
    expect(dialog.get_by_text("Never used", exact=True)).to_be_visible()  # its Last used
    expect(dialog.get_by_text("Never used.", exact=True)).to_be_visible()  # nobody resolved it
    confirm = dialog.get_by_label("Type GITHUB_OAUTH_TOKEN to confirm")
    expect(confirm).to_be_focused()
    delete = dialog.get_by_role("button", name="Delete token")
    expect(delete).to_be_disabled()
    confirm.fill("GITHUB_OAUTH")
    expect(delete).to_be_disabled()
    confirm.fill("GITHUB_OAUTH_TOKEN")
    expect(delete).to_be_enabled()
    delete.click()

    expect(dialog).to_be_hidden()
    expect(
        page.get_by_role("status").filter(has_text="Token GITHUB_OAUTH_TOKEN deleted for good.")
    ).to_be_visible()
    expect(row(page, "GITHUB_OAUTH_TOKEN")).to_have_count(0)
    assert not Token.objects.filter(key="GITHUB_OAUTH_TOKEN").exists()


def test_a_token_deleted_meanwhile_is_explained_and_the_page_refreshes(
    page: Page, live_server, transactional_db
):
    acme()
    sign_in(page, live_server, "olivia")
    expect(row(page, "DB_PASSWORD")).to_be_visible()
    Token.objects.filter(key="DB_PASSWORD").delete()  # by someone else, in another tab

    page.get_by_role("link", name="Edit DB_PASSWORD").click()

    expect(toast(page, "That no longer exists. The page will refresh.")).to_be_visible()
    expect(row(page, "DB_PASSWORD")).to_have_count(0)
    expect(row(page, "STRIPE_SECRET")).to_be_visible()


def test_search_filters_and_sort_live_in_the_url(page: Page, live_server, transactional_db):
    acme()
    sign_in(page, live_server, "olivia")
    page.get_by_label("Search tokens").fill("secret")
    expect(page).to_have_url(re.compile(r"\?q=secret$"))
    expect(page.get_by_role("row")).to_have_count(3)  # heading + 2 tokens
    page.get_by_label("Filter by status").select_option(label="Expired")
    expect(page).to_have_url(re.compile(r"\?q=secret&status=expired$"))
    expect(page.get_by_role("row")).to_have_count(2)
    expect(row(page, "SANDBOX_WEBHOOK_SECRET")).to_contain_text("Expired")

    page.reload()  # a shared link or a reload shows the same
    expect(page.get_by_label("Search tokens")).to_have_value("secret")
    expect(page.get_by_label("Filter by status")).to_have_value("expired")
    expect(page.get_by_role("row")).to_have_count(2)

    page.go_back()
    expect(page).to_have_url(re.compile(r"\?q=secret$"))
    expect(page.get_by_role("row")).to_have_count(3)

    page.get_by_role("link", name="Clear filters").click()
    expect(page.get_by_role("row")).to_have_count(6)  # the revoked one hidden
    page.get_by_role("link", name="Last used").click()
    expect(page).to_have_url(re.compile(r"\?sort=last_used$"))
    expect(page.get_by_role("row").nth(1)).to_contain_text("STRIPE_SECRET")
    page.get_by_label("Filter by environment").select_option(label="Sandbox")
    expect(page).to_have_url(re.compile(r"\?env=sandbox&sort=last_used$"))
    expect(page.get_by_role("row")).to_have_count(4)


def test_viewers_see_tokens_but_no_actions(page: Page, live_server, transactional_db):
    acme(username="vera", role=Role.VIEWER)
    sign_in(page, live_server, "vera")
    expect(row(page, "STRIPE_SECRET")).to_be_visible()
    expect(page.get_by_role("link", name="Create Token")).to_have_count(0)
    expect(page.get_by_role("link", name=re.compile(r"^(Edit|Revoke|Delete) "))).to_have_count(0)
    expect(
        row(page, "STRIPE_SECRET").get_by_role("button", name="Copy $Secret{STRIPE_SECRET}")
    ).to_be_visible()


def test_empty_workspace_explains_tokens(page: Page, live_server, transactional_db):
    acme(tokens=False)
    sign_in(page, live_server, "olivia")
    expect(page.get_by_role("heading", name="No tokens yet")).to_be_visible()
    expect(page.get_by_text("Tokens are secure credentials")).to_be_visible()
    page.get_by_role("link", name="Create Token").last.click()
    expect(page.get_by_role("dialog", name="Create Token")).to_be_visible()


def test_activity_tab_lists_what_happened(page: Page, live_server, transactional_db):
    acme()
    sign_in(page, live_server, "olivia")
    page.get_by_role("tab", name="Activity").click()
    expect(page.get_by_role("tab", name="Activity")).to_have_attribute("aria-selected", "true")
    first = page.get_by_role("row").nth(1)
    expect(first).to_contain_text("Revoked")
    expect(first).to_contain_text("LEGACY_SMS_KEY")
    assert "sk_live_" not in page.content()


def test_usable_at_390_pixels(page: Page, live_server, transactional_db, screenshot):
    page.set_viewport_size({"width": 390, "height": 844})
    acme()
    sign_in(page, live_server, "olivia")
    expect(page.get_by_role("heading", name="Tokens", level=1)).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    stripe = row(page, "STRIPE_SECRET")
    expect(stripe.get_by_role("link", name="Edit STRIPE_SECRET")).to_be_visible()
    expect(stripe).to_contain_text("Expires soon")
    assert no_sideways_scroll(page), "the docs' screenshot would show an overflow"
    screenshot(page, "tokens-mobile")

    page.get_by_role("button", name="Filters").click()  # the sort is with the filters
    page.get_by_label("Sort by").select_option(label="Expires first")
    expect(page).to_have_url(re.compile(r"\?sort=expiry$"))
    page.get_by_role("link", name="Create Token").click()
    dialog = page.get_by_role("dialog", name="Create Token")
    expect(dialog.get_by_label("Token Key")).to_be_focused()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()


@pytest.fixture
def no_js_page(browser, live_server):
    context = browser.new_context(
        java_script_enabled=False, viewport={"width": 1280, "height": 900}
    )
    yield context.new_page()
    context.close()


def test_everything_works_without_javascript(no_js_page: Page, live_server, transactional_db):
    page = no_js_page
    acme()
    sign_in(page, live_server, "olivia")
    page.get_by_role("link", name="Create Token").click()
    expect(page).to_have_url(re.compile(r"/w/acme/tokens/new/$"))
    page.get_by_label("Token Key").fill("NO_JS_TOKEN")
    page.get_by_label("Token Value").fill("plain-post-value-123")
    page.get_by_label("Period", exact=True).select_option(label="Custom")
    page.get_by_label("Custom days").fill("45")  # shown: nothing hides it without JavaScript
    page.get_by_role("group", name="Environments").get_by_label("Production").check()
    page.get_by_role("button", name="Create Token").click()

    expect(page).to_have_url(re.compile(r"/w/acme/tokens/\?highlight="))
    expect(page.get_by_role("status").filter(has_text="NO_JS_TOKEN")).to_be_visible()
    created = row(page, "NO_JS_TOKEN")
    expect(created).to_have_class(re.compile("row-highlight"))
    assert Token.objects.get(key="NO_JS_TOKEN").period_days == 45

    page.get_by_label("Search tokens").fill("no_js")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"\?q=no_js"))
    expect(page.get_by_role("row")).to_have_count(2)

    created.get_by_role("link", name="Delete NO_JS_TOKEN").click()
    page.get_by_label("Type NO_JS_TOKEN to confirm").fill("NO_JS_TOKEN")
    page.get_by_role("button", name="Delete token").click()
    expect(page).to_have_url(re.compile(r"/w/acme/tokens/$"))
    expect(row(page, "NO_JS_TOKEN")).to_have_count(0)


def test_pages_of_tokens_with_next_previous_and_rows_per_page(
    page: Page, live_server, transactional_db
):
    workspace = acme(tokens=False)
    for n in range(30):
        TokenFactory(workspace=workspace, key=f"SERVICE_{n:02d}")
    sign_in(page, live_server, "olivia")
    expect(page.get_by_text("1–25 of 30 tokens")).to_be_visible()
    page.get_by_role("link", name="Next").click()
    expect(page).to_have_url(re.compile(r"\?page=2$"))
    expect(page.get_by_text("26–30 of 30 tokens")).to_be_visible()
    expect(row(page, "SERVICE_29")).to_be_visible()
    page.go_back()
    expect(page.get_by_text("1–25 of 30 tokens")).to_be_visible()
    page.get_by_label("Rows per page").select_option("50")
    expect(page).to_have_url(re.compile(r"\?per_page=50$"))
    expect(page.get_by_text("1–30 of 30 tokens")).to_be_visible()
    page.get_by_label("Search tokens").fill("SERVICE_1")
    expect(page).to_have_url(re.compile(r"\?q=SERVICE_1&per_page=50$"))
    expect(page.get_by_text("1–10 of 10 tokens matching")).to_be_visible()
