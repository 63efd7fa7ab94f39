"""Activity in a browser: one sentence per event, filters found by their labels and kept in the
URL, details opened from the keyboard, keys whole and never underlined, axe at both sizes."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from playwright.sync_api import Page, expect

from audit.models import AuditAction, AuditEvent
from tests.browser.test_shell import sign_in
from tests.factories import MembershipFactory, TokenFactory, UserFactory, WorkspaceFactory
from workspaces.models import Role

SIZES = {"desktop": (1280, 900), "phone": (390, 844)}
API = {"access_key": "ci-deploy", "identifier": "cfr_AbCd…", "client_address": "10.0.0.7"}


def trail():
    """Acme with a long key, a week of events and a resolve through the API."""
    workspace = WorkspaceFactory(name="Acme", slug="acme")
    olivia = UserFactory(username="olivia")
    MembershipFactory(user=olivia, workspace=workspace, role=Role.OWNER)
    TokenFactory(workspace=workspace, key="STRIPE_SECRET", by=olivia)
    TokenFactory(workspace=workspace, key="INTERNAL_SERVICE_TOKEN_FOR_BACKOFFICE", by=olivia)
    AuditEvent.record(
        workspace,
        AuditAction.MEMBER_ADDED,
        by=olivia,
        detail={"member": "zed", "role": "viewer"},
        at=dt.datetime(2026, 11, 20, 9, 30, tzinfo=dt.UTC),
    )
    AuditEvent.record(
        workspace,
        AuditAction.RESOLVED,
        actor_name="access key ci-deploy (cfr_AbCd…)",
        detail={
            **API,
            "keys": ["PROD_DB_PASSWORD", "INTERNAL_SERVICE_TOKEN_FOR_BACKOFFICE"],
            "references": 2,
            "environment": "production",
            "product": None,
            "app": None,
            "source": "<values>",
        },
    )
    return workspace


def activity(page: Page, live_server, query: str = "") -> None:
    page.goto(f"{live_server.url}/w/acme/tokens/activity/{query}")


def test_changes_show_as_sentences_and_the_kind_filter_narrows_them(
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

    activity(page, live_server)
    expect(page.get_by_role("heading", name="Activity", level=1)).to_be_visible()
    first = page.get_by_role("row").nth(1)
    expect(first).to_contain_text("olivia invited zed@example.com as Viewer")
    expect(page.get_by_text("system created STRIPE_SECRET")).to_be_visible()

    page.get_by_label("Kind").select_option(label="Members")
    expect(page).to_have_url(re.compile(r"\?kind=members$"))
    expect(page.get_by_text("system created STRIPE_SECRET")).to_have_count(0)
    expect(page.get_by_role("row").nth(1)).to_contain_text("olivia invited zed@example.com")

    page.get_by_label("Kind").select_option(label="All activity")
    expect(page).to_have_url(re.compile(r"/activity/$"))
    expect(page.get_by_text("system created STRIPE_SECRET")).to_be_visible()


def test_filters_are_found_by_their_labels_and_kept_in_the_url(
    page: Page, live_server, transactional_db
):
    trail()
    sign_in(page, live_server, "olivia")
    activity(page, live_server)
    rows = page.get_by_role("row")
    expect(rows).to_have_count(5)  # the heading row and four events

    page.get_by_label("Token key").fill("INTERNAL_SERVICE_TOKEN_FOR_BACKOFFICE")
    page.get_by_label("Token key").press("Enter")
    expect(page).to_have_url(re.compile(r"token=INTERNAL_SERVICE_TOKEN_FOR_BACKOFFICE"))
    expect(rows).to_have_count(3)  # its creation and the resolve that read it
    expect(
        page.get_by_text("2 events · about INTERNAL_SERVICE_TOKEN_FOR_BACKOFFICE")
    ).to_be_visible()

    page.get_by_role("link", name="Clear filters").click()
    expect(rows).to_have_count(5)
    page.get_by_label("Who").select_option(label="olivia")
    expect(page).to_have_url(re.compile(r"actor=olivia"))
    expect(rows).to_have_count(4)  # her two tokens and the member she added, not ci-deploy
    expect(page.get_by_text("ci-deploy resolved")).to_have_count(0)

    page.get_by_label("Who").select_option(label="Everyone")
    page.get_by_label("From", exact=True).fill("2026-11-01")
    page.get_by_label("To", exact=True).fill("2026-11-30")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"since=2026-11-01&until=2026-11-30"))
    expect(rows).to_have_count(2)
    expect(rows.nth(1)).to_contain_text("olivia added zed as Viewer")

    page.get_by_label("From", exact=True).fill("2026-12-31")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_role("alert")).to_contain_text(
        "“To” (2026-11-30) is before “From” (2026-12-31)."
    )


def test_details_open_and_close_from_the_keyboard(page: Page, live_server, transactional_db):
    trail()
    sign_in(page, live_server, "olivia")
    activity(page, live_server)
    sentence = page.get_by_text("ci-deploy resolved PROD_DB_PASSWORD")
    facts = page.get_by_text("Recorded as").first
    expect(facts).to_be_hidden()

    sentence.focus()
    page.keyboard.press("Enter")
    expect(facts).to_be_visible()
    expect(page.get_by_text("API values request")).to_be_visible()
    page.keyboard.press("Space")
    expect(facts).to_be_hidden()

    # Reached with Tab like any control: from the last filter, Tab goes on to the events.
    page.get_by_role("button", name="Apply").focus()
    summaries = page.locator("summary")
    for _ in range(6):
        page.keyboard.press("Tab")
        if summaries.first.evaluate("el => el === document.activeElement"):
            break
    expect(summaries.first).to_be_focused()


def test_keys_stay_whole_and_are_never_underlined(page: Page, live_server, transactional_db):
    trail()
    sign_in(page, live_server, "olivia")
    activity(page, live_server)

    keys = page.locator("summary .event-key")
    expect(keys.first).to_be_visible()
    for index in range(keys.count()):
        key = keys.nth(index)
        style = key.evaluate(
            """el => {
                const lines = el.getClientRects().length;
                const decorated = [];
                for (let node = el; node; node = node.parentElement) {
                    const line = getComputedStyle(node).textDecorationLine;
                    if (line && line !== 'none') decorated.push(node.tagName);
                }
                return {lines, decorated, text: el.textContent,
                        whole: el.scrollWidth <= el.clientWidth};
            }"""
        )
        assert style["lines"] == 1, f"{style['text']} is broken across lines"
        assert style["decorated"] == [], f"{style['text']} is underlined: {style['decorated']}"
        assert style["whole"], f"{style['text']} is cut at 1280 px"


@pytest.mark.parametrize("size", SIZES)
def test_activity_is_accessible_and_looks_right(
    page: Page, live_server, transactional_db, axe, screenshot, size
):
    trail()
    width, height = SIZES[size]
    page.set_viewport_size({"width": width, "height": height})
    sign_in(page, live_server, "olivia")
    activity(page, live_server, "?since=2026-13-01")
    expect(page.get_by_role("alert")).to_contain_text("is not a date for “From”")
    page.get_by_text("ci-deploy resolved PROD_DB_PASSWORD").click()
    expect(page.get_by_text("Recorded as").first).to_be_visible()
    axe(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= width, "no sideways scroll"
    screenshot(page, f"activity-log-{size}", full_page=True)
