"""POST /api/v1/resolve: the CLI's resolver over HTTP, byte for byte, failing closed."""

from __future__ import annotations

import io
import json
from unittest import mock

import pytest
from django.core.management import call_command
from django.db import connection

from access.models import AccessKey
from audit.models import AuditAction, AuditEvent
from keys import crypto
from tests.api_helpers import RESOLVE, api_setup, audit_insert_fails, bearer, post_resolve
from tests.factories import TokenFactory
from tokens.models import Token

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(workspace):
    return api_setup(workspace)


def test_resolves_a_template(client, setup):
    response = post_resolve(client, setup.key, "db: $Secret{DB_URL}\nstripe: $Secret{STRIPE_KEY}\n")
    assert response.status_code == 200
    assert response.content == (
        f"db: {setup.values['DB_URL']}\nstripe: {setup.values['STRIPE_KEY']}\n".encode()
    )
    assert response["Cache-Control"] == "no-store"


def test_bytes_are_kept_exactly_as_the_cli_keeps_them(client, setup):
    template = b"\xef\xbb\xbfa: $Secret{DB_URL}\r\nlatin: caf\xe9 $$Secret{X}\r\nend"
    response = post_resolve(client, setup.key, template)
    expected = io.BytesIO()
    call_command(
        "resolve",
        "--workspace",
        "acme",
        "--environment",
        "production",
        "--product",
        "payments",
        "--app",
        "checkout",
        stdin=io.BytesIO(template),
        stdout=expected,
        file="-",
    )
    assert response.status_code == 200
    assert response.content == expected.getvalue()
    assert response.content == (
        b"\xef\xbb\xbfa: "
        + setup.values["DB_URL"].encode()
        + b"\r\nlatin: caf\xe9 $Secret{X}\r\nend"
    )


def test_an_empty_body_resolves_to_nothing(client, setup):
    response = post_resolve(client, setup.key, b"")
    assert response.status_code == 200 and response.content == b""


def test_unresolvable_references_give_the_cli_json_report_and_no_value(client, setup):
    template = (
        "a: $Secret{DB_URL}\nb: $Secret{MOBILE_KEY}\nc: $Secret{SANDBOX_ONLY}\n"
        "d: $Secret{NOPE}\ne: $Secret{bad key}\n"
    )
    response = post_resolve(client, setup.key, template, "?source=app.yaml")
    assert response.status_code == 422
    assert response["Cache-Control"] == "no-store"
    out = io.StringIO()
    with pytest.raises(Exception):  # noqa: B017 - exit 1, the report is on stdout
        call_command(
            "resolve",
            "--workspace",
            "acme",
            "--environment",
            "production",
            "--product",
            "payments",
            "--app",
            "checkout",
            "--format",
            "json",
            stdin=io.BytesIO(template.encode()),
            stdout=out,
            file="-",
        )
    cli = json.loads(out.getvalue())
    cli["source"] = "app.yaml"
    api = response.json()
    assert list(api)[0] == "message"  # what a person reads first in a CI log
    assert api.pop("message") == (
        "4 of 5 references cannot be resolved (nothing was resolved): MOBILE_KEY on line 2: not "
        "in scope for payments, checkout; SANDBOX_ONLY on line 3: unknown token, or not "
        "available in this context; NOPE on line 4: unknown token, or not available in this "
        "context; $Secret{bad key} on line 5: malformed reference."
    )
    assert response.text.startswith('{\n  "message": ')  # one field a line
    # The same report, but for the reasons: the server's operator may learn the workspace's
    # other environments and scopes, an access key only what its own context may know.
    reasons = {entry["key"]: entry.pop("reason") for entry in api["references"]}
    operator_reasons = {entry["key"]: entry.pop("reason") for entry in cli["references"]}
    assert api == cli
    assert reasons == {
        "DB_URL": None,
        "MOBILE_KEY": "not in scope for payments, checkout",
        "SANDBOX_ONLY": "unknown token, or not available in this context",
        "NOPE": "unknown token, or not available in this context",
        None: "malformed reference",
    }
    assert operator_reasons == {
        "DB_URL": None,
        "MOBILE_KEY": "not in scope for payments, checkout (scoped to mobile)",
        "SANDBOX_ONLY": "not valid in environment production (valid in sandbox)",
        "NOPE": "unknown token",
        None: "malformed reference",
    }
    for value in setup.values.values():
        assert value not in response.text
    assert not AuditEvent.objects.filter(action=AuditAction.RESOLVED).exists()
    assert not Token.objects.filter(last_used_at__isnull=False).exists()
    setup.row.refresh_from_db()
    assert setup.row.use_count == 1, "a failed call is counted (test_api_attempts.py)"


def test_check_gives_the_report_and_decrypts_and_records_nothing(client, setup):
    with mock.patch.object(crypto, "decrypt", side_effect=AssertionError):
        ok = post_resolve(client, setup.key, "$Secret{DB_URL}", "?check=1")
        bad = post_resolve(client, setup.key, "$Secret{DB_URL} $Secret{NOPE}", "?check=1")
    assert ok.status_code == 200 and ok.json()["ok"] is True
    assert ok.json()["references"][0]["status"] == "ok"
    assert bad.status_code == 422 and bad.json()["ok"] is False
    assert not AuditEvent.objects.filter(action=AuditAction.RESOLVED).exists()
    assert not Token.objects.filter(last_used_at__isnull=False).exists()


