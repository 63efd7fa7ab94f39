"""Password reset by email (allauth, our pages): linked from the sign-in page, a mailed link that
works once, and the same answer whether or not an account uses the address."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.helpers import text

pytestmark = pytest.mark.django_db

RESET = reverse("password_reset")
NEW = "a-brand-new-passphrase-31"


def reset_link(message) -> str:
    match = re.search(r"https?://[^/\s]+(/accounts/password/reset/key/\S+/)", message.body)
    assert match, message.body
    return match.group(1)


def test_the_sign_in_page_links_password_reset(db):
    page = text(Client().get(reverse("login")))

    assert f'href="{RESET}"' in page and "Forgot your password?" in page


def test_a_password_is_reset_end_to_end(mailoutbox):
    user = UserFactory(username="alice", email="alice@example.com")
    client = Client()

    response = client.post(RESET, {"email": "alice@example.com"})
    assert response.status_code == 302
    assert "Check your mail" in text(client.get(response["Location"]))
    (message,) = mailoutbox
    assert message.to == ["alice@example.com"]
    link = reset_link(message)

    form = client.get(link, follow=True)
    assert "Choose a new password" in text(form)
    response = client.post(form.redirect_chain[-1][0], {"password1": NEW, "password2": NEW})
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password(NEW)
    signed_in = Client().post(reverse("login"), {"username": "alice", "password": NEW})
    assert signed_in.status_code == 302

    again = Client().get(link, follow=True)
    assert "This reset link cannot be used" in text(again), "a link works once"


def test_an_unknown_address_gets_the_same_answer(mailoutbox):
    UserFactory(username="alice", email="alice@example.com")

    known = Client().post(RESET, {"email": "alice@example.com"}, follow=True)
    unknown = Client().post(RESET, {"email": "nobody@example.com"}, follow=True)

    def main(response) -> str:
        page = text(response)
        return page[page.index("<main") :]

    assert main(known) == main(unknown)
    assert DEFAULT_PASSWORD not in mailoutbox[0].body


def test_a_bad_address_is_refused_with_a_message(db, mailoutbox):
    response = Client().post(RESET, {"email": "not an address"})

    assert response.status_code == 200 and "Enter a valid email address." in text(response)
    assert not mailoutbox
