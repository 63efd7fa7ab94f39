"""Usage: every successful resolve (the command, the Python API and the HTTP API) counts one use
per token and context (environment, product, app, access key or OS actor, source), with its first
and last use, in the same transaction as its audit event and in a constant number of queries."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from access.models import AccessKey
from tests.api_helpers import api_setup, audit_insert_fails, get_values, post_resolve
from tests.factories import AppFactory, TokenFactory
from tokens import usage
from tokens.models import Token, TokenUsage, UseContext
from tokens.references.grammar import ResolveError
from tokens.references.resolve import check_text, resolve_text, resolve_values

pytestmark = pytest.mark.django_db

VALUE = "usage-test-value-" + "u" * 16


@pytest.fixture
def production(workspace):
    return workspace.environments.get(slug="production")


@pytest.fixture
def token(workspace):
    return TokenFactory(workspace=workspace, key="DB_PASSWORD", value=VALUE)


def run_resolve(*args: str, stdin: bytes) -> None:
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", newline="")
    call_command(
        "resolve",
        "--workspace",
        "acme",
        *args,
        stdin=io.BytesIO(stdin),
        stdout=out,
        stderr=io.StringIO(),
    )


def test_a_command_resolve_records_its_context(token, workspace):
    checkout = AppFactory(workspace=workspace, name="Checkout", slug="checkout")
    before = timezone.now()
    run_resolve(
        "--environment",
        "production",
        "--app",
        "checkout",
        "--actor",
        "deployer",
        stdin=b"password: $Secret{DB_PASSWORD}\n$Secret{DB_PASSWORD}\n",
    )

    usage = TokenUsage.objects.get()
    assert usage.token == token
    assert (usage.environment, usage.product, usage.app) == ("Production", "", checkout.name)
    assert (usage.actor, usage.access_key, usage.source) == ("deployer", "", "<stdin>")
    assert usage.use_count == 1, "one resolve is one use, however many references"
    assert before <= usage.first_used_at == usage.last_used_at <= timezone.now()
    assert usage.label == "Checkout · Production · deployer · resolve of standard input"


def test_each_resolve_in_the_same_context_counts_one_more_use(token, production):
    context = UseContext(production)
    first = timezone.now() - dt.timedelta(hours=3)
    resolve_text("$Secret{DB_PASSWORD}", context, source="app.yaml", actor="ci", at=first)
    resolve_text("$Secret{DB_PASSWORD}", context, source="app.yaml", actor="ci")
    resolve_text("$Secret{DB_PASSWORD}", context, source="app.yaml", actor="ci")

    usage = TokenUsage.objects.get()
    assert usage.use_count == 3
    assert usage.first_used_at == first
    assert usage.last_used_at > first
    token.refresh_from_db()
    assert token.last_used_at == usage.last_used_at


def test_another_source_actor_or_app_is_another_context(token, workspace, production):
    checkout = AppFactory(workspace=workspace, name="Checkout", slug="checkout")
    for source, actor, app in (
        ("a.yaml", "ci", None),
        ("b.yaml", "ci", None),
        ("a.yaml", "alice", None),
        ("a.yaml", "ci", checkout),
        ("a.yaml", "ci", None),
    ):
        resolve_text(
            "$Secret{DB_PASSWORD}", UseContext(production, app=app), source=source, actor=actor
        )
    counts = sorted(TokenUsage.objects.values_list("source", "actor", "app", "use_count"))
    assert counts == [
        ("a.yaml", "alice", "", 1),
        ("a.yaml", "ci", "", 2),
        ("a.yaml", "ci", "Checkout", 1),
        ("b.yaml", "ci", "", 1),
    ]


def test_a_renamed_app_keeps_its_usage_row_under_its_new_name(token, workspace, production):
    checkout = AppFactory(workspace=workspace, name="Checkout", slug="checkout")
    context = UseContext(production, app=checkout)
    resolve_text("$Secret{DB_PASSWORD}", context, source="a.yaml", actor="ci")
    checkout.name = "Checkout v2"
    checkout.save()
    resolve_text("$Secret{DB_PASSWORD}", context, source="a.yaml", actor="ci")
    assert list(TokenUsage.objects.values_list("app", "use_count")) == [("Checkout v2", 2)]


def test_the_api_records_the_access_key_as_the_context(client, workspace):
    setup = api_setup(workspace)
    assert (
        post_resolve(client, setup.key, "$Secret{DB_URL}", "?source=deploy.yaml").status_code == 200
    )
    assert get_values(client, setup.key, "?keys=STRIPE_KEY").status_code == 200

    rows = {u.token.key: u for u in TokenUsage.objects.select_related("token")}
    assert set(rows) == {"DB_URL", "STRIPE_KEY"}
    db_url = rows["DB_URL"]
    assert (db_url.product, db_url.app, db_url.environment) == (
        "Payments",
        "Checkout",
        "Production",
    )
    assert db_url.access_key == "deploy"
    assert db_url.actor == setup.row.actor_name
    assert db_url.label == (
        "Payments · Checkout · Production · access key deploy · resolve of deploy.yaml"
    )
    assert rows["STRIPE_KEY"].source == "<values>"
    assert rows["STRIPE_KEY"].source_label == "API values request"


def test_every_token_of_a_values_call_is_counted(client, workspace):
    setup = api_setup(workspace)
    assert get_values(client, setup.key).status_code == 200
    used = set(TokenUsage.objects.values_list("token__key", flat=True))
    assert used == {"DB_URL", "STRIPE_KEY"}


def test_failed_resolves_and_checks_record_nothing(token, workspace, production):
    sandbox = UseContext(workspace.environments.get(slug="sandbox"))
    Token.objects.filter(pk=token.pk).update(status="revoked")
    with pytest.raises(ResolveError):
        resolve_text("$Secret{DB_PASSWORD}", sandbox)
    check_text("$Secret{DB_PASSWORD}", UseContext(production))
    with pytest.raises(CommandError):
        run_resolve("--environment", "production", stdin=b"$Secret{DB_PASSWORD}")
    assert not TokenUsage.objects.exists()


def test_usage_is_written_with_the_audit_event_or_not_at_all(token, production):
    with audit_insert_fails(), pytest.raises(ResolveError, match="audit event"):
        resolve_text("$Secret{DB_PASSWORD}", UseContext(production))
    assert not TokenUsage.objects.exists()
    token.refresh_from_db()
    assert token.last_used_at is None


def test_a_long_source_is_kept_cut_to_its_column(token, production):
    source = "configs/" + "deep/" * 100 + "app.yaml"
    resolve_text("$Secret{DB_PASSWORD}", UseContext(production), source=source, actor="ci")
    resolve_text("$Secret{DB_PASSWORD}", UseContext(production), source=source, actor="ci")
    usage = TokenUsage.objects.get()
    assert usage.source == source[:255] and usage.use_count == 2


def queries(text: str, context: UseContext) -> int:
    with CaptureQueriesContext(connection) as captured:
        resolve_text(text, context, source="app.yaml", actor="ci")
    return len(captured)


@pytest.mark.parametrize("tokens", [1, 100])
def test_a_resolve_records_usage_in_a_constant_number_of_queries(
    reads_only, workspace, production, tokens, django_assert_num_queries
):
    for n in range(tokens):
        TokenFactory(workspace=workspace, key=f"K{n}", value=f"value-{n}-" + "v" * 16)
    text = "".join(f"$Secret{{K{n}}}\n" for n in range(tokens))
    context = UseContext(production)
    # In the resolve's savepoint (two statements in the test's transaction): the usable tokens
    # with their data key, the usage record, the audit INSERT. Folding the records into usage
    # rows is as constant: one statement each to take them, to count the uses of the tokens
    # read alike, to move their last use (and on PostgreSQL the roll-up's advisory lock and
    # its lock timeout).
    for _ in range(2):  # inserting the usage rows, then counting one more use on each
        with django_assert_num_queries(1 + 2 + 2):
            resolve_text(text, context, source="app.yaml", actor="ci")
    with django_assert_num_queries(2 + 3 + 2 * (connection.vendor == "postgresql")):
        assert usage.roll_up() == 2
    assert TokenUsage.objects.count() == tokens
    assert set(TokenUsage.objects.values_list("use_count", flat=True)) == {2}


def test_the_api_resolve_costs_no_more_queries_with_100_tokens_than_with_1(client, workspace):
    production = workspace.environments.get(slug="production")
    for n in range(100):
        TokenFactory(workspace=workspace, key=f"K{n}", value=f"value-{n}-" + "v" * 16)
    _, key = AccessKey.objects.create_key(workspace=workspace, name="k", environment=production)
    post_resolve(client, key, "warm-up")
    counts = []
    for text in ("$Secret{K0}", "\n".join(f"$Secret{{K{n}}}" for n in range(100))):
        with CaptureQueriesContext(connection) as captured:
            assert post_resolve(client, key, text).status_code == 200
        counts.append(len(captured))
    assert counts[0] == counts[1]
    assert TokenUsage.objects.filter(access_key="k").count() == 100


def test_resolve_values_records_every_token_it_returns(workspace, production):
    for n in range(3):
        TokenFactory(workspace=workspace, key=f"K{n}", value=f"value-{n}-" + "v" * 16)
    assert len(resolve_values(UseContext(production), actor="ci")) == 3
    assert TokenUsage.objects.count() == 3
