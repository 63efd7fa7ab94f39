"""One Token Key, a token per environment (or per scope that cannot meet): every consumer
resolves a reference to the one token usable in its context, says the most useful reason when
none is, and costs the same queries however many tokens share a key."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import AuditAction, AuditEvent
from tests.api_helpers import get_values, post_resolve
from tests.factories import EnvironmentFactory, ProductFactory, TokenFactory, make_access_key
from tokens.models import NOT_AVAILABLE, Token, TokenUsage, UseContext
from tokens.references.grammar import ResolveError
from tokens.references.resolve import Audience, check_text, resolve_text

LIVE = "sk_live_" + "L" * 24
TEST = "sk_test_" + "T" * 24
TEMPLATE = "stripe: $Secret{STRIPE_SECRET}\n"


@pytest.fixture
def production(workspace):
    return workspace.environments.get(slug="production")


@pytest.fixture
def sandbox(workspace):
    return workspace.environments.get(slug="sandbox")


@pytest.fixture
def stripe(workspace, production, sandbox):
    """STRIPE_SECRET: a live value in Production, a test value in Sandbox."""
    live = TokenFactory(
        workspace=workspace, key="STRIPE_SECRET", value=LIVE, environments=[production]
    )
    test = TokenFactory(
        workspace=workspace, key="STRIPE_SECRET", value=TEST, environments=[sandbox]
    )
    return live, test


def command(environment: str, text: str = TEMPLATE, *args: str) -> tuple[int, str, str]:
    """`manage.py resolve` in `environment` (or with the arguments given alone, for "")."""
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", newline="")
    err = io.StringIO()
    code = 0
    where = ["--environment", environment] if environment else []
    try:
        call_command(
            "resolve",
            "--workspace",
            "acme",
            *where,
            *args,
            stdin=io.BytesIO(text.encode()),
            stdout=out,
            stderr=err,
        )
    except CommandError as error:
        code = error.returncode
    out.flush()
    return code, out.buffer.getvalue().decode(), err.getvalue()


# --- one template, a value per environment --------------------------------------------------


def test_the_command_resolves_the_token_of_each_environment(stripe):
    live, test = stripe
    assert command("production") == (0, f"stripe: {LIVE}\n", "")
    live.refresh_from_db()
    test.refresh_from_db()
    # Only the token used is marked used and counted: never its namesake in Sandbox.
    assert live.last_used_at is not None and test.last_used_at is None
    assert set(TokenUsage.objects.values_list("token", flat=True)) == {live.pk}

    assert command("sandbox") == (0, f"stripe: {TEST}\n", "")
    test.refresh_from_db()
    assert test.last_used_at is not None
    assert TokenUsage.objects.filter(token=test, environment="Sandbox").count() == 1


def test_the_api_resolves_the_token_of_each_access_keys_environment(
    client, workspace, stripe, production, sandbox
):
    _, live_key = make_access_key(workspace, name="prod", environment=production)
    _, test_key = make_access_key(workspace, name="sandbox", environment=sandbox)
    assert post_resolve(client, live_key, TEMPLATE).content == f"stripe: {LIVE}\n".encode()
    assert post_resolve(client, test_key, TEMPLATE).content == f"stripe: {TEST}\n".encode()
    assert get_values(client, live_key).json() == {"STRIPE_SECRET": LIVE}
    assert get_values(client, test_key, "?keys=STRIPE_SECRET").json() == {"STRIPE_SECRET": TEST}
    used = {
        event.detail["access_key"]: event.detail["environment"]
        for event in AuditEvent.objects.filter(action=AuditAction.RESOLVED)
    }
    assert used == {"prod": "production", "sandbox": "sandbox"}


def test_scopes_that_cannot_meet_resolve_each_to_their_own(workspace, production):
    web = ProductFactory(workspace=workspace, slug="web")
    batch = ProductFactory(workspace=workspace, slug="batch")
    TokenFactory(
        workspace=workspace,
        key="QUEUE_URL",
        value="web-queue-" + "w" * 20,
        environments=[production],
        products=[web],
    )
    TokenFactory(
        workspace=workspace,
        key="QUEUE_URL",
        value="batch-queue-" + "b" * 20,
        environments=[production],
        products=[batch],
    )
    text = "$Secret{QUEUE_URL}"
    assert resolve_text(text, UseContext(production, product=web)) == "web-queue-" + "w" * 20
    assert resolve_text(text, UseContext(production, product=batch)) == "batch-queue-" + "b" * 20
    with pytest.raises(ResolveError) as raised:
        resolve_text(text, UseContext(production))
    assert [p.reason for p in raised.value.problems] == ["not in scope: no product or app given"]


# --- when no token of the key is usable: the most useful reason ------------------------------


def test_the_operator_is_told_where_the_key_is_valid(workspace, production, sandbox):
    TokenFactory(workspace=workspace, key="ONLY_LIVE", value=LIVE, environments=[production])
    code, out, err = command("sandbox", "$Secret{ONLY_LIVE} $Secret{NOBODY}")
    assert (code, out) == (1, "")
    assert err.splitlines()[:2] == [
        "<stdin>:1:1: $Secret{ONLY_LIVE}: not valid in environment sandbox (valid in production)",
        "<stdin>:1:20: $Secret{NOBODY}: unknown token",
    ]
    assert LIVE not in err


def test_a_revoked_token_is_named_in_its_environment_even_beside_a_usable_namesake(stripe):
    live, test = stripe
    live.revoke()
    code, out, err = command("production")
    assert (code, out) == (1, "")
    assert err.splitlines()[0] == "<stdin>:1:9: $Secret{STRIPE_SECRET}: token revoked in production"
    assert LIVE not in err and TEST not in err
    assert command("sandbox")[:2] == (0, f"stripe: {TEST}\n")


def test_an_access_key_learns_nothing_of_other_environments(
    client, workspace, stripe, production, sandbox
):
    live, _ = stripe
    TokenFactory(workspace=workspace, key="ONLY_LIVE", value=LIVE, environments=[production])
    live.revoke()
    _, live_key = make_access_key(workspace, name="prod", environment=production)
    _, test_key = make_access_key(workspace, name="sandbox", environment=sandbox)
    template = "$Secret{STRIPE_SECRET}\n$Secret{ONLY_LIVE}\n$Secret{NOBODY}\n"

    def reasons(key: str) -> dict:
        response = post_resolve(client, key, template)
        assert response.status_code == 422
        assert LIVE not in response.text and TEST not in response.text
        return {entry["key"]: entry["reason"] for entry in response.json()["references"]}

    # Production's own token is revoked: it may know that, not that Sandbox has one.
    assert reasons(live_key) == {
        "STRIPE_SECRET": "token revoked",
        "ONLY_LIVE": None,
        "NOBODY": NOT_AVAILABLE,
    }
    # Sandbox: a key valid only elsewhere reads exactly as a key no token has.
    assert reasons(test_key) == {
        "STRIPE_SECRET": None,
        "ONLY_LIVE": NOT_AVAILABLE,
        "NOBODY": NOT_AVAILABLE,
    }
    check = check_text(template, UseContext(sandbox))  # a context's report, by default
    assert [s.reason for s in check.references] == [None, NOT_AVAILABLE, NOT_AVAILABLE]


def test_two_usable_tokens_of_one_key_resolve_nothing(workspace, stripe, production):
    """The overlap rule forbids it; data that broke it anyway must fail closed, not pick one."""
    _, test = stripe
    test.environments.through.objects.create(token=test, environment=production)
    with pytest.raises(ResolveError) as raised:
        resolve_text(TEMPLATE, UseContext(production))
    (problem,) = raised.value.problems
    assert problem.reason == "2 tokens with this key are valid here; nothing was resolved"
    assert LIVE not in str(raised.value) and TEST not in str(raised.value)
    assert not Token.objects.filter(last_used_at__isnull=False).exists()
    assert not AuditEvent.objects.filter(action=AuditAction.RESOLVED).exists()


# --- the cost: constant in references and in tokens sharing a key ----------------------------


def shared_keys(workspace, environments, keys: int) -> str:
    """`keys` keys, each with one token per environment; a template referencing each twice."""
    for n in range(keys):
        for environment in environments:
            value = f"{environment.slug}-{n}-" + "v" * 16
            TokenFactory(workspace=workspace, key=f"K{n}", value=value, environments=[environment])
    return "".join(f"a: $Secret{{K{n}}} b: $Secret{{K{n}}}\n" for n in range(keys))


def queries(work) -> int:
    with CaptureQueriesContext(connection) as captured:
        work()
    return len(captured)


@pytest.mark.parametrize("audience", list(Audience))
def test_queries_do_not_grow_with_references_or_tokens_sharing_a_key(
    workspace, production, sandbox, audience
):
    small = shared_keys(workspace, [production, sandbox], 1).replace("K0", "S0")
    Token.objects.filter(key="K0").update(key="S0")
    extra = [EnvironmentFactory(workspace=workspace, slug=f"region-{n}") for n in range(3)]
    large = shared_keys(workspace, [production, sandbox, *extra], 40)
    context = UseContext(production)

    def resolve(text: str):
        return lambda: resolve_text(text, context, audience=audience)

    assert queries(resolve(small)) == queries(resolve(large))
    assert resolve_text(large, context).count("production-") == 80

    # Failing: every key is revoked in production (the others' tokens stay valid elsewhere).
    for token in Token.objects.filter(environments=production):
        token.revoke()

    def fail(text: str):
        def work():
            with pytest.raises(ResolveError):
                resolve_text(text, context, audience=audience)

        return work

    assert queries(fail(small)) == queries(fail(large))
    checks = [queries(lambda text=text: check_text(text, context)) for text in (small, large)]
    assert checks[0] == checks[1]


def test_the_api_costs_the_same_queries_for_one_key_or_forty_shared_ones(
    client, workspace, production, sandbox
):
    small = shared_keys(workspace, [production], 1).replace("K0", "S0")
    Token.objects.filter(key="K0").update(key="S0")
    extra = [EnvironmentFactory(workspace=workspace, slug=f"region-{n}") for n in range(3)]
    large = shared_keys(workspace, [production, sandbox, *extra], 40)
    _, key = make_access_key(workspace, name="prod", environment=production)
    post_resolve(client, key, small)  # warm-up: the rate-limit window exists
    counts = []
    for text in (small, large):
        with CaptureQueriesContext(connection) as captured:
            response = post_resolve(client, key, text)
        assert response.status_code == 200 and b"sandbox-" not in response.content
        counts.append(len(captured))
    for query in ("?keys=S0", ""):  # one key, then every usable one (41)
        with CaptureQueriesContext(connection) as captured:
            response = get_values(client, key, query)
        assert response.status_code == 200 and "sandbox-" not in response.text
        counts.append(len(captured))
    assert counts[0] == counts[1] and counts[2] == counts[3]


def test_the_all_environments_check_follows_each_environments_own_token(stripe, workspace):
    live, _ = stripe
    live.revoke()
    EnvironmentFactory(workspace=workspace, name="Staging", slug="staging")
    code, out, err = command("", TEMPLATE, "--check", "--all-environments")
    assert code == 1
    assert out.splitlines() == [
        "production: <stdin>:1:9: $Secret{STRIPE_SECRET}: token revoked in production",
        "production: 1 distinct reference (1 occurrence): 1 cannot be resolved.",
        "sandbox: 1 distinct reference (1 occurrence): all resolve.",
        "staging: <stdin>:1:9: $Secret{STRIPE_SECRET}: not valid in environment staging "
        "(valid in sandbox; revoked in production)",
        "staging: 1 distinct reference (1 occurrence): 1 cannot be resolved.",
    ]
    assert LIVE not in out + err and TEST not in out + err
