"""A newcomer signs in, walks the sidebar and switches workspace, in a real browser."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory
from tests.helpers import sign_in


def test_sign_in_walk_sidebar_and_switch_workspace(page: Page, live_server, transactional_db):
    user = UserFactory(username="newcomer")
    acme = WorkspaceFactory(name="Acme", slug="acme")
    globex = WorkspaceFactory(name="Globex", slug="globex")
    MembershipFactory(user=user, workspace=acme)
    MembershipFactory(user=user, workspace=globex)

    sign_in(page, live_server, "newcomer")
    expect(page.get_by_role("heading", name="Tokens", level=1)).to_be_visible()
    expect(page.get_by_role("tab", name="Tokens")).to_have_attribute("aria-selected", "true")

    sidebar = page.get_by_role("navigation", name="Workspace")
    sidebar.get_by_role("link", name="Products & Apps").click()
    expect(page.get_by_role("heading", name="Products & Apps")).to_be_visible()
    sidebar.get_by_role("link", name="Environments").click()
    expect(page.get_by_role("cell", name="Production", exact=True)).to_be_visible()
    expect(page.get_by_role("cell", name="Sandbox", exact=True)).to_be_visible()
    sidebar.get_by_role("link", name="Members").click()
    expect(page.get_by_role("cell", name="newcomer (you)")).to_be_visible()
    sidebar.get_by_role("link", name="Tokens").click()
    expect(page).to_have_url(re.compile(r"/w/acme/tokens/$"))

    sidebar.get_by_role("button", name="Switch workspace").click()
    sidebar.get_by_role("link", name="Globex").click()
    expect(page).to_have_url(re.compile(r"/w/globex/tokens/$"))
    expect(sidebar.get_by_role("button", name="Switch workspace")).to_contain_text("Globex")
