"""GET /api/v1/values: values for environment injection, as JSON, dotenv or shell lines.

How every dotenv reader reads the lines back: tests/test_dotenv_readers.py."""

from __future__ import annotations

import subprocess

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import AuditAction, AuditEvent
from tests.api_helpers import api_setup, get_values
from tests.factories import TokenFactory, make_access_key
from tokens.models import Token

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(workspace):
    return api_setup(workspace)


def test_without_keys_every_usable_token_as_json(client, setup):
    response = get_values(client, setup.key)
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    # production + payments + checkout: not MOBILE_KEY (another app), not SANDBOX_ONLY
    assert response.json() == {
        "DB_URL": setup.values["DB_URL"],
        "STRIPE_KEY": setup.values["STRIPE_KEY"],
    }
    event = AuditEvent.objects.get(action=AuditAction.RESOLVED)
    assert event.detail["keys"] == ["DB_URL", "STRIPE_KEY"]
    assert event.detail["source"] == "<values>"
    assert event.detail["access_key"] == "deploy"
    assert set(Token.objects.filter(last_used_at__isnull=False).values_list("key", flat=True)) == {
        "DB_URL",
        "STRIPE_KEY",
    }
    setup.row.refresh_from_db()
    assert setup.row.use_count == 1


def test_named_keys_in_the_order_asked(client, setup):
    response = get_values(client, setup.key, "?keys=STRIPE_KEY,DB_URL,STRIPE_KEY")
    assert response.status_code == 200
    assert list(response.json()) == ["STRIPE_KEY", "DB_URL"]


def test_keys_that_cannot_be_resolved_give_the_report_and_no_value(client, setup):
    revoked = TokenFactory(workspace=setup.workspace, key="OLD", value="old-value-" + "o" * 20)
    revoked.revoke()
    response = get_values(
        client, setup.key, "?keys=DB_URL,MOBILE_KEY,SANDBOX_ONLY,NOPE,OLD&format=dotenv"
    )
    assert response.status_code == 422
    report = response.json()
    assert report["ok"] is False
    assert {entry["key"]: entry["reason"] for entry in report["references"]} == {
        "DB_URL": None,
        "MOBILE_KEY": "not in scope for payments, checkout",
        "SANDBOX_ONLY": "unknown token, or not available in this context",
        "NOPE": "unknown token, or not available in this context",
        "OLD": "token revoked",
    }
    # Keys, not the lines and columns of a template nobody wrote.
    assert all(set(entry) == {"key", "status", "reason"} for entry in report["references"])
    assert list(report)[0] == "message"
    assert report["message"] == (
        "4 of 5 keys cannot be resolved here (no value was returned): MOBILE_KEY: not in scope "
        "for payments, checkout; SANDBOX_ONLY: unknown token, or not available in this context; "
        "NOPE: unknown token, or not available in this context; OLD: token revoked."
    )
    assert "line" not in response.text and "column" not in response.text
    for value in [*setup.values.values(), "old-value-"]:
        assert value not in response.text
    assert not AuditEvent.objects.filter(action=AuditAction.RESOLVED).exists()
    assert not Token.objects.filter(last_used_at__isnull=False).exists()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?keys=", "comma-separated list of Token Keys"),
        ("?keys=bad-key,DB_URL", 'Not Token Keys: "bad-key"'),
        ("?keys=A}$Secret{DB_URL", "Not Token Keys"),
        ("?keys=" + "K" * 129, "Not Token Keys"),
        ("?keys=" + ",".join(f"K{n}" for n in range(1001)), "at most 1000"),
        ("?format=yaml", "format is json, dotenv or shell"),
    ],
)
def test_bad_parameters_get_a_400_and_reveal_nothing(client, setup, query, message):
    response = get_values(client, setup.key, query)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert setup.values["DB_URL"] not in response.text
    assert not AuditEvent.objects.filter(action=AuditAction.RESOLVED).exists()


def test_dotenv_is_read_exactly_by_bash(client, setup, workspace):
    portable = 'line1\nline2 "double" $HOME `date` # \\n \\ end\t\n'
    TokenFactory(workspace=workspace, key="PORTABLE", value=portable)
    TokenFactory(workspace=workspace, key="QUOTE", value="it's-" + "q" * 20)
    response = get_values(client, setup.key, "?keys=PORTABLE,QUOTE,STRIPE_KEY&format=dotenv")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert sourced_by_bash(response.content, ["PORTABLE", "QUOTE", "STRIPE_KEY"]) == [
        portable,
        "it's-" + "q" * 20,
        setup.values["STRIPE_KEY"],
    ]


