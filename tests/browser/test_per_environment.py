"""One key, a token per environment, in a real browser: the Create Token modal says where a key
is already valid, "Add for another environment" makes the Sandbox token beside the Production
one, and Compare environments shows both and the gaps (axe-clean at 1280 and 390 pixels)."""

from __future__ import annotations

import subprocess

import pytest
from playwright.sync_api import Page, expect

from tests.api_server import CURL
from tests.browser.test_tokens_page import acme
from tests.factories import make_access_key
from tests.helpers import sign_in
from tokens.models import Token
from workspaces.models import Workspace

LIVE = "sk_live_browser_0123456789abcdef"
TEST = "sk_test_browser_0123456789abcdef"


def test_a_sandbox_token_beside_the_production_one_then_compare(
    page: Page, live_server, transactional_db, axe, screenshot, tmp_path
):
    acme()  # STRIPE_SECRET: Production only, scoped to Payments
    sign_in(page, live_server, "olivia")

    # The Create Token modal says where a typed key is already valid, before any environment.
    page.get_by_role("link", name="Create Token").click()
    dialog = page.get_by_role("dialog", name="Create Token")
    dialog.get_by_label("Token Key").fill("STRIPE_SECRET")
    hint = dialog.locator("#key-hint")
    expect(hint).to_contain_text("STRIPE_SECRET is already valid in:")
    expect(hint).to_contain_text("Production (product Payments)")
    dialog.get_by_role("link", name="Cancel").click()
    question = page.get_by_role("dialog", name="Discard what you typed?")  # in the page
    question.get_by_role("button", name="Discard").click()
    expect(dialog).to_be_hidden()

    # Add for another environment: prefilled, only Sandbox offered.
    page.get_by_role("link", name="Add STRIPE_SECRET for another environment").click()
    dialog = page.get_by_role("dialog", name="Create Token")
    expect(dialog.get_by_label("Token Key")).to_have_value("STRIPE_SECRET")
    expect(dialog.get_by_label("Description")).to_have_value("Stripe secret key (live mode)")
    expect(dialog.get_by_label("Payments")).to_be_checked()
    expect(dialog.get_by_label("Sandbox")).to_be_visible()
    expect(dialog.get_by_label("Production")).to_have_count(0)
    dialog.get_by_label("Token Value").fill(TEST)
    dialog.get_by_label("Sandbox").check()
    dialog.get_by_role("button", name="Create Token").click()
    expect(dialog).to_be_hidden()

    # The key's rows sit together, each named by its environment.
    expect(page.get_by_role("link", name="Edit STRIPE_SECRET (Production)")).to_be_visible()
    expect(page.get_by_role("link", name="Edit STRIPE_SECRET (Sandbox)")).to_be_visible()
    assert TEST not in page.content()
    page.goto(f"{live_server.url}/w/acme/tokens/?q=STRIPE")  # no toast, the key's rows only
    expect(page.get_by_role("link", name="Edit STRIPE_SECRET (Sandbox)")).to_be_visible()
    screenshot(page, "tokens-per-environment")
    stored = {
        t.environments.get().slug: t.reveal() for t in Token.objects.filter(key="STRIPE_SECRET")
    }
    assert stored["sandbox"] == TEST

    # One template, an access key per environment: each resolves to its own value, asked by
    # curl of the running server as a deploy job would.
    workspace = Workspace.objects.get(slug="acme")
    template = tmp_path / "deploy.yaml"
    template.write_text("stripe: $Secret{STRIPE_SECRET}\n")
    for slug, expected in (("production", stored["production"]), ("sandbox", TEST)):
        _key, secret = make_access_key(
            workspace,
            name=f"ci-{slug}",
            environment=workspace.environments.get(slug=slug),
            product=workspace.products.get(slug="payments"),
        )
        answer = subprocess.run(
            [
                CURL,
                "-sS",
                "--fail-with-body",
                "-H",
                f"Authorization: Bearer {secret}",
                "--data-binary",
                f"@{template}",
                f"{live_server.url}/api/v1/resolve?source=deploy.yaml",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert (answer.returncode, answer.stdout) == (0, f"stripe: {expected}\n"), answer.stdout

    # Compare environments: both cells for STRIPE_SECRET, gaps for the others.
    page.get_by_role("tab", name="Compare environments").click()
    table = page.get_by_role("table", name="Token Keys by environment in Acme")
    stripe = table.locator('tr[data-key="STRIPE_SECRET"]')
    expect(stripe.get_by_role("cell")).to_have_count(2)
    expect(stripe.get_by_role("cell").nth(0)).to_contain_text("Product Payments")
    expect(stripe.get_by_role("cell").nth(1)).to_contain_text("Active")
    page.wait_for_timeout(350)
    axe(page)
    screenshot(page, "compare-environments")
    page.get_by_label("Keys missing somewhere").check()
    expect(table.locator('tr[data-key="STRIPE_SECRET"]')).to_have_count(0)
    expect(table.locator('tr[data-key="DB_PASSWORD"]')).to_have_count(1)
    assert "missing=on" in page.url

    # One click fills a gap: DB_PASSWORD is missing in Sandbox.
    db = table.locator('tr[data-key="DB_PASSWORD"]')
    db.get_by_role("link", name="Add DB_PASSWORD for Sandbox").click()
    dialog = page.get_by_role("dialog", name="Create Token")
    expect(dialog.get_by_label("Token Key")).to_have_value("DB_PASSWORD")
    expect(dialog.get_by_label("Sandbox")).to_be_checked()
    assert LIVE not in page.content()


@pytest.mark.parametrize("width", [1280, 390])
def test_compare_environments_passes_axe(
    page: Page, live_server, transactional_db, axe, screenshot, width
):
    acme()
    page.set_viewport_size({"width": width, "height": 860})
    sign_in(page, live_server, "olivia")
    page.goto(f"{live_server.url}/w/acme/tokens/compare/")
    expect(page.get_by_role("table", name="Token Keys by environment in Acme")).to_be_visible()
    axe(page)
    screenshot(page, f"compare-environments-{width}")
    assert page.evaluate(
        "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth + 1"
    ), "the page itself scrolls sideways (only the matrix may)"


@pytest.mark.parametrize("width", [1280, 390])
def test_check_a_configuration_in_every_environment(
    page: Page, live_server, transactional_db, axe, screenshot, width
):
    acme()  # STRIPE_SECRET in Production only (for Payments); SANDBOX_WEBHOOK_SECRET expired
    page.set_viewport_size({"width": width, "height": 860})
    sign_in(page, live_server, "olivia")
    page.goto(f"{live_server.url}/w/acme/tokens/")
    page.get_by_role("tab", name="Compare environments").click()
    page.get_by_role("link", name="Check a configuration").click()
    page.get_by_label("Paste a configuration").fill(
        "STRIPE=$Secret{STRIPE_SECRET}\nHOOK=$Secret{SANDBOX_WEBHOOK_SECRET}\n"
    )
    page.get_by_label("Product").select_option(label="Payments")
    page.get_by_role("button", name="Check").click()
    results = page.get_by_role("region", name="Results")
    expect(results).to_contain_text("Production: 1 reference would fail")
    expect(results).to_contain_text("Sandbox: 2 references would fail")
    expect(results).to_contain_text("token expired on")
    expect(page.get_by_label("Paste a configuration")).to_have_value("")  # not sent back
    axe(page)
    screenshot(page, f"check-configuration-{width}")
