"""`manage.py create_access_key`: the key alone on the last line, exit 2 naming what is wrong."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from access import keys
from access.models import AccessKey
from audit.models import AuditEvent
from tests.factories import AppFactory, ProductFactory

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("create_access_key", *args, stdout=out)
    return out.getvalue()


def refused(*args: str) -> str:
    with pytest.raises(CommandError) as raised:
        run(*args)
    assert raised.value.returncode == 2
    assert not AccessKey.objects.exists() and not AuditEvent.objects.exists()
    return str(raised.value)


def test_prints_details_then_the_key_alone_on_the_last_line(workspace):
    ProductFactory(workspace=workspace, slug="payments")
    AppFactory(workspace=workspace, slug="checkout")
    output = run(
        "--workspace",
        "acme",
        "--environment",
        "production",
        "--product",
        "payments",
        "--app",
        "checkout",
        "--name",
        "deploy",
        "--expires-in",
        "30",
        "--allow",
        "203.0.113.0/24",
        "2001:db8::/32",
        "--description",
        "CI deploys",
    )
    lines = output.splitlines()
    key = lines[-1]
    assert keys.is_well_formed(key)
    row = AccessKey.objects.authenticate(key)
    assert row.name == "deploy" and row.description == "CI deploys"
    assert (row.environment.slug, row.product.slug, row.app.slug) == (
        "production",
        "payments",
        "checkout",
    )
    assert row.allowed_networks == ["203.0.113.0/24", "2001:db8::/32"]
    assert key not in "\n".join(lines[:-1]), "the key is printed once"
    assert f"{row.identifier}…" in output
    assert "environment production, product payments, app checkout" in output


def test_never_and_a_date_are_expiries(workspace):
    run("--workspace", "acme", "--environment", "sandbox", "--name", "a", "--expires-in", "never")
    assert AccessKey.objects.get(name="a").expires_at is None
    run(
        "--workspace",
        "acme",
        "--environment",
        "sandbox",
        "--name",
        "b",
        "--expires-in",
        "2099-01-31",
    )
    assert AccessKey.objects.get(name="b").expires_at.date().isoformat() == "2099-01-31"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workspace", "nope", "--environment", "production"], 'Workspace "nope" not found'),
        (["--workspace", "acme", "--environment", "staging"], 'Environment "staging" not found'),
        (
            ["--workspace", "acme", "--environment", "production", "--product", "x"],
            'Product "x" not found in workspace acme (its products: none)',
        ),
        (["--workspace", "acme", "--environment", "production", "--app", "x"], 'App "x"'),
        (
            ["--workspace", "acme", "--environment", "production", "--allow", "10.0.0.300"],
            "“10.0.0.300” is not an IPv4 or IPv6",
        ),
        (
            ["--workspace", "acme", "--environment", "production", "--expires-in", "soon"],
            '"soon" is not a number of days',
        ),
        (
            ["--workspace", "acme", "--environment", "production", "--expires-in", "0"],
            "1 to 3650 days",
        ),
    ],
)
def test_bad_arguments_exit_2_naming_the_problem(workspace, args, message):
    assert message in refused(*args, "--name", "deploy")


def test_a_duplicate_name_exits_2(workspace):
    run("--workspace", "acme", "--environment", "production", "--name", "deploy")
    with pytest.raises(CommandError, match="named “deploy” already exists") as raised:
        run("--workspace", "acme", "--environment", "production", "--name", "deploy")
    assert raised.value.returncode == 2
    assert AccessKey.objects.count() == 1