def test_a_value_no_dotenv_quoting_carries_is_refused_and_shell_carries_it(
    client, setup, workspace
):
    tricky = "line1\nline2 'single' \"double\" $HOME `date` \\n \\ end\t\r\n"
    TokenFactory(workspace=workspace, key="TRICKY", value=tricky)
    TokenFactory(workspace=workspace, key="HOMEY", value="${HOME}/" + "h" * 20)
    response = get_values(client, setup.key, "?keys=TRICKY,HOMEY,STRIPE_KEY&format=dotenv")
    assert response.status_code == 422
    error = response.json()["error"]
    assert "TRICKY holds a carriage return" in error
    assert "HOMEY holds ${…}, which python-dotenv replaces" in error
    assert "Use format=shell (for a POSIX shell) or format=json" in error
    assert "STRIPE_KEY" not in error
    for value in ("line1", "hhhhh", setup.values["STRIPE_KEY"]):
        assert value not in response.text
    assert not AuditEvent.objects.filter(action=AuditAction.RESOLVED).exists()

    response = get_values(client, setup.key, "?keys=TRICKY,HOMEY,STRIPE_KEY&format=shell")
    assert response.status_code == 200
    assert sourced_by_bash(response.content, ["TRICKY", "HOMEY", "STRIPE_KEY"]) == [
        tricky,
        "${HOME}/" + "h" * 20,
        setup.values["STRIPE_KEY"],
    ]


@pytest.mark.parametrize("output", ["dotenv", "shell"])
def test_a_value_with_nul_is_refused_as_dotenv_and_shell(client, setup, workspace, output):
    TokenFactory(workspace=workspace, key="BINARY", value="a\x00b-" + "x" * 20)
    response = get_values(client, setup.key, f"?keys=BINARY&format={output}")
    assert response.status_code == 422
    assert "BINARY holds a NUL character" in response.json()["error"]
    assert "format=json" in response.json()["error"]
    assert "xxxxx" not in response.text
    assert get_values(client, setup.key, "?keys=BINARY").json() == {"BINARY": "a\x00b-" + "x" * 20}


def test_values_costs_the_same_queries_for_1_and_50_tokens(client, workspace):
    counts = []
    for size in (1, 50):
        for n in range(size):
            TokenFactory(workspace=workspace, key=f"T{size}_{n}", value=f"value-{n}-" + "v" * 20)
        _, key = make_access_key(workspace, name=f"k{size}")
        keys = ",".join(f"T{size}_{n}" for n in range(size))
        get_values(client, key, "?keys=T1_0")  # warm-up: the rate-limit window exists
        with CaptureQueriesContext(connection) as queries:
            response = get_values(client, key, f"?keys={keys}")
        assert response.status_code == 200 and len(response.json()) == size
        counts.append(len(queries))
    assert counts[0] == counts[1]


# --- reading the output back --------------------------------------------------------------------


def sourced_by_bash(script: bytes, names: list[str]) -> list[str]:
    """Source `script` in bash and print each variable NUL-separated, exactly."""
    printer = "".join(f'printf "%s\\0" "${name}"; ' for name in names)
    result = subprocess.run(
        ["bash", "-c", f'set -eu; eval "$(cat)"; {printer}'],
        input=script,
        capture_output=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
    )
    return result.stdout.decode("utf-8").split("\0")[:-1]


def test_a_keyless_call_lists_and_locks_the_usable_tokens_in_one_statement(client, setup):
    """No gap between listing the usable tokens and locking them (a token revoked in between
    used to fail the call): one read of the tokens finds, locks and fetches them (the feed's
    ETag look before it reads no value)."""
    get_values(client, setup.key)  # warm-up: the rate-limit window exists
    with CaptureQueriesContext(connection) as queries:
        response = get_values(client, setup.key)
    assert response.status_code == 200
    assert set(response.json()) == {"DB_URL", "STRIPE_KEY"}
    token_reads = [
        q["sql"]
        for q in queries
        # Prepared statements are logged as "QUERY = '...' - PARAMS = (...)" (lib/prepared.py).
        if '"tokens_token"."ciphertext"' in q["sql"]
    ]
    assert len(token_reads) == 1, token_reads
