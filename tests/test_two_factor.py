"""Two-factor sign-in (allauth's MFA, accounts/): TOTP set-up from the Account page, sign-in with
a code or a recovery code, wrong codes throttled by django-axes, secrets encrypted at rest, and
a workspace that requires two-factor."""

from __future__ import annotations

import re

import pyotp
import pytest
from allauth.mfa.models import Authenticator
from django.conf import settings
from django.test import Client
from django.urls import reverse

from tests.factories import DEFAULT_PASSWORD, MembershipFactory, UserFactory
from tests.helpers import HTMX, age_authentication, text
from workspaces.models import Role

pytestmark = pytest.mark.django_db

LOGIN = reverse("login")
SETUP = reverse("mfa_activate_totp")
CODE_PAGE = reverse("mfa_authenticate")


def sign_in(client: Client, username: str = "olivia", address: str = "203.0.113.7"):
    return client.post(
        LOGIN, {"username": username, "password": DEFAULT_PASSWORD}, REMOTE_ADDR=address
    )


def set_up_totp(client: Client) -> tuple[str, list[str]]:
    """Turn TOTP on through the pages; the secret (read off the page) and the recovery codes."""
    page = text(client.get(SETUP))
    secret = re.search(r'id="authenticator-secret" type="text" value="([A-Z2-7]+)"', page)[1]
    response = client.post(SETUP, {"code": pyotp.TOTP(secret).now()})
    assert response.status_code == 302, text(response)
    codes_page = text(client.get(response["Location"]))
    codes = re.search(r'id="recovery-codes"[^>]*>([^<]*)</textarea>', codes_page)[1].split()
    return secret, codes


@pytest.fixture
def olivia(workspace):
    user = UserFactory(username="olivia")
    MembershipFactory(workspace=workspace, user=user, role=Role.OWNER)
    return user


@pytest.fixture
def with_totp(olivia) -> tuple[str, list[str]]:
    client = Client()
    sign_in(client)
    return set_up_totp(client)


def other_code(secret: str) -> str:
    """A valid-looking code that is not the current one."""
    current = pyotp.TOTP(secret).now()
    return f"{(int(current) + 500_000) % 1_000_000:06d}"


# --- set-up ---------------------------------------------------------------------------------


def test_the_sidebar_links_the_account_page(olivia, workspace):
    client = Client()
    sign_in(client)

    page = text(client.get(reverse("members", args=["acme"])))

    assert f'href="{reverse("account")}"' in page and "Account</a>" in page


def test_the_account_page_offers_password_email_and_two_factor(olivia):
    client = Client()
    sign_in(client)

    page = text(client.get(reverse("account")))

    assert "Change password" in page and "Change email" in page
    assert "Set up two-factor authentication" in page


def test_set_up_shows_a_qr_code_and_the_secret_and_wants_a_code(olivia):
    client = Client()
    sign_in(client)

    page = text(client.get(SETUP))

    assert 'src="data:image/svg+xml;base64,' in page, "a QR code, as an image the CSP allows"
    assert 'id="authenticator-secret"' in page
    assert ">Authenticator code<" in page
    assert "<script>" not in page and "style=" not in page


def test_a_wrong_set_up_code_is_refused(olivia):
    client = Client()
    sign_in(client)
    page = text(client.get(SETUP))
    secret = re.search(r'id="authenticator-secret" type="text" value="([A-Z2-7]+)"', page)[1]

    response = client.post(SETUP, {"code": other_code(secret)})

    assert response.status_code == 200 and "Incorrect code." in text(response)
    assert not Authenticator.objects.exists()


def test_set_up_gives_recovery_codes_shown_once(with_totp, olivia):
    _secret, codes = with_totp
    client = Client()
    sign_in(client)
    client.post(CODE_PAGE, {"code": pyotp.TOTP(_secret).now()})

    again = text(client.get(reverse("mfa_view_recovery_codes")))

    assert len(codes) == settings.MFA_RECOVERY_CODE_COUNT
    assert not any(code in again for code in codes), "shown once"
    assert "were shown once" in again


def test_secrets_are_encrypted_in_the_database(with_totp):
    secret, codes = with_totp
    stored = str(list(Authenticator.objects.values_list("data", flat=True)))

    assert secret not in stored
    assert all(code not in stored for code in codes)
    assert stored.count("'v1:") >= 2, "the TOTP secret and the recovery seed, sealed"


