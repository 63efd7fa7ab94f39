"""No sideways scrolling: the pages fit 1280, 1024, 390 and 320 px wide with the longest things a
workspace may hold (a 128-character key, a 100-character workspace name, a token scoped to
many products and apps, a long description), and what is cut short can still be read whole
without a mouse. The suite also takes the docs' phone screenshots (`make screenshots` saves them).
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.factories import (
    AppFactory,
    MembershipFactory,
    ProductFactory,
    TokenFactory,
    UserFactory,
    WorkspaceFactory,
    make_access_key,
    make_workload_identity,
)
from tests.helpers import sign_in
from tokens.models import Token

WIDTHS = [1280, 1024, 390, 320]
LONG_NAME = "Acme International Payments, Logistics and Very Long Workspace Names Holdings GmbH"
LONG_KEY = "A" * 40 + "_VERY_LONG_KEY_WITHOUT_MANY_BREAKS_" + "B" * 53
LONG_DESCRIPTION = (
    "Used by the nightly settlement job and the partner reconciliation exports; rotate with "
    "the payments team, who keep the runbook for it in the shared drive, before every quarter."
)

PAGES = [
    "tokens/",
    "tokens/activity/",
    "tokens/access-keys/",
    "tokens/workload-identities/",
    "{detail}",
    "products/",
]


def crowded_workspace() -> str:
    workspace = WorkspaceFactory(name=LONG_NAME, slug="acme")
    MembershipFactory(user=UserFactory(username="olivia"), workspace=workspace, role="owner")
    products = [
        ProductFactory(workspace=workspace, name=f"Product number {n}", slug=f"p{n}")
        for n in range(8)
    ]
    apps = [
        AppFactory(workspace=workspace, name=f"Application {n}", slug=f"a{n}") for n in range(8)
    ]
    token = TokenFactory(
        workspace=workspace,
        key=LONG_KEY,
        description=LONG_DESCRIPTION,
        products=products,
        apps=apps,
        environments=list(workspace.environments.all()),
    )
    TokenFactory(workspace=workspace, key="SHORT_ONE", products=products[:1])
    make_access_key(workspace, name="a-rather-long-access-key-name-for-the-nightly-backup-job")
    make_workload_identity(
        workspace,
        name="a-rather-long-workload-identity-name-for-the-nightly-deploy",
        issuer="https://gitlab.example.com/a/very/long/path/for/a/self-hosted/gitlab/instance",
        conditions=[
            {"claim": "project_path", "pattern": "a-very-long-group-name/with-a-subgroup/**"},
            {"claim": "sub", "pattern": "project_path:a-very-long-group-name/x:ref_type:branch"},
        ],
    )
    Token.objects.filter(pk=token.pk).update(value_hint="abcd")
    return f"tokens/{token.pk}/"


def overflow(page: Page) -> dict:
    """How far the page, and any card, table or chip list, reaches past its box."""
    return page.evaluate(
        """() => {
          const doc = document.documentElement;
          const wider = [];
          document.querySelectorAll('.card-table, .sidebar, .modal-content, main').forEach((el) => {
            if (el.scrollWidth > el.clientWidth + 1) wider.push(el.className + ' by '
              + (el.scrollWidth - el.clientWidth) + 'px');
          });
          return {page: doc.scrollWidth - doc.clientWidth, boxes: wider};
        }"""
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_no_sideways_scroll(page: Page, live_server, transactional_db, width):
    detail = crowded_workspace()
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, live_server, "olivia")
    for path in PAGES:
        page.goto(f"{live_server.url}/w/acme/{path.format(detail=detail)}")
        expect(page.get_by_role("main")).to_be_visible()
        measured = overflow(page)
        assert measured == {"page": 0, "boxes": []}, f"{path} at {width}px: {measured}"
    page.goto(f"{live_server.url}/w/acme/tokens/")
    page.get_by_role("link", name="Create Token").click()
    expect(page.get_by_role("dialog", name="Create Token")).to_be_visible()
    page.wait_for_timeout(350)
    assert overflow(page) == {"page": 0, "boxes": []}, f"the modal at {width}px"


@pytest.mark.parametrize("width", WIDTHS)
def test_the_demo_workspace_fits_too(page: Page, live_server, transactional_db, width):
    from tests.browser.test_tokens_page import acme

    acme()  # tokens in every state: reminders, badges, revoked rows with fewer actions
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, live_server, "olivia")
    assert overflow(page) == {"page": 0, "boxes": []}, f"at {width}px"
    labels_fit = page.evaluate(
        """() => {
          const ctx = document.createElement('canvas').getContext('2d');
          return Array.from(document.querySelectorAll('td[data-label]')).every((td) => {
            const style = getComputedStyle(td);
            const columns = style.gridTemplateColumns.split(' ');
            if (style.display !== 'grid' || columns.length < 2) return true;  // label above
            const before = getComputedStyle(td, '::before');
            if (before.display === 'none') return true;
            ctx.font = before.font;
            const text = td.dataset.label.toUpperCase();
            const spacing = parseFloat(before.letterSpacing) || 0;
            return ctx.measureText(text).width + spacing * text.length <= parseFloat(columns[0]);
          });
        }"""
    )
    assert labels_fit, f"a field label runs under its value at {width}px"


def test_many_chips_collapse_and_everything_stays_readable(
    page: Page, live_server, transactional_db, screenshot
):
    crowded_workspace()
    sign_in(page, live_server, "olivia")
    crowded = page.get_by_role("row").filter(has_text="VERY_LONG_KEY")
    scope = crowded.locator("td.col-scope")
    expect(scope.get_by_text("Product number 2", exact=True)).to_be_visible()
    more = scope.get_by_text("+13")
    expect(more).to_be_visible()
    expect(more).to_have_attribute("title", re.compile(r"^Product number 3, .*, Application 7$"))
    expect(scope.get_by_text("Application 7", exact=True)).to_be_hidden()
    more.focus()
    expect(more).to_be_focused()
    page.keyboard.press("Enter")  # a native disclosure: Enter or Space opens it
    expect(scope.get_by_text("Application 7", exact=True)).to_be_visible()
    # A description cut to two lines opens whole on keyboard focus (and on hover).
    description = crowded.get_by_text(LONG_DESCRIPTION)
    assert description.evaluate("(el) => el.scrollHeight > el.clientHeight + 1"), "not clamped?"
    description.focus()
    assert description.evaluate("(el) => el.scrollHeight <= el.clientHeight + 1")
    screenshot(page, "tokens-crowded")


def test_phone_screenshots(page: Page, live_server, transactional_db, screenshot):
    from tests.browser.test_tokens_page import acme

    acme()
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, live_server, "olivia")
    page.goto(f"{live_server.url}/w/acme/tokens/activity/")
    assert overflow(page) == {"page": 0, "boxes": []}
    screenshot(page, "activity-mobile")
    page.goto(f"{live_server.url}/w/acme/tokens/")
    page.get_by_role("link", name="Create Token").click()
    expect(page.get_by_role("dialog", name="Create Token")).to_be_visible()
    page.wait_for_timeout(350)
    screenshot(page, "create-token-mobile")
