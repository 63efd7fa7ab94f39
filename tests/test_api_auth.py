"""API authentication: bearer access keys only; one 401 for every key that does not work;
allowed networks; never a session cookie."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.test import Client
from django.utils import timezone

from access import keys
from access.models import AccessKey
from api.auth import UNAUTHORIZED
from audit.models import AuditAction, AuditEvent
from tests.api_helpers import api_setup, get_values, post_resolve
from tests.factories import MembershipFactory, UserFactory, make_access_key
from tests.url_table import api_routes_in_project
from workspaces.models import Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(workspace):
    return api_setup(workspace)


def changed_character(key: str) -> str:
    """The key with one random-part character changed and a *valid* checksum: well formed, but
    not the key."""
    random_part = key[4:47]
    swapped = random_part[:10] + ("A" if random_part[10] != "A" else "B") + random_part[11:]
    return "cfr_" + swapped + keys.checksum(swapped)


def refused_keys(setup) -> dict[str, str | None]:
    revoked, revoked_key = make_access_key(setup.workspace, name="revoked")
    revoked.revoke()
    expired, expired_key = make_access_key(setup.workspace, name="expired")
    AccessKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - dt.timedelta(1))
    wrong_checksum = setup.key[:-1] + ("A" if setup.key[-1] != "A" else "B")
    return {
        "none": None,
        "empty": "",
        "malformed": "not-a-key",
        "wrong checksum": wrong_checksum,
        "one character changed": changed_character(setup.key),
        "unknown": keys.generate(),
        "revoked": revoked_key,
        "expired": expired_key,
        "upper-cased": setup.key.upper(),
    }


def test_every_refused_key_gets_the_same_401(client, setup, settings):
    settings.COFFER_API_AUTH_FAILURE_LIMIT = 1000
    bodies = set()
    for label, key in refused_keys(setup).items():
        for response in (
            post_resolve(client, key, "$Secret{DB_URL}"),
            get_values(client, key),
        ):
            assert response.status_code == 401, label
            assert response["WWW-Authenticate"] == 'Bearer realm="coffer"'
            assert response["Cache-Control"] == "no-store"
            assert setup.values["DB_URL"] not in response.text
            bodies.add(response.content)
    said = json.dumps(UNAUTHORIZED).encode()
    assert bodies == {b'{\n  "message": ' + said + b',\n  "error": ' + said + b"\n}\n"}
    assert not AuditEvent.objects.filter(action=AuditAction.RESOLVED).exists()


@pytest.mark.parametrize(
    "header", ["Basic {key}", "Token {key}", "{key}", "Bearer", "Bearer  {key} x"]
)
def test_only_a_bearer_header_is_accepted(client, setup, header):
    response = client.post(
        "/api/v1/resolve",
        "$Secret{DB_URL}",
        content_type="text/plain",
        headers={"Authorization": header.format(key=setup.key)},
    )
    assert response.status_code == 401


def test_the_scheme_is_case_insensitive(client, setup):
    response = get_values(client, None, HTTP_AUTHORIZATION=f"bearer {setup.key}")
    assert response.status_code == 200


def test_a_session_cookie_alone_gets_401_on_every_api_route(setup):
    user = UserFactory(username="olivia")
    MembershipFactory(workspace=setup.workspace, user=user, role=Role.OWNER)
    user.is_staff = user.is_superuser = True
    user.save()
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    routes = api_routes_in_project()
    assert routes
    for route in routes:
        if route.public:
            continue
        response = client.generic(route.method, route.url(), b"$Secret{DB_URL}")
        assert response.status_code == 401, route.name
        assert setup.values["DB_URL"] not in response.text


def test_the_api_sets_no_cookies(client, setup):
    response = post_resolve(client, setup.key, "$Secret{DB_URL}")
    assert response.status_code == 200
    assert not response.cookies
    assert "Cookie" not in response.get("Vary", "")


# --- allowed networks -----------------------------------------------------------------------


def test_a_key_with_networks_works_only_from_them(client, workspace):
    api_setup(workspace)
    _, key = make_access_key(
        workspace, name="pinned", allowed_networks=["203.0.113.0/24", "2001:db8::/32"]
    )
    assert get_values(client, key, REMOTE_ADDR="203.0.113.9").status_code == 200
    assert get_values(client, key, REMOTE_ADDR="2001:db8::7").status_code == 200
    refused = get_values(client, key, REMOTE_ADDR="198.51.100.1")
    assert refused.status_code == 403
    said = "This access key may not be used from your address (198.51.100.1)."
    assert refused.json() == {"message": said, "error": said}
    assert "sk_live" not in refused.text and "postgres" not in refused.text


def test_forwarded_for_counts_only_behind_a_proxy(client, workspace, settings):
    api_setup(workspace)
    _, key = make_access_key(workspace, name="pinned", allowed_networks=["203.0.113.0/24"])
    forged = {"HTTP_X_FORWARDED_FOR": "203.0.113.9", "REMOTE_ADDR": "198.51.100.1"}
    assert get_values(client, key, **forged).status_code == 403, "not behind a proxy: ignored"
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert get_values(client, key, **forged).status_code == 200
    # the last hop (the proxy's own) counts, not what the client claimed before it
    spoofed = {"HTTP_X_FORWARDED_FOR": "203.0.113.9, 198.51.100.1", "REMOTE_ADDR": "10.0.0.1"}
    assert get_values(client, key, **spoofed).status_code == 403


def test_a_revoked_key_is_refused_at_once(client, setup):
    assert get_values(client, setup.key).status_code == 200
    setup.row.revoke()
    assert get_values(client, setup.key).status_code == 401
    assert post_resolve(client, setup.key, "x").status_code == 401


def test_a_key_that_expires_is_refused_from_that_moment(client, setup):
    AccessKey.objects.filter(pk=setup.row.pk).update(expires_at=timezone.now())
    assert get_values(client, setup.key).status_code == 401


def test_a_key_revoked_between_authentication_and_resolve_is_refused(client, setup, monkeypatch):
    original = AccessKey.hold

    def revoke_first(self, **kwargs):
        AccessKey.objects.filter(pk=self.pk).update(revoked_at=timezone.now())
        return original(self, **kwargs)

    monkeypatch.setattr(AccessKey, "hold", revoke_first)
    response = post_resolve(client, setup.key, "$Secret{DB_URL}")
    assert response.status_code == 401
    assert not AuditEvent.objects.filter(action=AuditAction.RESOLVED).exists()


def test_a_malformed_key_or_bad_checksum_costs_no_query_at_all(
    client, setup, django_assert_num_queries
):
    wrong_checksum = setup.key[:-1] + ("A" if setup.key[-1] != "A" else "B")
    for key in (None, "nonsense", wrong_checksum, setup.key + "x"):
        with django_assert_num_queries(0):
            assert post_resolve(client, key, "$Secret{DB_URL}").status_code == 401
            assert get_values(client, key).status_code == 401