# --- signing in -----------------------------------------------------------------------------


def test_sign_in_asks_for_a_code_after_the_password(with_totp):
    secret, _codes = with_totp
    client = Client()

    response = sign_in(client)
    assert response.status_code == 302 and response["Location"] == CODE_PAGE
    page = text(client.get(CODE_PAGE))
    assert "Two-factor authentication" in page and ">Code<" in page
    assert "_auth_user_id" not in client.session, "not signed in yet"

    response = client.post(CODE_PAGE, {"code": pyotp.TOTP(secret).now()})
    assert response.status_code == 302
    assert client.get(reverse("home")).status_code == 302  # to the workspace
    assert "_auth_user_id" in client.session


def test_wrong_codes_are_refused_and_throttled_like_passwords(with_totp):
    secret, _codes = with_totp
    client = Client()
    sign_in(client)

    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = client.post(CODE_PAGE, {"code": other_code(secret)}, REMOTE_ADDR="203.0.113.7")
        assert response.status_code == 200 and "Incorrect code." in text(response)
    response = client.post(CODE_PAGE, {"code": other_code(secret)}, REMOTE_ADDR="203.0.113.7")
    assert response.status_code == 429 and "Too many failed sign-ins" in text(response)

    response = client.post(CODE_PAGE, {"code": pyotp.TOTP(secret).now()}, REMOTE_ADDR="203.0.113.7")
    assert response.status_code == 429, "locked out: even the right code waits"
    assert "_auth_user_id" not in client.session
    assert sign_in(Client()).status_code == 429, "and so does the password"


def test_a_recovery_code_signs_in_once(with_totp):
    _secret, codes = with_totp
    first = Client()
    sign_in(first)
    assert first.post(CODE_PAGE, {"code": codes[0]}).status_code == 302
    assert "_auth_user_id" in first.session

    second = Client()
    sign_in(second)
    response = second.post(CODE_PAGE, {"code": codes[0]})
    assert response.status_code == 200 and "Incorrect code." in text(response)
    assert second.post(CODE_PAGE, {"code": codes[1]}).status_code == 302


# --- turning it off -------------------------------------------------------------------------


