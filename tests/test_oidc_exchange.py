"""POST /api/v1/auth/oidc against a real issuer (tests/oidc_issuer.py): a CI job's token becomes
a short-lived credential that resolves its identity's context and nothing else."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request

import pytest

from audit.models import AuditAction, AuditEvent
from identities.models import WorkloadCredential
from tests.api_helpers import bearer
from tests.factories import TokenFactory, make_workload_identity
from tokens.models import TokenUsage

EXCHANGE = "/api/v1/auth/oidc"
VALUES = "/api/v1/values"


def exchange(client, token: str, identity: str = "acme/gh-deploy", **extra):
    body = json.dumps({"identity": identity, "token": token})
    return client.post(EXCHANGE, body, content_type="application/json", **extra)


@pytest.fixture
def tokens(workspace):
    """PROD_ONLY in production, SANDBOX_ONLY in sandbox."""
    production = workspace.environments.get(slug="production")
    sandbox = workspace.environments.get(slug="sandbox")
    TokenFactory(
        workspace=workspace, key="PROD_ONLY", value="prod-value", environments=[production]
    )
    TokenFactory(
        workspace=workspace, key="SANDBOX_ONLY", value="sandbox-value", environments=[sandbox]
    )


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_github_token_gets_its_environment_values_over_http(
    live_server, oidc_issuer, workspace, tokens
):
    make_workload_identity(workspace, issuer=oidc_issuer.url)

    def call(path: str, data: bytes | None = None, headers: dict | None = None) -> dict:
        request = urllib.request.Request(live_server.url + path, data=data, headers=headers or {})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    body = json.dumps({"identity": "acme/gh-deploy", "token": oidc_issuer.token()}).encode()
    answer = call(EXCHANGE, body, {"Content-Type": "application/json"})
    assert answer["credential"].startswith("cfw_")
    assert answer["environment"] == "production"
    assert answer["expires_in"] == 15 * 60

    values = call(VALUES, headers=bearer(answer["credential"]))
    assert values == {"PROD_ONLY": "prod-value"}, "the bound environment's values, nothing else"

    with pytest.raises(urllib.error.HTTPError) as refused:
        call(VALUES + "?keys=SANDBOX_ONLY", headers=bearer(answer["credential"]))
    assert refused.value.code == 422


def test_es256_tokens_are_accepted(client, oidc_issuer, workspace, tokens):
    make_workload_identity(workspace, issuer=oidc_issuer.url)
    response = exchange(client, oidc_issuer.token("ES256"))
    assert response.status_code == 200, response.json()


def test_the_credential_lasts_the_stated_minutes(client, oidc_issuer, workspace, settings):
    settings.COFFER_OIDC_CREDENTIAL_MINUTES = 5
    make_workload_identity(workspace, issuer=oidc_issuer.url)
    answer = exchange(client, oidc_issuer.token()).json()
    assert answer["expires_in"] == 300
    row = WorkloadCredential.objects.get()
    assert (row.expires_at - row.created_at).total_seconds() == 300


def test_an_expired_credential_is_refused(client, oidc_issuer, workspace, tokens):
    make_workload_identity(workspace, issuer=oidc_issuer.url)
    credential = exchange(client, oidc_issuer.token()).json()["credential"]
    WorkloadCredential.objects.update(expires_at="2000-01-01T00:00:00Z")
    assert client.get(VALUES, headers=bearer(credential)).status_code == 401


def test_deleting_the_identity_ends_its_credentials_at_once(client, oidc_issuer, workspace, tokens):
    identity = make_workload_identity(workspace, issuer=oidc_issuer.url)
    credential = exchange(client, oidc_issuer.token()).json()["credential"]
    assert client.get(VALUES, headers=bearer(credential)).status_code == 200

    identity.delete_identity(by=None)

    assert client.get(VALUES, headers=bearer(credential)).status_code == 401
    assert not WorkloadCredential.objects.exists()


def test_a_use_rechecks_the_identity_inside_the_transaction(client, oidc_issuer, workspace, tokens):
    """An identity that expires between authentication and the resolve: the check inside the
    resolve's transaction (`hold`) refuses it."""
    identity = make_workload_identity(workspace, issuer=oidc_issuer.url)
    exchange(client, oidc_issuer.token())
    credential = WorkloadCredential.objects.select_related("identity").get()
    identity.expires_at = identity.created_at
    identity.save(update_fields=["expires_at"])
    from django.utils import timezone

    assert not credential.hold(at=timezone.now())


def test_exchange_and_use_are_audited_and_counted_under_the_identity(
    client, oidc_issuer, workspace, tokens
):
    make_workload_identity(workspace, issuer=oidc_issuer.url)
    credential = exchange(client, oidc_issuer.token()).json()["credential"]
    client.get(VALUES, headers=bearer(credential))

    exchanged = AuditEvent.objects.get(action=AuditAction.WORKLOAD_IDENTITY_EXCHANGED)
    assert exchanged.actor_name == "workload identity gh-deploy"
    assert exchanged.detail["subject"] == "repo:acme/app:environment:production"
    assert exchanged.detail["credential"] == credential[:10] + "…"
    resolved = AuditEvent.objects.get(action=AuditAction.RESOLVED)
    assert resolved.actor_name == "workload identity gh-deploy"
    assert resolved.detail["workload_identity"] == "gh-deploy"
    usage = TokenUsage.objects.get(token__key="PROD_ONLY")
    assert usage.who == "workload identity gh-deploy"
    assert "workload identity gh-deploy" in usage.label


