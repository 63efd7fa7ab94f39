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


# --- No native dialogs, in the whole browser suite ------------------------------------------


def test_every_browser_test_is_watched_for_native_dialogs(request):
    """The watch (conftest's `no_native_dialogs`) is autouse: every test of this folder that
    opens a browser has it, so Playwright's dialog event firing anywhere fails a test."""
    browser_tests = [
        item
        for item in request.session.items
        if "tests/browser/" in str(item.fspath).replace("\\", "/")
        and {"page", "browser"} & set(getattr(item, "fixturenames", ()))
    ]
    assert browser_tests
    unwatched = [
        item.nodeid for item in browser_tests if "no_native_dialogs" not in item.fixturenames
    ]
    assert unwatched == []


def test_a_native_dialog_anywhere_is_seen(page: Page, browser, live_server, no_native_dialogs):
    """An alert() or confirm() in the test's page, in a context of its own and in a page of its
    own is each seen (and would fail the test: this one empties the list at the end)."""
    page.goto(f"{live_server.url}/accounts/login/")
    page.evaluate("() => window.confirm('Really?')")
    own_context = browser.new_context()
    other = own_context.new_page()
    other.goto(f"{live_server.url}/accounts/login/")
    other.evaluate("() => alert('From a context of its own')")
    lone = browser.new_page()
    lone.goto(f"{live_server.url}/accounts/login/")
    lone.evaluate("() => alert('From a page of its own')")
    seen = list(no_native_dialogs)
    no_native_dialogs.clear()  # caused on purpose: the watch would fail this test
    lone.close()
    own_context.close()
    assert [entry.split(":")[0] for entry in seen] == ["confirm", "alert", "alert"], seen
    assert "'Really?'" in seen[0] and "/accounts/login/" in seen[0]
