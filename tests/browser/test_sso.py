"""Single sign-on in a real browser, against the test provider on 127.0.0.1
(tests/oidc_provider.py): the button on the sign-in page, the authorization-code flow through
the provider and back into the workspace, a workspace that requires single sign-on refusing a
password session and letting an SSO session in, and the owners' break-glass path. axe-core on
the new pages at 1280 and 390 px."""

from __future__ import annotations

import pyotp
import pytest
from allauth.socialaccount.models import SocialAccount
from playwright.sync_api import Browser, Page, expect

from tests.browser.test_accessibility import VIEWPORTS
from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory
from tests.helpers import give_two_factor, sign_in
from workspaces.models import Role

pytestmark = pytest.mark.slow


@pytest.fixture
def acme(transactional_db, sso_provider):
    """Acme, with Olivia (owner, password and two-factor) and Ada (editor, whose provider
    account is linked)."""
    workspace = WorkspaceFactory(name="Acme", slug="acme")
    olivia = UserFactory(username="olivia")
    MembershipFactory(workspace=workspace, user=olivia, role=Role.OWNER)
    ada = UserFactory(username="ada", email="ada@example.com")
    MembershipFactory(workspace=workspace, user=ada, role=Role.EDITOR)
    SocialAccount.objects.create(user=ada, provider="sso", uid=sso_provider.person["sub"])
    workspace.olivia_secret = give_two_factor(olivia)
    return workspace


@pytest.fixture
def browser_page(browser: Browser):
    """A page that accepts the test provider's self-signed certificate."""
    context = browser.new_context(ignore_https_errors=True, viewport=VIEWPORTS["desktop"])
    yield context.new_page()
    context.close()


def tokens_heading(page: Page):
    return page.get_by_role("heading", name="Tokens", exact=True)


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_person_signs_in_through_the_provider_and_lands_in_their_workspace(
    browser_page: Page, live_server, acme, axe, viewport, sso_provider
):
    page = browser_page
    page.set_viewport_size(VIEWPORTS[viewport])
    page.goto(f"{live_server.url}/accounts/login/")
    button = page.get_by_role("button", name="Sign in with Acme SSO")
    expect(button).to_be_visible()
    axe(page)
    button.click()
    expect(tokens_heading(page)).to_be_visible()
    assert page.url == f"{live_server.url}/w/acme/tokens/"
    assert len(sso_provider.authorize_requests) == 1, "through the provider"


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_workspace_that_requires_sso_refuses_a_password_session(
    browser_page: Page, live_server, acme, axe, viewport
):
    acme.require_sso = True
    acme.save()
    page = browser_page
    page.set_viewport_size(VIEWPORTS[viewport])
    sign_in(page, live_server, "ada")
    expect(page.get_by_role("heading", name="Acme requires single sign-on")).to_be_visible()
    expect(tokens_heading(page)).to_have_count(0)
    axe(page)
    page.get_by_role("button", name="Sign in with Acme SSO").click()
    expect(tokens_heading(page)).to_be_visible()
    assert page.url == f"{live_server.url}/w/acme/tokens/"


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_owner_break_glass_with_password_and_two_factor(
    browser_page: Page, live_server, acme, axe, viewport
):
    acme.require_sso = True
    acme.save()
    page = browser_page
    page.set_viewport_size(VIEWPORTS[viewport])
    sign_in(page, live_server, "olivia")
    page.get_by_label("Code").fill(pyotp.TOTP(acme.olivia_secret).now())
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(tokens_heading(page)).to_be_visible()
    # The owner may turn the requirement off (e.g. while the provider is broken).
    page.goto(f"{live_server.url}/w/acme/members/")
    page.get_by_role("link", name="Single sign-on: required").click()
    dialog = page.get_by_role("dialog", name="Single sign-on")
    expect(dialog).to_be_visible()
    page.wait_for_timeout(350)  # the modal's fade-in: axe measures contrast on the final colours
    axe(page)
    dialog.get_by_label("Require single sign-on").uncheck()
    dialog.get_by_role("button", name="Save").click()
    expect(page.get_by_role("link", name="Single sign-on: optional")).to_be_visible()
    acme.refresh_from_db()
    assert not acme.require_sso


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_refusal_and_sudo_pages(browser_page: Page, live_server, acme, axe, viewport, sso_provider):
    page = browser_page
    page.set_viewport_size(VIEWPORTS[viewport])
    # A provider account whose address belongs to an unlinked account is refused, and says why.
    sso_provider.person.update(sub="someone-else", email="olivia1@example.com")
    UserFactory(username="olivia1", email="olivia1@example.com")
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_role("button", name="Sign in with Acme SSO").click()
    expect(page.get_by_role("heading", name="Single sign-on refused")).to_be_visible()
    axe(page)
    # Ada (no password) confirms sudo mode with the provider.
    sso_provider.person.update(sub="person-1", email="ada@example.com")
    ada = SocialAccount.objects.get(provider="sso").user
    ada.set_unusable_password()
    ada.save()
    page.get_by_role("link", name="Sign in").click()
    page.get_by_role("button", name="Sign in with Acme SSO").click()
    expect(tokens_heading(page)).to_be_visible()
    page.goto(f"{live_server.url}/accounts/reauthenticate/?next=/account/")
    button = page.get_by_role("button", name="Confirm with Acme SSO")
    expect(button).to_be_visible()
    axe(page)
    button.click()
    expect(page.get_by_role("heading", name="Account")).to_be_visible()
    assert sso_provider.authorize_requests[-1]["prompt"] == "login"
