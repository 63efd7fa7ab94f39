"""One Token Key, several tokens: allowed while no use context (environment, product, app) could
use two unrevoked tokens of the key. The rule (`Token.overlap_errors`, `TokenQuerySet.overlapping`)
through the model methods every way of changing a token calls."""

from __future__ import annotations

import itertools

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from audit.models import AuditEvent
from tests.factories import AppFactory, ProductFactory, TokenFactory, WorkspaceFactory
from tokens import lifecycle
from tokens.models import Scope, Token, UseContext, shared_scope


def env(workspace, slug: str):
    return workspace.environments.get(slug=slug)


def make(workspace, key="STRIPE_SECRET", envs=("production",), **kwargs) -> Token:
    environments = [env(workspace, slug) for slug in envs]
    return TokenFactory(workspace=workspace, key=key, environments=environments, **kwargs)


def refusal(excinfo) -> list[str]:
    return excinfo.value.message_dict["environments"]


def test_a_key_may_have_a_production_and_a_sandbox_token(workspace):
    live = make(workspace, envs=["production"], value="sk_live_0000000000000000")
    test = make(workspace, envs=["sandbox"], value="sk_test_0000000000000000")
    assert Token.objects.filter(key="STRIPE_SECRET").count() == 2
    assert live.reveal() == "sk_live_0000000000000000"
    assert test.reveal() == "sk_test_0000000000000000"
    # each context has exactly one to use
    for token, slug in ((live, "production"), (test, "sandbox")):
        usable = Token.objects.filter(key="STRIPE_SECRET").usable_in(
            UseContext(environment=env(workspace, slug))
        )
        assert list(usable) == [token]


def test_a_second_token_in_the_same_environment_is_refused_and_nothing_changes(workspace):
    make(workspace, envs=["production"])
    events = AuditEvent.objects.count()
    with pytest.raises(ValidationError) as excinfo:
        make(workspace, envs=["production", "sandbox"])
    assert refusal(excinfo) == [
        "STRIPE_SECRET is already valid in Production (every product and app); choose other "
        "environments or narrow the scope."
    ]
    assert Token.objects.count() == 1
    assert AuditEvent.objects.count() == events


def test_disjoint_product_scopes_may_share_an_environment(workspace):
    checkout, billing = ProductFactory(workspace=workspace), ProductFactory(workspace=workspace)
    make(workspace, products=[checkout])
    make(workspace, products=[billing])
    assert Token.objects.count() == 2


def test_disjoint_app_scopes_may_share_an_environment(workspace):
    web, mobile = AppFactory(workspace=workspace), AppFactory(workspace=workspace)
    make(workspace, apps=[web])
    make(workspace, apps=[mobile])
    assert Token.objects.count() == 2


def test_an_unscoped_token_meets_every_scope(workspace):
    checkout = ProductFactory(workspace=workspace, name="Checkout")
    make(workspace, products=[checkout])
    with pytest.raises(ValidationError) as excinfo:
        make(workspace)
    assert refusal(excinfo) == [
        "STRIPE_SECRET is already valid in Production (product Checkout); choose other "
        "environments or narrow the scope."
    ]


def test_a_product_scope_meets_an_app_scope_in_the_context_of_both(workspace):
    """A context may give a product and an app: both tokens would be in its scope."""
    checkout = ProductFactory(workspace=workspace, name="Checkout")
    web = AppFactory(workspace=workspace, name="Web")
    make(workspace, products=[checkout])
    with pytest.raises(ValidationError) as excinfo:
        make(workspace, apps=[web])
    assert refusal(excinfo) == [
        "STRIPE_SECRET is already valid in Production (product Checkout with app Web); choose "
        "other environments or narrow the scope."
    ]


def test_shared_products_are_named(workspace):
    a, b, c = (ProductFactory(workspace=workspace, name=name) for name in "ABC")
    make(workspace, products=[a, b])
    with pytest.raises(ValidationError) as excinfo:
        make(workspace, products=[b, c])
    assert "(product B)" in refusal(excinfo)[0]


def test_each_overlapping_token_gets_its_message(workspace):
    make(workspace, envs=["production"])
    make(workspace, envs=["sandbox"])
    with pytest.raises(ValidationError) as excinfo:
        make(workspace, envs=["production", "sandbox"])
    assert sorted(refusal(excinfo)) == [
        "STRIPE_SECRET is already valid in Production (every product and app); choose other "
        "environments or narrow the scope.",
        "STRIPE_SECRET is already valid in Sandbox (every product and app); choose other "
        "environments or narrow the scope.",
    ]


def test_a_revoked_token_does_not_count(workspace):
    make(workspace).revoke()
    make(workspace)
    assert Token.objects.filter(key="STRIPE_SECRET").count() == 2


def test_an_expired_token_still_counts(workspace):
    token = make(workspace)
    Token.objects.filter(pk=token.pk).update(expires_at="2000-01-01T00:00Z")
    with pytest.raises(ValidationError):
        make(workspace)


