"""The account's address is told of every change to how one signs in (ACCOUNT_EMAIL_NOTIFICATIONS),
and changing it needs sudo mode: else a stale session could add an address, confirm it and
reset the password from that mailbox, unseen by the owner of the old one."""

from __future__ import annotations

import re
from urllib.parse import quote

import pyotp
import pytest
from allauth.account.models import EmailAddress
from django.test import Client
from django.urls import reverse

from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.helpers import age_authentication, give_two_factor, signed_in_with_code, text

pytestmark = pytest.mark.django_db

EMAIL = reverse("account_email")
REAUTH = reverse("reauthenticate")
NEW = "a-brand-new-passphrase-31"


@pytest.fixture
def alice():
    return UserFactory(username="alice", email="alice@example.com")


def signed_in(user, minutes_ago: float = 0) -> Client:
    client = Client()
    client.post(reverse("login"), {"username": user.get_username(), "password": DEFAULT_PASSWORD})
    assert "_auth_user_id" in client.session
    if minutes_ago:
        age_authentication(client, minutes_ago * 60)
    return client


def add_address(client: Client, email: str = "attacker@evil.example"):
    return client.post(EMAIL, {"action_add": "", "email": email})


def test_changing_the_email_needs_recent_authentication(alice, mailoutbox):
    client = signed_in(alice, minutes_ago=16)

    response = add_address(client)

    assert response.status_code == 302
    assert response["Location"] == f"{REAUTH}?next={quote(EMAIL, safe='')}"
    assert list(EmailAddress.objects.values_list("email", flat=True)) == ["alice@example.com"]
    assert mailoutbox == [], "no confirmation link went out"

    response = client.post(REAUTH, {"password": DEFAULT_PASSWORD, "next": EMAIL})
    assert response["Location"] == EMAIL
    assert add_address(client, "alice@new.example").status_code == 302
    assert EmailAddress.objects.filter(email="alice@new.example", verified=False).exists()


def test_the_old_address_is_told_when_the_email_changes(alice, mailoutbox):
    client = signed_in(alice)
    add_address(client, "alice@new.example")
    (confirmation,) = mailoutbox
    link = re.search(r"https?://[^/\s]+(/accounts/confirm-email/\S+/)", confirmation.body)[1]

    client.post(link)

    alice.refresh_from_db()
    assert alice.email == "alice@new.example"
    notice = mailoutbox[-1]
    assert notice.to == ["alice@example.com"], "the old address is told"
    assert "alice@example.com to alice@new.example" in notice.body
    assert notice.subject.startswith("[Coffer] ")


def test_a_password_change_is_told(alice, mailoutbox):
    client = signed_in(alice)

    client.post(
        reverse("password_change"),
        {"oldpassword": DEFAULT_PASSWORD, "password1": NEW, "password2": NEW},
    )

    alice.refresh_from_db()
    assert alice.check_password(NEW)
    (notice,) = mailoutbox
    assert notice.to == ["alice@example.com"]
    assert "password has been changed" in notice.body.lower()


def test_a_password_reset_is_told(alice, mailoutbox):
    client = Client()
    client.post(reverse("password_reset"), {"email": "alice@example.com"})
    link = re.search(r"https?://[^/\s]+(/accounts/password/reset/key/\S+/)", mailoutbox[0].body)
    form = client.get(link[1], follow=True)

    client.post(form.redirect_chain[-1][0], {"password1": NEW, "password2": NEW})

    assert len(mailoutbox) == 2
    notice = mailoutbox[1]
    assert notice.to == ["alice@example.com"]
    assert "password has been reset" in notice.body.lower()


# allauth mails these after the commit, within the request: as in production, no test transaction.
@pytest.mark.django_db(transaction=True)
def test_turning_two_factor_on_is_told(alice, mailoutbox):
    client = signed_in(alice)
    page = text(client.get(reverse("mfa_activate_totp")))
    secret = re.search(r'id="authenticator-secret" type="text" value="([A-Z2-7]+)"', page)[1]

    response = client.post(reverse("mfa_activate_totp"), {"code": pyotp.TOTP(secret).now()})

    assert response.status_code == 302
    (notice,) = mailoutbox
    assert notice.to == ["alice@example.com"]
    assert "authenticator app" in notice.body.lower() and "activated" in notice.body.lower()


@pytest.mark.django_db(transaction=True)
def test_turning_two_factor_off_and_new_recovery_codes_are_told(alice, mailoutbox):
    client = signed_in_with_code(alice, give_two_factor(alice))

    client.post(reverse("mfa_generate_recovery_codes"))
    client.post(reverse("mfa_deactivate_totp"))

    subjects = [m.subject for m in mailoutbox]
    assert all(m.to == ["alice@example.com"] for m in mailoutbox)
    assert len(mailoutbox) == 2, subjects
    assert "recovery codes" in mailoutbox[0].body.lower()
    assert "deactivated" in mailoutbox[1].body.lower()
