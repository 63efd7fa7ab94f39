"""The Account page and Change email (allauth's flow, our page)."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import UserFactory
from tests.helpers import text

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_client():
    client = Client()
    client.force_login(UserFactory(username="alice", email="alice@example.com"))
    return client


def test_the_account_page_needs_sign_in(db):
    response = Client().get(reverse("account"))

    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_the_account_page_shows_who_and_what_can_be_changed(alice_client):
    page = text(alice_client.get(reverse("account")))

    assert "alice" in page and "alice@example.com" in page
    for link in ("password_change", "account_email", "mfa_activate_totp"):
        assert f'href="{reverse(link)}"' in page


def test_a_new_email_takes_effect_once_confirmed(alice_client, mailoutbox):
    page = text(alice_client.get(reverse("account_email")))
    assert "alice@example.com" in page and "New email" in page

    response = alice_client.post(
        reverse("account_email"), {"action_add": "", "email": "alice@new.example"}
    )

    assert response.status_code == 302
    user = UserFactory._meta.model.objects.get(username="alice")
    assert user.email == "alice@example.com", "unchanged until the new address is confirmed"
    assert "Waiting for you to open the link" in text(alice_client.get(reverse("account_email")))
    (message,) = mailoutbox
    assert message.to == ["alice@new.example"]
    link = re.search(r"https?://[^/\s]+(/accounts/confirm-email/\S+/)", message.body)[1]
    alice_client.post(link)
    user.refresh_from_db()
    assert user.email == "alice@new.example"


def test_a_bad_email_is_refused_with_a_message(alice_client):
    response = alice_client.post(reverse("account_email"), {"action_add": "", "email": "nope"})

    assert response.status_code == 200 and "Enter a valid email address." in text(response)
