"""GET /api/v1/values/<KEY> (api/value.py), checked against the contract of External Secrets
Operator's generic webhook provider: ESO sends a GET to the SecretStore's URL with
`{{ .remoteRef.key }}` filled in, the SecretStore's templated headers (here `Authorization:
Bearer {{ .coffer.key }}`, `User-Agent: external-secrets`), Go's own `Accept-Encoding: gzip`
and no body; it reads a 2xx body through `result.jsonPath`, takes a 404 for "the secret is
gone" (the ExternalSecret's deletionPolicy), and any other status as an error.

The last test replays ESO's request byte for byte against a real gunicorn."""

from __future__ import annotations

import json
import socket

import pytest

from audit.models import AuditAction, AuditEvent
from tests.api_helpers import api_setup
from tests.api_server import running_server
from tokens.models import Token, TokenUsage

pytestmark = pytest.mark.django_db

ESO_AGENT = "external-secrets"  # as the SecretStore in docs/kubernetes.md sets it


@pytest.fixture
def setup(workspace):
    return api_setup(workspace)


def eso_get(client, key: str | None, name: str, agent: str = ESO_AGENT, query: str = ""):
    """The request ESO's webhook provider makes (method, headers; no body)."""
    headers = {"User-Agent": agent, "Accept-Encoding": "gzip", "Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return client.get(f"/api/v1/values/{name}{query}", headers=headers)


def json_path_value(body: bytes) -> str:
    """What `result.jsonPath: "$.value"` picks out of the answer."""
    return json.loads(body)["value"]


def test_a_usable_token_answers_its_value_at_dollar_value(client, setup):
    response = eso_get(client, setup.key, "DB_URL")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    assert json_path_value(response.content) == setup.values["DB_URL"]
    assert response.json() == {"key": "DB_URL", "value": setup.values["DB_URL"]}


def test_the_read_is_audited_and_its_usage_names_the_client(client, setup):
    eso_get(client, setup.key, "STRIPE_KEY")
    event = AuditEvent.objects.get(action=AuditAction.RESOLVED)
    assert event.detail["keys"] == ["STRIPE_KEY"]
    assert event.detail["source"] == ESO_AGENT
    assert event.detail["user_agent"] == ESO_AGENT
    usage = TokenUsage.objects.get(token__key="STRIPE_KEY")
    assert (usage.source, usage.access_key) == (ESO_AGENT, "deploy")
    assert setup.values["STRIPE_KEY"] not in json.dumps(event.detail)


def test_source_wins_over_the_user_agent_and_control_characters_are_dropped(client, setup):
    eso_get(client, setup.key, "DB_URL", agent="eso\x07 cluster-a", query="?source=eso-prod")
    assert TokenUsage.objects.get(token__key="DB_URL").source == "eso-prod"
    eso_get(client, setup.key, "STRIPE_KEY", agent="eso\x07 cluster-a")
    assert TokenUsage.objects.get(token__key="STRIPE_KEY").source == "eso cluster-a"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("NOPE", "unknown token, or not available in this context"),
        ("SANDBOX_ONLY", "unknown token, or not available in this context"),
        ("MOBILE_KEY", "not in scope for payments, checkout"),
    ],
)
def test_a_token_the_context_cannot_use_is_a_404_so_eso_deletes_its_secret(
    client, setup, name, reason
):
    response = eso_get(client, setup.key, name)
    assert response.status_code == 404
    assert response.json()["error"] == response.json()["message"] == f"{name}: {reason}."
    for value in setup.values.values():
        assert value not in response.text
    assert not AuditEvent.objects.filter(action=AuditAction.RESOLVED).exists()
    assert AuditEvent.objects.filter(action=AuditAction.ACCESS_KEY_CALL_FAILED).exists()


def test_a_revoked_or_expired_token_is_a_404_too(client, setup):
    Token.objects.get(workspace=setup.workspace, key="DB_URL").revoke()
    response = eso_get(client, setup.key, "DB_URL")
    assert response.status_code == 404
    assert response.json()["error"] == response.json()["message"] == "DB_URL: token revoked."


def test_a_bad_key_is_an_error_eso_reports_not_a_deletion(client, setup):
    for key in (None, setup.key[:-1] + "x"):
        assert eso_get(client, key, "DB_URL").status_code == 401
    response = eso_get(client, setup.key, "9LIVES")
    assert response.status_code == 400
    assert "is not a Token Key" in response.json()["error"]


def test_only_get(client, setup):
    response = client.post(
        "/api/v1/values/DB_URL", headers={"Authorization": f"Bearer {setup.key}"}
    )
    assert response.status_code == 405


def test_one_read_is_a_handful_of_queries(reads_only, client, setup, django_assert_max_num_queries):
    with django_assert_max_num_queries(12):
        assert eso_get(client, setup.key, "DB_URL").status_code == 200


@pytest.mark.slow
def test_esos_request_replayed_byte_for_byte_against_a_real_server():
    """The request as Go's net/http writes it for ESO's webhook provider (GET, Host,
    User-Agent, the SecretStore's headers, Go's Accept-Encoding: gzip; no body, so no
    Content-Length)."""
    with running_server() as server:
        host, port = server.url.removeprefix("http://").split(":")
        key = server.keys["main"]
        for name, expected in (("DB_URL", 200), ("MOBILE_ONLY", 404)):
            request = (
                f"GET /api/v1/values/{name} HTTP/1.1\r\n"
                f"Host: {host}:{port}\r\n"
                f"User-Agent: {ESO_AGENT}\r\n"
                f"Authorization: Bearer {key}\r\n"
                "Content-Type: application/json\r\n"
                "Accept-Encoding: gzip\r\n"
                "Connection: close\r\n\r\n"
            ).encode()
            with socket.create_connection((host, int(port)), timeout=30) as sock:
                sock.sendall(request)
                raw = b""
                while chunk := sock.recv(65536):
                    raw += chunk
            head, _, body = raw.partition(b"\r\n\r\n")
            status = int(head.split()[1])
            assert status == expected, raw
            if expected == 200:
                assert json_path_value(body) == server.values["DB_URL"]
            else:
                assert b"MOBILE_ONLY: unknown token" in body
