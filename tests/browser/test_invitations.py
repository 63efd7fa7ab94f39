"""Team accounts in a real browser: a teammate joins from an invitation with no admin involved,
sets up two-factor from the secret the page shows, signs in with a code or a recovery code, and
a workspace can require two-factor."""

from __future__ import annotations

import re

import pyotp
from playwright.sync_api import Browser, Page, expect

from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory
from tests.helpers import sign_in
from workspaces.models import Membership, Role

PASSWORD = "a-long-unusual-passphrase-42"


def acme():
    workspace = WorkspaceFactory(name="Acme", slug="acme")
    MembershipFactory(user=UserFactory(username="olivia"), workspace=workspace, role=Role.OWNER)
    return workspace


def sign_in_with_password(page: Page, live_server, username: str, password: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").first.click()
    expect(page.get_by_role("heading", name="Sign in to Coffer")).to_be_visible()


def test_a_teammate_joins_from_an_invitation_and_signs_in_with_two_factor(
    page: Page, browser: Browser, live_server, transactional_db, mailoutbox, axe, screenshot
):
    acme()
    sign_in(page, live_server, "olivia")

    # The owner invites.
    page.goto(f"{live_server.url}/w/acme/members/")
    page.get_by_role("link", name="Invite member").click()
    dialog = page.get_by_role("dialog", name="Invite member")
    dialog.get_by_label("Email").fill("nina@example.com")
    dialog.get_by_label("Role").select_option(label="Editor")
    screenshot(page, "invite-member", full_page=True)
    dialog.get_by_role("button", name="Send invitation").click()
    sent = page.get_by_role("dialog", name="Invitation sent to nina@example.com")
    expect(sent).to_be_visible()
    shown = sent.get_by_label("Invitation link").input_value()
    screenshot(page, "invitation-sent", full_page=True)
    (message,) = mailoutbox
    assert message.to == ["nina@example.com"] and shown in message.body
    sent.get_by_role("link", name="Done").click()
    expect(page.get_by_role("cell", name="nina@example.com", exact=True)).to_be_visible()

    # The invitee opens the mailed link in a browser of their own and signs up.
    link = re.search(r"http://\S+/invitations/\S+/", message.body)[0]
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    nina = context.new_page()
    nina.goto(link)
    expect(nina.get_by_role("heading", name="Join Acme")).to_be_visible()
    expect(nina.get_by_text("to join as Editor")).to_be_visible()
    assert "/invitations/accept/" in nina.url, "the key left the address bar"
    screenshot(nina, "invitation-accept", full_page=True)
    axe(nina)
    nina.get_by_label("Username").fill("nina")
    nina.get_by_label("Password", exact=True).fill(PASSWORD)
    nina.get_by_label("Password (again)").fill(PASSWORD)
    nina.get_by_role("button", name="Create account and join").click()
    expect(nina.get_by_text("Welcome to Acme. You joined as Editor.")).to_be_visible()
    expect(nina.get_by_role("heading", name="Tokens", exact=True)).to_be_visible()
    assert Membership.objects.get(user__username="nina").role == Role.EDITOR

    # Two-factor: set up from the secret the page shows.
    nina.get_by_role("link", name="Account").click()
    expect(nina.get_by_role("heading", name="Account")).to_be_visible()
    axe(nina)
    nina.get_by_role("link", name="Set up two-factor authentication").click()
    expect(nina.get_by_role("img", name="QR code for your authenticator app")).to_be_visible()
    secret = nina.get_by_label("Secret", exact=True).input_value()
    axe(nina)
    screenshot(nina, "totp-setup", full_page=True)
    nina.get_by_label("Authenticator code").fill(pyotp.TOTP(secret).now())
    nina.get_by_role("button", name="Turn on two-factor").click()
    expect(nina.get_by_role("heading", name="Recovery codes")).to_be_visible()
    codes = nina.get_by_label("Unused codes").input_value().split()
    assert len(codes) == 10
    screenshot(nina, "recovery-codes", full_page=True)
    nina.get_by_role("link", name="I have stored them").click()
    expect(nina.get_by_text("Signing in asks for a code from your authenticator")).to_be_visible()

    # Signing in now asks for a code: a wrong one is refused, the right one works.
    sign_out(nina)
    sign_in_with_password(nina, live_server, "nina", PASSWORD)
    expect(nina.get_by_role("heading", name="Two-factor authentication")).to_be_visible()
    axe(nina)
    screenshot(nina, "two-factor-sign-in", full_page=True)
    right = pyotp.TOTP(secret).now()
    nina.get_by_label("Code").fill(f"{(int(right) + 1) % 1_000_000:06d}")
    nina.get_by_role("button", name="Sign in").click()
    expect(nina.get_by_text("Incorrect code.")).to_be_visible()
    nina.get_by_label("Code").fill(right)
    nina.get_by_role("button", name="Sign in").click()
    expect(nina.get_by_role("heading", name="Tokens", exact=True)).to_be_visible()

    # A recovery code works once.
    for attempt in ("first", "again"):
        sign_out(nina)
        sign_in_with_password(nina, live_server, "nina", PASSWORD)
        nina.get_by_label("Code").fill(codes[0])
        nina.get_by_role("button", name="Sign in").click()
        if attempt == "first":
            expect(nina.get_by_role("heading", name="Tokens", exact=True)).to_be_visible()
        else:
            expect(nina.get_by_text("Incorrect code.")).to_be_visible()
    context.close()


def test_wrong_codes_are_throttled(page: Page, live_server, transactional_db):
    acme()
    sign_in(page, live_server, "olivia")
    page.goto(f"{live_server.url}/accounts/2fa/totp/activate/")
    secret = page.get_by_label("Secret", exact=True).input_value()
    page.get_by_label("Authenticator code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on two-factor").click()
    expect(page.get_by_role("heading", name="Recovery codes")).to_be_visible()
    page.goto(f"{live_server.url}/account/")
    sign_out(page)

    from tests.factories import DEFAULT_PASSWORD

    sign_in_with_password(page, live_server, "olivia", DEFAULT_PASSWORD)
    for _ in range(5):
        page.get_by_label("Code").fill("000000")
        page.get_by_role("button", name="Sign in").click()
        if page.get_by_role("heading", name="Sign-in paused").count():
            break
    expect(page.get_by_role("heading", name="Sign-in paused")).to_be_visible()
    expect(page.get_by_text("Too many failed sign-ins")).to_be_visible()


def test_an_owner_requires_two_factor_and_is_sent_to_set_it_up(
    page: Page, live_server, transactional_db, axe, screenshot
):
    acme()
    sign_in(page, live_server, "olivia")
    page.goto(f"{live_server.url}/w/acme/members/")
    page.get_by_role("link", name="Two-factor: optional").click()
    dialog = page.get_by_role("dialog", name="Two-factor authentication")
    dialog.get_by_label("Require two-factor authentication").check()
    dialog.get_by_role("button", name="Save").click()

    expect(page.get_by_role("heading", name="Set up two-factor authentication")).to_be_visible()
    expect(page.get_by_text("Acme requires two-factor authentication.")).to_be_visible()
    screenshot(page, "two-factor-required", full_page=True)
    page.goto(f"{live_server.url}/w/acme/tokens/")
    expect(page.get_by_role("heading", name="Set up two-factor authentication")).to_be_visible()
