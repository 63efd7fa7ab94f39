"""Owners manage Products & Apps and workspaces through the modal, in a real browser."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory
from tests.helpers import sign_in
from workspaces.models import Membership, Product, Role


def owner_of_acme() -> None:
    MembershipFactory(
        user=UserFactory(username="olivia"),
        workspace=WorkspaceFactory(name="Acme", slug="acme"),
        role=Role.OWNER,
    )


def test_owner_adds_a_product_and_an_app_through_the_modal(
    page: Page, live_server, transactional_db
):
    owner_of_acme()
    sign_in(page, live_server, "olivia")
    page.get_by_role("navigation", name="Workspace").get_by_role(
        "link", name="Products & Apps"
    ).click()

    page.get_by_role("link", name="Add product").click()
    dialog = page.get_by_role("dialog", name="Add product")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Name")).to_be_focused()
    dialog.get_by_label("Name").fill("Payments")
    dialog.get_by_role("button", name="Add product").click()

    expect(page.get_by_role("status").filter(has_text="Product “Payments” added.")).to_be_visible()
    expect(dialog).to_be_hidden()
    products = page.get_by_role("region", name="Products")
    expect(products.get_by_role("cell", name="Payments", exact=True)).to_be_visible()
    expect(products.get_by_role("cell", name="payments", exact=True)).to_be_visible()

    page.get_by_role("link", name="Add app").click()
    dialog = page.get_by_role("dialog", name="Add app")
    dialog.get_by_label("Name").fill("Checkout")
    dialog.get_by_label("Slug").fill("checkout-web")
    dialog.get_by_role("button", name="Add app").click()

    expect(page.get_by_role("status").filter(has_text="App “Checkout” added.")).to_be_visible()
    apps = page.get_by_role("region", name="Apps")
    expect(apps.get_by_role("cell", name="checkout-web", exact=True)).to_be_visible()
    assert Product.objects.filter(workspace__slug="acme", slug="payments").exists()


def test_invalid_input_keeps_the_modal_open_with_the_message(
    page: Page, live_server, transactional_db
):
    owner_of_acme()
    sign_in(page, live_server, "olivia")
    page.goto(f"{live_server.url}/w/acme/environments/")

    page.get_by_role("link", name="Add environment").click()
    dialog = page.get_by_role("dialog", name="Add environment")
    dialog.get_by_label("Name").fill("Production")
    dialog.get_by_role("button", name="Add environment").click()

    expect(
        dialog.get_by_text("This workspace already has an environment with name “Production”.")
    ).to_be_visible()
    expect(dialog).to_be_visible()
    dialog.get_by_label("Name").fill("Staging")
    dialog.get_by_role("button", name="Add environment").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("cell", name="Staging", exact=True)).to_be_visible()


def test_escape_closes_the_modal(page: Page, live_server, transactional_db):
    owner_of_acme()
    sign_in(page, live_server, "olivia")
    page.goto(f"{live_server.url}/w/acme/products/")

    page.get_by_role("link", name="Add product").click()
    dialog = page.get_by_role("dialog", name="Add product")
    expect(dialog.get_by_label("Name")).to_be_focused()
    page.keyboard.press("Escape")

    expect(dialog).to_be_hidden()
    expect(page.get_by_role("heading", name="Products & Apps")).to_be_visible()


def test_owner_creates_a_workspace_from_the_switcher(page: Page, live_server, transactional_db):
    owner_of_acme()
    sign_in(page, live_server, "olivia")
    sidebar = page.get_by_role("navigation", name="Workspace")

    sidebar.get_by_role("button", name="Switch workspace").click()
    sidebar.get_by_role("link", name="Create workspace").click()
    dialog = page.get_by_role("dialog", name="Create workspace")
    dialog.get_by_label("Name").fill("Initech Labs")
    dialog.get_by_role("button", name="Create workspace").click()

    expect(page).to_have_url(re.compile(r"/w/initech-labs/tokens/$"))
    expect(sidebar.get_by_role("button", name="Switch workspace")).to_contain_text("Initech Labs")
    expect(page.get_by_text("Workspace “Initech Labs” created. You are its owner.")).to_be_visible()
    membership = Membership.objects.get(workspace__slug="initech-labs")
    assert (membership.user.username, membership.role) == ("olivia", Role.OWNER)


def test_newcomer_without_a_workspace_creates_one(page: Page, live_server, transactional_db):
    UserFactory(username="newbie")
    sign_in(page, live_server, "newbie")

    expect(page.get_by_role("heading", name="Welcome to Coffer")).to_be_visible()
    page.get_by_role("main").get_by_role("link", name="Create workspace").click()
    dialog = page.get_by_role("dialog", name="Create workspace")
    dialog.get_by_label("Name").fill("My Team")
    dialog.get_by_role("button", name="Create workspace").click()

    expect(page).to_have_url(re.compile(r"/w/my-team/tokens/$"))
    sidebar = page.get_by_role("navigation", name="Workspace")
    sidebar.get_by_role("link", name="Environments").click()
    expect(page.get_by_role("cell", name="Production", exact=True)).to_be_visible()
    expect(page.get_by_role("cell", name="Sandbox", exact=True)).to_be_visible()


def test_viewer_sees_no_manage_buttons(page: Page, live_server, transactional_db):
    workspace = WorkspaceFactory(name="Acme", slug="acme")
    MembershipFactory(user=UserFactory(username="vera"), workspace=workspace, role=Role.VIEWER)
    sign_in(page, live_server, "vera")

    page.goto(f"{live_server.url}/w/acme/products/")
    expect(page.get_by_role("heading", name="Products & Apps")).to_be_visible()
    expect(page.get_by_role("link", name="Add product")).to_have_count(0)
    page.goto(f"{live_server.url}/w/acme/members/")
    expect(page.get_by_role("cell", name="vera (you)")).to_be_visible()
    expect(page.get_by_role("link", name="Invite member")).to_have_count(0)
