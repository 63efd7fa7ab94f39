"""`manage.py seed_demo`: the demo workspace a newcomer signs into."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from workspaces.models import App, Environment, Membership, Product, Role, Workspace

pytestmark = pytest.mark.django_db


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def everything() -> dict:
    """Every row the command may create, as plain values."""
    return {
        "users": list(get_user_model().objects.values_list("username", "email")),
        "workspaces": list(Workspace.objects.values_list("name", "slug")),
        "memberships": list(
            Membership.objects.values_list("user__username", "workspace__slug", "role")
        ),
        **{
            model.__name__: sorted(model.objects.values_list("workspace__slug", "name", "slug"))
            for model in (Environment, Product, App)
        },
    }


def demo_password_is(password: str) -> bool:
    return get_user_model().objects.get(username="demo").check_password(password)


@pytest.fixture
def debug(settings):
    settings.DEBUG = True


def test_creates_exactly_the_demo_objects(debug):
    seed("--password", "pw-for-the-demo")

    assert everything() == {
        "users": [("demo", "demo@example.com")],
        "workspaces": [("Acme", "acme")],
        "memberships": [("demo", "acme", Role.OWNER)],
        "Environment": [("acme", "Production", "production"), ("acme", "Sandbox", "sandbox")],
        "Product": [("acme", "Payments", "payments"), ("acme", "Storefront", "storefront")],
        "App": [
            ("acme", "Backoffice", "backoffice"),
            ("acme", "Checkout", "checkout"),
            ("acme", "Mobile", "mobile"),
        ],
    }


def test_running_twice_gives_the_same_objects(debug):
    seed("--password", "pw-for-the-demo")
    first = everything()
    ids = sorted(Product.objects.values_list("pk", flat=True))

    seed("--password", "pw-for-the-demo")

    assert everything() == first
    assert sorted(Product.objects.values_list("pk", flat=True)) == ids


def test_password_option_sets_the_demo_password(debug):
    out = seed("--password", "first-password")
    seed("--password", "second-password")

    assert "demo / first-password" in out
    assert demo_password_is("second-password")
    assert not demo_password_is("first-password")


def test_without_a_password_a_generated_one_is_printed_and_works(debug):
    out = seed()

    password = out.rsplit("demo / ", 1)[1].strip()
    assert len(password) >= 12
    assert demo_password_is(password)


def test_rerun_without_a_password_keeps_the_existing_one(debug):
    seed("--password", "kept-password")

    out = seed()

    assert "password is unchanged" in out
    assert demo_password_is("kept-password")


def test_rerun_restores_missing_pieces(debug):
    seed("--password", "pw-for-the-demo")
    expected = everything()
    Product.objects.filter(slug="payments").delete()
    Environment.objects.filter(slug="sandbox").delete()
    Membership.objects.update(role=Role.VIEWER)

    seed()

    assert everything() == expected


def test_refuses_to_run_with_debug_off(settings):
    settings.DEBUG = False

    with pytest.raises(CommandError, match="COFFER_DEBUG=1"):
        seed("--password", "pw-for-the-demo")

    assert not get_user_model().objects.filter(username="demo").exists()
    assert not Workspace.objects.exists()


def test_sample_tokens_are_made_once_and_are_usable(debug):
    from tokens.models import Token, UseContext

    output = seed("--password", "pw-one")
    tokens = Token.objects.filter(workspace__slug="acme").with_relations()
    assert sorted(t.key for t in tokens) == [
        "GITHUB_OAUTH_TOKEN",
        "INTERNAL_SERVICE_TOKEN",
        "PAYMENT_API_KEY",
        "STRIPE_SECRET",
        "STRIPE_SECRET",
    ]
    # One key, a token per environment, with different values.
    sandbox = Environment.objects.get(workspace__slug="acme", slug="sandbox")
    stripe = {t.environments.get(): t for t in tokens.filter(key="STRIPE_SECRET")}
    assert set(stripe) == {
        Environment.objects.get(workspace__slug="acme", slug="production"),
        sandbox,
    }
    assert len({token.reveal() for token in stripe.values()}) == 2
    payment = tokens.get(key="PAYMENT_API_KEY")
    production = Environment.objects.get(workspace__slug="acme", slug="production")
    payments = Product.objects.get(workspace__slug="acme", slug="payments")
    assert payment.is_usable_by(UseContext(environment=production, product=payments))
    assert payment.reveal() not in output  # values are random and never printed

    payment.delete_token()
    seed()
    assert Token.objects.filter(workspace__slug="acme").count() == 4  # not put back
