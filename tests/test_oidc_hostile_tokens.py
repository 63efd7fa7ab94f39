"""Hostile tokens at POST /api/v1/auth/oidc, from a real issuer (tests/oidc_issuer.py): every
one a 401 naming the failed check, the token never echoed, no credential, no 500."""

from __future__ import annotations

import base64
import json
import time

import pytest

from identities.models import WorkloadCredential
from tests.api_helpers import bearer
from tests.factories import make_workload_identity
from tests.oidc_issuer import Issuer

EXCHANGE = "/api/v1/auth/oidc"
HOUR = 3600


def exchange(client, token, identity: str = "acme/gh-deploy"):
    body = json.dumps({"identity": identity, "token": token})
    return client.post(EXCHANGE, body, content_type="application/json")


def tampered(token: str) -> str:
    """The token with its payload changed (another repository), the signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["repository"] = "evil/app"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


HOSTILE = {
    "expired": (
        lambda i: i.token(iat=int(time.time()) - 2 * HOUR, exp=int(time.time()) - HOUR),
        "exp",
    ),
    "not yet valid": (lambda i: i.token(nbf=int(time.time()) + HOUR), "nbf"),
    "issued in the future": (lambda i: i.token(iat=int(time.time()) + HOUR), "iat"),
    "wrong issuer": (
        lambda i: i.token(iss="https://token.actions.githubusercontent.com"),
        "issuer",
    ),
    "wrong audience": (lambda i: i.token(aud="https://someone-else.example"), "audience"),
    "no audience": (lambda i: i.token(aud=None), "claims"),
    "no expiry": (lambda i: i.token(exp=None), "claims"),
    "wrong repository": (lambda i: i.token(repository="evil/app"), "claims"),
    "wrong ref": (lambda i: i.token(ref="refs/heads/feature/x"), "claims"),
    "claim missing": (lambda i: i.token(ref=None), "claims"),
    "unknown kid": (lambda i: i.token(kid="someone-elses-key"), "key"),
    "alg none": (lambda i: i.unsigned_token(), "algorithm"),
    "HS256 with the public key": (lambda i: i.hmac_with_public_key(), "algorithm"),
    "tampered payload": (lambda i: tampered(i.token()), "signature"),
    "garbage": (lambda i: "not.a.jwt", "format"),
    "not a string": (lambda i: {"alg": "none"}, "format"),
}


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
def test_hostile_token_is_refused_with_its_reason(client, oidc_issuer, workspace, case):
    make_workload_identity(workspace, issuer=oidc_issuer.url)
    make, check = HOSTILE[case]
    token = make(oidc_issuer)

    response = exchange(client, token)

    assert response.status_code == 401, response.content
    assert response.json()["check"] == check
    assert response.json()["error"].startswith(f"Refused ({check}): ")
    assert response["WWW-Authenticate"] == 'Bearer realm="coffer"'
    text = response.content.decode()
    assert "credential" not in response.json()
    if isinstance(token, str):
        for part in token.split("."):
            assert len(part) < 8 or part not in text, "the token is never echoed"
    assert not WorkloadCredential.objects.exists()


def test_a_token_from_another_workspaces_issuer_is_refused(
    client, oidc_issuer, workspace, other_workspace, tmp_path
):
    """Globex trusts its own issuer; its job's token names Acme's identity."""
    make_workload_identity(workspace, issuer=oidc_issuer.url)
    folder = tmp_path / "globex"
    folder.mkdir()
    with Issuer(folder) as globex_issuer:
        make_workload_identity(other_workspace, issuer=globex_issuer.url)
        response = exchange(client, globex_issuer.token())
        assert response.status_code == 401 and response.json()["check"] == "issuer"
        # ... and Acme's token cannot sign in as Globex's identity either.
        response = exchange(client, oidc_issuer.token(), identity="globex/gh-deploy")
        assert response.status_code == 401 and response.json()["check"] == "issuer"
    assert not WorkloadCredential.objects.exists()


def test_a_token_signed_by_another_issuers_key_with_a_known_kid_is_refused(
    client, oidc_issuer, workspace, tmp_path
):
    """Another issuer's key, claiming this issuer's kid and iss: the signature fails."""
    make_workload_identity(workspace, issuer=oidc_issuer.url)
    folder = tmp_path / "impostor"
    folder.mkdir()
    impostor = Issuer(folder)
    impostor.url = oidc_issuer.url
    token = impostor.token(kid=oidc_issuer.keys[0].kid)
    response = exchange(client, token)
    assert response.status_code == 401 and response.json()["check"] == "signature"


def test_an_es256_header_on_an_rsa_key_is_refused(client, oidc_issuer, workspace):
    make_workload_identity(workspace, issuer=oidc_issuer.url)
    token = oidc_issuer.token("ES256", kid=oidc_issuer.keys[0].kid)  # the RSA key's kid
    response = exchange(client, token)
    assert response.status_code == 401 and response.json()["check"] == "algorithm"


def test_a_replay_after_the_identity_is_deleted_is_refused(client, oidc_issuer, workspace):
    identity = make_workload_identity(workspace, issuer=oidc_issuer.url)
    token = oidc_issuer.token()
    credential = exchange(client, token).json()["credential"]

    identity.delete_identity(by=None)

    response = exchange(client, token)
    assert response.status_code == 401 and response.json()["check"] == "identity"
    assert client.get("/api/v1/values", headers=bearer(credential)).status_code == 401


def test_an_unknown_identity_is_refused(client, oidc_issuer, workspace):
    make_workload_identity(workspace, issuer=oidc_issuer.url)
    for name in ("acme/nobody", "nobody/gh-deploy", "gh-deploy", "x" * 300):
        response = exchange(client, oidc_issuer.token(), identity=name)
        assert response.status_code == 401 and response.json()["check"] == "identity"
    response = exchange(client, oidc_issuer.token(), identity=["acme/gh-deploy"])
    assert response.status_code == 401


def test_refusals_count_as_failed_authentications(client, oidc_issuer, workspace, settings):
    settings.COFFER_API_AUTH_FAILURE_LIMIT = 3
    make_workload_identity(workspace, issuer=oidc_issuer.url)
    for _ in range(3):
        assert exchange(client, oidc_issuer.token(repository="evil/app")).status_code == 401
    response = exchange(client, oidc_issuer.token())
    assert response.status_code == 429, "even a good token waits out the address's failures"
    assert "Retry-After" in response


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_a_token_signed_with_a_weak_published_rsa_key_is_refused(client, oidc_issuer, workspace):
    from cryptography.hazmat.primitives.asymmetric import rsa

    make_workload_identity(workspace, issuer=oidc_issuer.url)
    oidc_issuer.keys[0].private = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    response = exchange(client, oidc_issuer.token())
    assert response.status_code == 401 and response.json()["check"] == "key"


def test_an_addresss_failures_do_not_lock_out_another_identity(
    client, oidc_issuer, workspace, settings
):
    """As with access keys: failures from an address count against the identity they named; past
    the address's limit they answer 429, but a good token for another identity still works."""
    settings.COFFER_API_AUTH_FAILURE_LIMIT = 3
    make_workload_identity(workspace, issuer=oidc_issuer.url)
    make_workload_identity(workspace, issuer=oidc_issuer.url, name="gh-other")
    for _ in range(3):
        exchange(client, oidc_issuer.token(repository="evil/app"))
    assert exchange(client, oidc_issuer.token(), identity="acme/gh-other").status_code == 200
    failed = exchange(client, oidc_issuer.token(repository="evil/app"), identity="acme/gh-other")
    assert failed.status_code == 429 and "from this address" in failed.json()["error"]