def test_editing_a_token_into_another_tokens_environment_is_refused(workspace):
    make(workspace, envs=["production"])
    sandbox = make(workspace, envs=["sandbox"], description="test mode")
    with pytest.raises(ValidationError) as excinfo:
        sandbox.update(environments=list(workspace.environments.all()), description="both")
    assert refusal(excinfo)[0].startswith("STRIPE_SECRET is already valid in Production (")
    sandbox.refresh_from_db()
    assert [e.slug for e in sandbox.environments.all()] == ["sandbox"]
    assert sandbox.description == "test mode"


def test_narrowing_the_scope_lets_an_edit_through(workspace):
    checkout, billing = ProductFactory(workspace=workspace), ProductFactory(workspace=workspace)
    make(workspace, products=[checkout])
    other = make(workspace, envs=["sandbox"], products=[billing])
    other.update(environments=[env(workspace, "production")])
    assert other.environments.get().slug == "production"


def test_renaming_into_a_key_valid_elsewhere_is_fine(workspace):
    make(workspace, key="STRIPE_SECRET", envs=["production"])
    test = make(workspace, key="STRIPE_TEST", envs=["sandbox"])
    test.update(key="STRIPE_SECRET")
    assert Token.objects.filter(key="STRIPE_SECRET").count() == 2


def test_editing_a_token_does_not_overlap_with_itself(workspace):
    token = make(workspace, envs=["production", "sandbox"])
    assert token.update(description="still one token") == ["description"]


def test_bulk_change_of_environments_refuses_overlaps_per_token_and_changes_nothing(workspace):
    make(workspace, envs=["production"])
    sandbox = make(workspace, envs=["sandbox"])
    other = make(workspace, key="OTHER", envs=["sandbox"])
    production = [env(workspace, "production")]
    with pytest.raises(ValidationError) as excinfo:
        lifecycle.set_environments_many(workspace, [sandbox.pk, other.pk], production, by=None)
    assert excinfo.value.messages == [
        "STRIPE_SECRET (Sandbox): STRIPE_SECRET is already valid in Production (every product "
        "and app); choose other environments or narrow the scope."
    ]
    assert [e.slug for e in other.environments.all()] == ["sandbox"]
    assert [e.slug for e in sandbox.environments.all()] == ["sandbox"]


def test_bulk_change_refuses_two_selected_tokens_of_one_key_meeting(workspace):
    live = make(workspace, envs=["production"])
    test = make(workspace, envs=["sandbox"])
    everywhere = list(workspace.environments.all())
    with pytest.raises(ValidationError) as excinfo:
        lifecycle.set_environments_many(workspace, [live.pk, test.pk], everywhere, by=None)
    assert len(excinfo.value.messages) == 2
    assert Token.objects.get(pk=live.pk).environments.get().slug == "production"


# --- the rule written in SQL is the rule of in_scope_of -------------------------------------


def test_scopes_meet_exactly_when_some_context_is_in_both(workspace):
    """Every pair of scopes over two products and two apps: `scope_meets` (SQL) and
    `shared_scope` (words) agree with a search through every context by `in_scope_of`."""
    products = [ProductFactory(workspace=workspace) for _ in range(2)]
    apps = [AppFactory(workspace=workspace) for _ in range(2)]

    def subsets(items):
        return [frozenset(c) for n in range(3) for c in itertools.combinations(items, n)]

    scopes = [Scope(p, a) for p in subsets(products) for a in subsets(apps)]
    tokens = {
        scope: make(workspace, key=f"K{i}", products=scope.products, apps=scope.apps)
        for i, scope in enumerate(scopes)
    }
    in_context = {
        (product, app): set(Token.objects.in_scope_of(product=product, app=app))
        for product in [None, *products]
        for app in [None, *apps]
    }
    for mine in scopes:
        by_contexts = {
            scope
            for scope in scopes
            if any({tokens[mine], tokens[scope]} <= in_scope for in_scope in in_context.values())
        }
        by_sql = set(Token.objects.scope_meets(products=list(mine.products), apps=list(mine.apps)))
        assert by_sql == {tokens[scope] for scope in by_contexts}, mine
        assert {s for s in scopes if shared_scope(mine, s) is not None} == by_contexts, mine


@pytest.mark.django_db(transaction=True)
def test_tokens_stored_before_keys_could_be_shared_migrate_unchanged():
    executor = MigrationExecutor(connection)
    before = [("tokens", "0005_history_versions_and_usage")]
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    workspace = WorkspaceFactory(slug="old")  # workspaces/ is not rolled back: today's model
    kept = old.get_model("tokens", "Token").objects.create(
        workspace_id=workspace.pk, key="KEPT_KEY", ciphertext=b"c" * 40, value_version=3
    )
    kept.environments.add(env(workspace, "production").pk)

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    token = Token.objects.get()
    assert (token.pk, token.key, token.value_version, bytes(token.ciphertext)) == (
        kept.pk,
        "KEPT_KEY",
        3,
        b"c" * 40,
    )
    assert [env.slug for env in token.environments.all()] == ["production"]
    with pytest.raises(ValidationError) as excinfo:  # the rule holds for what was migrated
        make(token.workspace, key="KEPT_KEY")
    assert refusal(excinfo)[0].startswith("KEPT_KEY is already valid in Production (")