def test_the_credential_is_never_kept_in_clear(client, oidc_issuer, workspace, tokens, caplog):
    make_workload_identity(workspace, issuer=oidc_issuer.url)
    token = oidc_issuer.token()
    with caplog.at_level(logging.DEBUG):
        credential = exchange(client, token).json()["credential"]
        client.get(VALUES, headers=bearer(credential))
        client.get(VALUES, headers=bearer(credential[:-1] + "x"))
    row = WorkloadCredential.objects.get()
    assert row.key_hash != credential and credential not in row.key_hash
    stored = json.dumps(list(AuditEvent.objects.values_list("detail", flat=True)))
    assert credential not in stored and token not in stored
    assert credential not in caplog.text and token not in caplog.text


def test_rotated_keys_are_fetched_again_for_an_unknown_kid(client, oidc_issuer, workspace):
    make_workload_identity(workspace, issuer=oidc_issuer.url)
    assert exchange(client, oidc_issuer.token()).status_code == 200
    assert exchange(client, oidc_issuer.token("ES256")).status_code == 200
    assert oidc_issuer.fetches == 1, "the keys are cached"

    oidc_issuer.rotate()

    assert exchange(client, oidc_issuer.token()).status_code == 200
    assert oidc_issuer.fetches == 2


def test_unknown_kids_refetch_at_most_once_a_minute(client, oidc_issuer, workspace):
    make_workload_identity(workspace, issuer=oidc_issuer.url)
    exchange(client, oidc_issuer.token())
    for _ in range(3):
        response = exchange(client, oidc_issuer.token(kid="no-such-key"))
        assert response.status_code == 401 and response.json()["check"] == "key"
    assert oidc_issuer.fetches == 2, "one refetch for the first unknown kid, then none"


def test_a_private_issuer_is_never_fetched_under_the_webhook_rules(
    client, oidc_issuer, workspace, settings
):
    make_workload_identity(workspace, issuer=oidc_issuer.url)
    settings.COFFER_WEBHOOK_ALLOW_PRIVATE = False
    response = exchange(client, oidc_issuer.token())
    assert response.status_code == 503
    assert response.json()["check"] == "issuer_keys"
    assert oidc_issuer.fetches == 0


def test_allowed_networks_hold_for_the_exchange(client, oidc_issuer, workspace):
    make_workload_identity(workspace, issuer=oidc_issuer.url, allowed_networks=["203.0.113.0/24"])
    response = exchange(client, oidc_issuer.token())
    assert response.status_code == 401
    assert response.json()["check"] == "address"
    allowed = exchange(client, oidc_issuer.token(), REMOTE_ADDR="203.0.113.7")
    assert allowed.status_code == 200
    credential = allowed.json()["credential"]
    assert client.get(VALUES, headers=bearer(credential)).status_code == 403
    assert (
        client.get(VALUES, headers=bearer(credential), REMOTE_ADDR="203.0.113.7").status_code == 200
    )


def test_a_bad_request_is_400_and_a_get_is_405(client, workspace):
    assert client.post(EXCHANGE, "nope", content_type="application/json").status_code == 400
    assert client.post(EXCHANGE, {"token": "x"}).status_code == 400
    response = client.get(EXCHANGE)
    assert response.status_code == 405 and response["Cache-Control"] == "no-store"


def test_glob_patterns_do_not_cross_slashes_unless_doubled():
    from identities.models import pattern_matches

    assert pattern_matches("refs/heads/*", "refs/heads/main")
    assert not pattern_matches("refs/heads/*", "refs/heads/feature/x")
    assert pattern_matches("refs/heads/**", "refs/heads/feature/x")
    assert pattern_matches("acme/app", "acme/app")
    assert not pattern_matches("acme/app", "Acme/app"), "case-sensitive"
    assert not pattern_matches("acme/app", "acme/app2")
    assert not pattern_matches("acme/*", "acme/app/../x")
    assert not pattern_matches("acme/*", ["acme/app"]), "only strings match"
    assert pattern_matches("repo:acme/*:ref:refs/heads/main", "repo:acme/app:ref:refs/heads/main")
    assert not pattern_matches("a.c", "abc"), "a dot is a dot"


def test_a_plain_http_issuer_works_only_with_the_development_setting(
    client, workspace, settings, tmp_path
):
    from tests.oidc_issuer import Issuer

    with Issuer(tmp_path, tls=False) as plain:
        settings.COFFER_OIDC_ALLOW_INSECURE_ISSUERS = True
        make_workload_identity(workspace, issuer=plain.url)
        assert exchange(client, plain.token()).status_code == 200

        settings.COFFER_OIDC_ALLOW_INSECURE_ISSUERS = False
        from django.core.cache import cache

        cache.clear()
        response = exchange(client, plain.token())
        assert response.status_code == 503 and response.json()["check"] == "issuer_keys"
        assert plain.fetches == 1, "no request to a plain-http issuer without the setting"
