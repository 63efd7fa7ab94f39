"""axe-core over every page, modal and dialog, on a desktop (1280x900) and a phone (390x844).

Each case opens one page (and, for a modal, the link that opens it, clicked the way a user
does) and fails on any serious or critical violation axe reports. The workspace is filled the
way real ones are: tokens in every state, several scope chips, an access key, a webhook with a
delivery, a token with an old version to restore, a workload identity.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, ViewportSize, expect

from tests.browser.test_tokens_page import acme
from tests.factories import (
    UserFactory,
    make_access_key,
    make_delivery,
    make_webhook,
    make_workload_identity,
)
from tests.helpers import sign_in
from tokens.models import Token

VIEWPORTS: dict[str, ViewportSize] = {
    "desktop": {"width": 1280, "height": 900},
    "phone": {"width": 390, "height": 844},
}

# (case, path under /w/acme/ (or absolute), what to click to open the modal, the dialog's name)
CASES = [
    ("tokens", "tokens/", None, None),
    ("tokens-filtered-empty", "tokens/?q=nothing-matches", None, None),
    ("activity", "tokens/activity/", None, None),
    ("compare-environments", "tokens/compare/", None, None),
    ("compare-environments-missing", "tokens/compare/?missing=on", None, None),
    ("check-configuration", "tokens/check/", None, None),
    ("access-keys", "tokens/access-keys/", None, None),
    ("workload-identities", "tokens/workload-identities/", None, None),
    ("token-detail", "{detail}", None, None),
    ("products", "products/", None, None),
    ("environments", "environments/", None, None),
    ("members", "members/", None, None),
    ("reminders", "reminders/", None, None),
    ("webhooks", "webhooks/", None, None),
    ("deliveries", "{deliveries}", None, None),
    ("import", "tokens/import/", None, None),
    ("create-token", "tokens/", ("link", "Create Token"), "Create Token"),
    ("edit-token", "tokens/", ("link", "Edit DB_PASSWORD"), "Edit token"),
    (
        "add-for-another-environment",
        "tokens/",
        ("link", "Add STRIPE_SECRET for another environment"),
        "Create Token",
    ),
    ("revoke-token", "tokens/", ("link", "Revoke DB_PASSWORD"), "Revoke"),
    ("delete-token", "tokens/", ("link", "Delete DB_PASSWORD"), "Delete"),
    ("restore-version", "{detail}", ("link", re.compile(r"^Restore version")), "Restore"),
    ("create-access-key", "tokens/access-keys/", ("link", "Create access key"), "access key"),
    ("revoke-access-key", "tokens/access-keys/", ("link", "Revoke ci-deploy"), "Revoke"),
    (
        "add-workload-identity",
        "tokens/workload-identities/",
        ("link", "Add workload identity"),
        "Add workload identity",
    ),
    (
        "delete-workload-identity",
        "tokens/workload-identities/",
        ("link", "Delete gh-deploy"),
        "Delete gh-deploy?",
    ),
    ("add-product", "products/", ("link", "Add product"), "Add product"),
    ("add-environment", "environments/", ("link", "Add environment"), "Add environment"),
    ("invite-member", "members/", ("link", "Invite member"), "Invite member"),
    ("leave-workspace", "members/", ("link", "Leave workspace"), "Leave Acme?"),
    ("two-factor-setting", "members/", ("link", "Two-factor: optional"), "Two-factor"),
    ("add-webhook", "webhooks/", ("link", "Add webhook"), "Add webhook"),
    ("create-workspace", "tokens/", ("switcher", "Create workspace"), "workspace"),
]


def world() -> dict[str, str]:
    workspace = acme()
    make_access_key(workspace, name="ci-deploy")
    make_workload_identity(workspace, issuer="https://token.actions.githubusercontent.com")
    webhook, _ = make_webhook(workspace)
    make_delivery(webhook)
    token = Token.objects.get(workspace=workspace, key="DB_PASSWORD")
    token.update(by=None, value="a-newer-value-for-the-replica")
    UserFactory(username="zed")
    return {
        "detail": f"tokens/{token.pk}/",
        "deliveries": f"webhooks/{webhook.pk}/",
    }


def open_case(page: Page, live_server, paths: dict[str, str], path: str, opener, dialog_name):
    path = path.format(**paths)
    if opener and opener[0] == "switcher":
        path = "tokens/"
    page.goto(f"{live_server.url}/w/acme/{path}")
    if opener is None:
        return
    kind, name = opener
    if kind == "switcher":
        if (page.viewport_size or VIEWPORTS["desktop"])["width"] < 992:
            page.get_by_role("button", name="Open navigation").click()
        page.get_by_role("button", name="Switch workspace").click()
        page.get_by_role("link", name=name).click()
    else:
        page.get_by_role(kind, name=name).first.click()
    dialog = page.get_by_role("dialog", name=dialog_name)
    expect(dialog).to_be_visible()
    page.wait_for_timeout(350)  # the modal's fade-in: axe measures contrast on the final colours


@pytest.mark.parametrize("viewport", VIEWPORTS)
@pytest.mark.parametrize(
    ("case", "path", "opener", "dialog_name"), CASES, ids=[c[0] for c in CASES]
)
def test_no_serious_violations(
    page: Page, live_server, transactional_db, axe, viewport, case, path, opener, dialog_name
):
    page.set_viewport_size(VIEWPORTS[viewport])
    paths = world()
    sign_in(page, live_server, "olivia")
    open_case(page, live_server, paths, path, opener, dialog_name)
    axe(page)


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_sign_in_page(page: Page, live_server, transactional_db, axe, viewport):
    page.set_viewport_size(VIEWPORTS[viewport])
    page.goto(f"{live_server.url}/accounts/login/")
    axe(page)
    page.get_by_role("button", name="Sign in").click()  # the error state too
    expect(page.get_by_text("This field is required.").first).to_be_visible()
    axe(page)


ACCOUNT_PAGES = [
    ("/account/", "Account"),
    ("/accounts/2fa/totp/activate/", "Set up two-factor authentication"),
    ("/accounts/password/change/", "Change password"),
    ("/accounts/email/", "Change email"),
    ("/accounts/reauthenticate/", "Confirm your password"),
]


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_account_pages(page: Page, live_server, transactional_db, axe, viewport):
    page.set_viewport_size(VIEWPORTS[viewport])
    world()
    sign_in(page, live_server, "olivia")
    for path, heading in ACCOUNT_PAGES:
        page.goto(f"{live_server.url}{path}")
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        axe(page)
    page.goto(f"{live_server.url}/accounts/logout/")
    page.get_by_role("button", name="Sign out").last.click()
    for path, heading in [
        ("/accounts/password/reset/", "Reset your password"),
        ("/accounts/signup/", "Sign-up is closed"),
        ("/invitations/not-a-real-link-at-all-1234/", "This invitation cannot be used"),
    ]:
        page.goto(f"{live_server.url}{path}")
        expect(page.get_by_role("heading", name=heading)).to_be_visible()
        axe(page)


def test_phone_navigation_drawer(page: Page, live_server, transactional_db, axe):
    page.set_viewport_size(VIEWPORTS["phone"])
    world()
    sign_in(page, live_server, "olivia")
    page.get_by_role("button", name="Open navigation").click()
    drawer = page.get_by_role("dialog", name="Coffer")
    expect(drawer).to_be_visible()
    expect(drawer.get_by_role("navigation", name="Workspace")).to_be_visible()
    page.wait_for_timeout(350)
    axe(page)


def test_invalid_token_form(page: Page, live_server, transactional_db, axe):
    world()
    sign_in(page, live_server, "olivia")
    page.get_by_role("link", name="Create Token").click()
    dialog = page.get_by_role("dialog", name="Create Token")
    dialog.get_by_role("button", name="Create Token").click()
    expect(dialog.get_by_text("Choose at least one environment.")).to_be_visible()
    axe(page)