def test_a_resolve_is_audited_and_marks_the_tokens_and_the_key_used(client, setup):
    response = post_resolve(
        client,
        setup.key,
        "$Secret{DB_URL} $Secret{DB_URL}",
        "?source=deploy.yaml",
        REMOTE_ADDR="192.0.2.10",
    )
    assert response.status_code == 200
    event = AuditEvent.objects.get(action=AuditAction.RESOLVED)
    assert event.actor is None
    assert event.actor_name == f"access key deploy ({setup.row.identifier}…)"
    assert event.detail["keys"] == ["DB_URL"]
    assert event.detail["references"] == 2
    assert event.detail["source"] == "deploy.yaml"
    assert event.detail["environment"] == "production"
    assert (event.detail["product"], event.detail["app"]) == ("payments", "checkout")
    assert event.detail["access_key"] == "deploy"
    assert event.detail["identifier"] == f"{setup.row.identifier}…"
    assert event.detail["client_address"] == "192.0.2.10"
    used_at = Token.objects.get(key="DB_URL").last_used_at
    assert used_at is not None
    assert not Token.objects.exclude(key="DB_URL").filter(last_used_at__isnull=False).exists()
    setup.row.refresh_from_db()
    assert setup.row.last_used_at == used_at
    assert setup.row.use_count == 1
    assert setup.row.last_used_from == "192.0.2.10"
    assert setup.row.last_used_at is not None


def test_no_audit_event_means_no_value_and_a_503(client, setup):
    with audit_insert_fails("disk full"):
        response = post_resolve(client, setup.key, "$Secret{DB_URL}")
    assert response.status_code == 503
    assert "nothing was resolved" in response.json()["error"]
    assert setup.values["DB_URL"] not in response.text
    assert response["Cache-Control"] == "no-store"
    assert not Token.objects.filter(last_used_at__isnull=False).exists()
    setup.row.refresh_from_db()
    assert setup.row.use_count == 0, "the key's use is rolled back with the resolve"


def test_the_key_cannot_widen_its_context(client, setup):
    # Query parameters naming another environment, product or app change nothing.
    response = post_resolve(
        client, setup.key, "$Secret{SANDBOX_ONLY}", "?environment=sandbox&app=mobile"
    )
    assert response.status_code == 422
    assert "not available in this context" in response.text


def test_a_template_over_the_limit_is_refused_before_it_is_read(client, setup, settings):
    settings.COFFER_API_MAX_BYTES = 100
    # The test client's input stream fails on a read past its 10 bytes: the view must not try.
    response = post_resolve(client, setup.key, b"0123456789", CONTENT_LENGTH="5000000")
    assert response.status_code == 413
    said = "The template is 5,000,000 bytes; the limit is 100 bytes."
    assert response.json() == {"message": said, "error": said}
    assert post_resolve(client, setup.key, b"x" * 100).status_code == 200
    assert post_resolve(client, setup.key, b"x" * 101).status_code == 413


def test_larger_than_djangos_upload_limit_is_fine_under_ours(client, setup, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = ("$Secret{DB_URL}\n" + "x" * 5000).encode()
    response = post_resolve(client, setup.key, body)
    assert response.status_code == 200
    assert response.content.startswith(setup.values["DB_URL"].encode())


def test_a_chunked_body_without_length_is_refused(client, setup):
    response = client.generic(
        "POST", RESOLVE, b"", headers={**bearer(setup.key), "Transfer-Encoding": "chunked"}
    )
    assert response.status_code == 411
    assert "Content-Length" in response.json()["error"]


@pytest.mark.parametrize(
    ("body", "query", "message"),
    [
        (b"\xff\xfe$\x00", "", "UTF-16"),
        (b"x", "?source=" + "s" * 201, "source is a name"),
        (b"x", "?source=%0a", "source is a name"),
        (b"x", "?check=maybe", "check is 1 or 0"),
    ],
)
def test_bad_input_gets_a_400_with_a_message(client, setup, body, query, message):
    response = post_resolve(client, setup.key, body, query)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert not AuditEvent.objects.filter(action=AuditAction.RESOLVED).exists()


def test_other_methods_get_405(client, setup):
    response = client.get(RESOLVE, headers=bearer(setup.key))
    assert response.status_code == 405 and response["Allow"] == "POST"
    assert response["Cache-Control"] == "no-store"


@pytest.mark.parametrize("references", [1, 50])
def test_a_resolve_costs_the_same_queries_whatever_the_references(
    reads_only, client, workspace, references, django_assert_num_queries
):
    for n in range(references):
        TokenFactory(workspace=workspace, key=f"TOKEN_{n}", value=f"value-{n}-" + "v" * 20)
    _, key = AccessKey.objects.create_key(
        workspace=workspace, name="k", environment=workspace.environments.get(slug="production")
    )
    template = "\n".join(f"$Secret{{TOKEN_{n}}}" for n in range(references))
    post_resolve(client, key, "warm-up")  # the first hit of a rate-limit window also prunes
    with django_assert_num_queries(queries_per_resolve()):
        response = post_resolve(client, key, template)
    assert response.status_code == 200
    assert response.content.count(b"value-") == references


def queries_per_resolve() -> int:
    """In a test transaction (the resolve's savepoint counted too: two statements): the key's
    lookup, its rate limit, its check in the transaction, the usable tokens, the usage record
    and the audit event: no UPDATE of any shared row."""
    return 8


def test_a_database_outage_is_a_json_503(client, setup, caplog):
    from django.db import OperationalError

    def refuse(execute, sql, params, many, context):
        raise OperationalError("connection refused")

    with connection.execute_wrapper(refuse):  # the database is gone, from the first statement
        response = post_resolve(client, setup.key, "$Secret{DB_URL}")
    assert response.status_code == 503
    assert response["Retry-After"] == "30" and response["Cache-Control"] == "no-store"
    assert response.json()["error"].startswith("Coffer cannot answer right now")
    assert "OperationalError: connection refused" in caplog.text
    assert "Traceback" not in caplog.text
