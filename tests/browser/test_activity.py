"""The Activity tab in a browser: member and catalog changes listed, the kind filter in the URL."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser.test_shell import sign_in
from tests.factories import MembershipFactory, TokenFactory, UserFactory, WorkspaceFactory
from workspaces.models import Role


def test_changes_show_in_activity_and_the_kind_filter_narrows_them(
    page: Page, live_server, transactional_db
):
    workspace = WorkspaceFactory(name="Acme", slug="acme")
    MembershipFactory(user=UserFactory(username="olivia"), workspace=workspace, role=Role.OWNER)
    TokenFactory(workspace=workspace, key="STRIPE_SECRET")
    sign_in(page, live_server, "olivia")

    page.get_by_role("link", name="Members").click()
    page.get_by_role("link", name="Invite member").click()
    dialog = page.get_by_role("dialog", name="Invite member")
    dialog.get_by_label("Email").fill("zed@example.com")
    dialog.get_by_role("button", name="Send invitation").click()
    expect(page.get_by_role("heading", name="Invitation sent to zed@example.com")).to_be_visible()

    page.goto(f"{live_server.url}/w/acme/tokens/activity/")
    first = page.get_by_role("row").nth(1)
    expect(first).to_contain_text("Member invited")
    expect(first).to_contain_text("zed@example.com")
    expect(page.get_by_role("cell", name="STRIPE_SECRET")).to_be_visible()

    page.get_by_label("Filter activity by kind").select_option(label="Members")
    expect(page).to_have_url(re.compile(r"\?kind=members$"))
    expect(page.get_by_role("cell", name="STRIPE_SECRET")).to_have_count(0)
    expect(page.get_by_role("row").nth(1)).to_contain_text("Member invited")

    page.get_by_label("Filter activity by kind").select_option(label="All activity")
    expect(page).to_have_url(re.compile(r"/activity/$"))
    expect(page.get_by_role("cell", name="STRIPE_SECRET")).to_be_visible()