def test_turning_two_factor_off_needs_recent_authentication(with_totp):
    secret, _codes = with_totp
    client = Client()
    sign_in(client)
    client.post(CODE_PAGE, {"code": pyotp.TOTP(secret).now()})
    age_authentication(client, 16 * 60)

    response = client.post(reverse("mfa_deactivate_totp"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("reauthenticate"))
    assert Authenticator.objects.filter(type=Authenticator.Type.TOTP).exists()

    client.post(reverse("reauthenticate"), {"password": DEFAULT_PASSWORD})
    response = client.post(reverse("mfa_deactivate_totp"))
    assert response.status_code == 302
    assert not Authenticator.objects.exists()


def test_an_authenticator_code_also_opens_sudo_mode(with_totp, workspace):
    secret, codes = with_totp
    client = Client()
    sign_in(client)
    client.post(CODE_PAGE, {"code": codes[0]})  # the app's current code stays unused
    age_authentication(client, 16 * 60)
    create_key = reverse("access:create", args=["acme"])
    assert client.get(create_key).status_code == 302
    page = text(client.get(f"{reverse('reauthenticate')}?next={create_key}"))
    assert "Use your authenticator app instead" in page

    response = client.post(
        f"{reverse('mfa_reauthenticate')}?next={create_key}", {"code": pyotp.TOTP(secret).now()}
    )

    assert response.status_code == 302
    assert client.get(create_key).status_code == 200


# --- a workspace that requires two-factor -----------------------------------------------------


def test_an_owner_requires_two_factor_and_members_without_it_are_sent_to_set_it_up(
    olivia, workspace
):
    owner = Client()
    sign_in(owner)
    set_up_totp(owner)
    viewer_user = UserFactory(username="vic")
    MembershipFactory(workspace=workspace, user=viewer_user, role=Role.VIEWER)
    viewer = Client()
    sign_in(viewer, "vic")
    assert viewer.get(reverse("tokens:list", args=["acme"])).status_code == 200

    form = text(owner.get(reverse("two_factor", args=["acme"])))
    assert "Require two-factor authentication" in form
    response = owner.post(reverse("two_factor", args=["acme"]), {"require_two_factor": "on"})
    assert response.status_code == 302
    workspace.refresh_from_db()
    assert workspace.require_two_factor

    for name in ("tokens:list", "members", "products"):
        response = viewer.get(reverse(name, args=["acme"]))
        assert response.status_code == 302 and response["Location"].startswith(SETUP), name
    response = viewer.get(reverse("tokens:list", args=["acme"]), headers=HTMX)
    assert response["HX-Redirect"].startswith(SETUP)
    landed = text(viewer.get(SETUP))
    assert "Acme requires two-factor authentication" in landed
    assert owner.get(reverse("tokens:list", args=["acme"])).status_code == 200, "owner has it"

    set_up_totp(viewer)
    assert viewer.get(reverse("tokens:list", args=["acme"])).status_code == 200


def test_access_keys_keep_working_when_two_factor_is_required(workspace, token):
    from tests.factories import make_access_key

    _key, secret = make_access_key(workspace, environment=workspace.environments.first())
    workspace.require_two_factor = True
    workspace.save()

    response = Client().get(reverse("api:values"), headers={"Authorization": f"Bearer {secret}"})

    assert response.status_code == 200


def test_the_secret_being_set_up_is_not_kept_in_the_clear(olivia):
    from django.contrib.sessions.models import Session

    client = Client()
    sign_in(client)
    page = text(client.get(SETUP))
    secret = re.search(r'id="authenticator-secret" type="text" value="([A-Z2-7]+)"', page)[1]
    refused = client.post(SETUP, {"code": other_code(secret)})
    assert f'value="{secret}"' in text(refused), "the same secret while setting up"

    for session in Session.objects.all():
        assert secret not in str(session.get_decoded())
    response = client.post(SETUP, {"code": pyotp.TOTP(secret).now()})
    assert response.status_code == 302, "the sealed secret is the one confirmed"


def test_master_key_rotation_reseals_two_factor_secrets_so_the_old_key_can_go(with_totp):
    import base64
    import os
    from io import StringIO

    from django.core.management import call_command
    from django.test import override_settings

    secret, codes = with_totp
    new_key = "k2:" + base64.b64encode(b"N" * 32).decode()
    out = StringIO()
    with override_settings(COFFER_MASTER_KEYS=f"{new_key},{os.environ['COFFER_MASTER_KEYS']}"):
        call_command("rotate_master_key", stdout=out, stderr=StringIO())
    assert "Re-sealed 2 two-factor secrets under master key 'k2'." in out.getvalue()
    assert "Master key 'test1' is no longer used: it can be removed" in out.getvalue()
    for authenticator in Authenticator.objects.all():
        sealed = authenticator.data.get("secret") or authenticator.data.get("seed")
        assert sealed.startswith("v1:k2:") and secret not in str(authenticator.data)

    with override_settings(COFFER_MASTER_KEYS=new_key):  # the old key removed from the ring
        client = Client()
        assert sign_in(client)["Location"] == CODE_PAGE
        assert client.post(CODE_PAGE, {"code": pyotp.TOTP(secret).now()}).status_code == 302
        assert "_auth_user_id" in client.session
        recovering = Client()
        sign_in(recovering, address="203.0.113.8")
        assert recovering.post(CODE_PAGE, {"code": codes[0]}).status_code == 302
        assert "_auth_user_id" in recovering.session


def test_a_used_code_stays_used_however_full_the_cache_gets(with_totp):
    """Django's database cache drops entries in key order once it holds more than MAX_ENTRIES;
    allauth's used-code marks sort first, so they must not be dropped while a code is valid."""
    from allauth.mfa.totp.internal.auth import TOTP
    from django.core.cache import cache

    secret, _codes = with_totp
    totp = TOTP(Authenticator.objects.get(type=Authenticator.Type.TOTP))
    code = pyotp.TOTP(secret).now()
    assert totp.validate_code(code)
    for n in range(400):  # rate-limit entries of many clients, past Django's default of 300
        cache.set(f"rl:filler-{n}", [n], 300)

    assert not totp.validate_code(code), "a code works once"
