"""Plain helpers and constants shared by the tests (fixtures live in tests/conftest.py)."""

from __future__ import annotations

import html
import json
import re
from typing import TYPE_CHECKING

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.factories import DEFAULT_PASSWORD, token_form_data

if TYPE_CHECKING:
    from playwright.sync_api import Page

# --- htmx ---------------------------------------------------------------------------------------

HTMX = {"HX-Request": "true"}


def triggers(response) -> dict:
    """The events a response sends through `HX-Trigger`, decoded."""
    return json.loads(response["HX-Trigger"])


def text(response) -> str:
    return response.content.decode()


def event_sentences(page: str) -> list[str]:
    """The Activity page's events, newest first, as a person reads them (tags and the keys'
    line-break hints left out)."""
    summaries = re.findall(r'<summary class="event-sentence">(.*?)</summary>', page, re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", summary)).strip() for summary in summaries]


# --- the Tokens pages ---------------------------------------------------------------------------

WARNING = "Revoking or deleting a token will immediately break any services currently using it."
SECRET = "view-test-secret-4f1c9a77e2b0d3c5"
ROLES = ["owner", "editor", "viewer"]
MANAGERS = ["owner", "editor"]


def url(name: str, workspace, token=None, **query) -> str:
    """The URL of a Tokens page view (`tokens:<name>`, or a full name such as
    `audit:activity`), of `token` if given, with a query."""
    args = [workspace.slug] + ([token.pk] if token is not None else [])
    path = reverse(name if ":" in name else f"tokens:{name}", args=args)
    if query:
        path += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    return path


def create_data(workspace, **overrides) -> dict:
    return token_form_data(workspace, **({"value": SECRET} | overrides))


def edit_data(token, **overrides) -> dict:
    """The Edit form as it comes prefilled for `token` (the value left blank), with overrides."""
    values = {
        "key": token.key,
        "value": "",
        "description": token.description,
        "type": token.type,
        "expiry_date": token.expiry_date.isoformat() if token.expiry_date else "",
        "period": "",
        "period_custom": token.period_days or "",
        "products": [p.pk for p in token.products.all()],
        "apps": [a.pk for a in token.apps.all()],
        "environments": [e.pk for e in token.environments.all()],
    }
    values.update(overrides)
    return values


def selected_tab(page: str, href: str) -> bool:
    return f'aria-selected="true" aria-current="page" href="{href}"' in page


# --- the value from a file ----------------------------------------------------------------------

PEM = (
    b"-----BEGIN EC PRIVATE KEY-----\r\n"
    b"MHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49\r\n"
    b"AwEHoUQDQgAEPR3tU2eh9bq6+ZUptvmPfE8oW0QPGM6fpnNmrL+k1aLxN1LLtM5k\n"
    b"-----END EC PRIVATE KEY-----\n"
)
PEM_LINE = "MHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49"
FILE_NAME = "prod-signing-key-7c1e.pem"
FIVE_MB = 5_000_000
FIVE_MB_MESSAGE = "The value is 5,000,000 bytes; the limit is 64 KiB (65,536 bytes)."


def pem_file(content: bytes = PEM, name: str = FILE_NAME) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/x-pem-file")


# --- the browser --------------------------------------------------------------------------------


def sign_in(page: Page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()


# --- the Access keys tab ------------------------------------------------------------------------

ACCESS_WARNING = (
    "Revoking or deleting an access key immediately stops every job and app using it from "
    "resolving anything."
)


def access_url(name: str, workspace, access_key=None) -> str:
    """The URL of an Access keys view (`access:<name>`), of `access_key` if given."""
    args = [workspace.slug] + ([access_key.pk] if access_key is not None else [])
    return reverse(f"access:{name}", args=args)


def access_key_data(workspace, **overrides) -> dict:
    """A valid Create access key form: ci-deploy in production, the default 90 days."""
    data = {
        "name": "ci-deploy",
        "description": "",
        "environment": workspace.environments.get(slug="production").pk,
        "product": "",
        "app": "",
        "expiry": "90",
        "expiry_date": "",
        "allowed_addresses": "",
    }
    return data | overrides


def age_authentication(client, seconds: float) -> None:
    """Move every authentication record of `client`'s session `seconds` into the past (sudo
    mode's window, workspaces/reauth.py, counts from the newest)."""
    from workspaces.reauth import SESSION_KEY

    session = client.session
    session[SESSION_KEY] = [
        {**record, "at": record["at"] - seconds} for record in session.get(SESSION_KEY, [])
    ]
    session.save()


def invitation_link(message) -> str:
    """The invitation link (path) in a mail Coffer sent."""
    import re

    match = re.search(r"https?://[^/\s]+(/invitations/[^/\s]+/)", message.body)
    assert match, "the mail holds an invitation link"
    return match.group(1)


# --- two-factor -----------------------------------------------------------------------------


def give_two_factor(user) -> str:
    """Turn TOTP (and recovery codes) on for `user`; the TOTP secret."""
    from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    RecoveryCodes.activate(user)
    return secret


def signed_in_with_code(user, secret: str, minutes_ago: float = 0, next_url: str = ""):
    """A client that signed in on the sign-in page with the password, then the code."""
    import pyotp
    from django.test import Client

    client = Client()
    login = reverse("login") + (f"?next={next_url}" if next_url else "")
    response = client.post(login, {"username": user.get_username(), "password": DEFAULT_PASSWORD})
    assert response["Location"].startswith(reverse("mfa_authenticate")), "asked for the code"
    response = client.post(reverse("mfa_authenticate"), {"code": pyotp.TOTP(secret).now()})
    assert response.status_code == 302 and "_auth_user_id" in client.session, "signed in"
    client.after_code = response["Location"]
    if minutes_ago:
        age_authentication(client, minutes_ago * 60)
    return client


# --- single sign-on -------------------------------------------------------------------------

SSO_LOGIN = "/accounts/oidc/sso/login/"


def sso_sign_in(client, provider, next_url: str = "", *, login_url: str = SSO_LOGIN):
    """Press "Sign in with Acme SSO" with `client`: the provider (tests/oidc_provider.py)
    approves and sends the browser back; the response to the callback (allauth's answer)."""
    import requests

    response = client.post(login_url, {"next": next_url} if next_url else {})
    assert response.status_code == 302 and response["Location"].startswith(provider.url)
    answer = requests.get(
        response["Location"], allow_redirects=False, verify=str(provider.certificate), timeout=5
    )
    assert answer.status_code == 302, answer.text
    callback = answer.headers["Location"].removeprefix("http://testserver")
    return client.get(callback)


def sso_button_action(page: str) -> str:
    """Where the single sign-on button of `page` posts."""
    import html
    import re

    match = re.search(r'action="(/accounts/oidc/sso/login/[^"]*)"', page)
    assert match, "the page has the single sign-on button"
    return html.unescape(match.group(1))
