"""Demo data for a first look: user `demo`, owner of workspace Acme with its catalog."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from tokens.models import Token, TokenType
from workspaces.models import (
    DEFAULT_ENVIRONMENTS,
    App,
    Environment,
    Membership,
    Product,
    Role,
    Workspace,
)

PRODUCTS = [("Payments", "payments"), ("Storefront", "storefront")]
APPS = [("Checkout", "checkout"), ("Mobile", "mobile"), ("Backoffice", "backoffice")]
# Sample tokens (random values) so the Tokens page has something to show on a first look:
# (key, type, description, products, apps, environments, period_days). Kept as a table, one token
# to two lines (`fmt: skip`): ruff would spread each over nine.
DEMO_TOKENS = [
    ("PAYMENT_API_KEY", TokenType.API_KEY, "Card processing gateway", ["payments"], [],
     ["production"], 90),
    # One key, a value per environment: the live key in Production, the test key in Sandbox;
    # a configuration says $Secret{STRIPE_SECRET} in both.
    ("STRIPE_SECRET", TokenType.API_KEY, "Stripe secret key for checkout (live mode)", [],
     ["checkout"], ["production"], None),
    ("STRIPE_SECRET", TokenType.API_KEY, "Stripe secret key for checkout (test mode)", [],
     ["checkout"], ["sandbox"], None),
    ("INTERNAL_SERVICE_TOKEN", TokenType.BEARER_TOKEN, "Storefront to backoffice calls", [], [],
     ["production", "sandbox"], None),
    ("GITHUB_OAUTH_TOKEN", TokenType.OAUTH_TOKEN, "Release automation", ["storefront"],
     ["mobile"], ["sandbox"], 30),
]  # fmt: skip


class Command(BaseCommand):
    help = (
        "Create demo data (idempotent): user 'demo', owner of workspace Acme (slug acme) with "
        "environments Production and Sandbox, products Payments and Storefront, apps Checkout, "
        "Mobile and Backoffice, and a few sample tokens while it has none. Refuses to run with "
        "DEBUG off. Exit 1 on error."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--password", help="Password for 'demo' (default: a generated one).")

    def handle(self, *args, password: str | None = None, **options) -> None:
        if not settings.DEBUG:
            raise CommandError("seed_demo only runs with COFFER_DEBUG=1 (it makes a known user).")
        User = get_user_model()
        with transaction.atomic():
            user, created = User.objects.get_or_create(
                username="demo", defaults={"email": "demo@example.com"}
            )
            if created or password:
                password = password or secrets.token_urlsafe(12)
                user.set_password(password)
                user.save()
            workspace = Workspace.objects.filter(slug="acme").first() or Workspace.objects.create(
                name="Acme", slug="acme"
            )
            Membership.objects.update_or_create(
                workspace=workspace, user=user, defaults={"role": Role.OWNER}
            )
            catalog = ((Environment, DEFAULT_ENVIRONMENTS), (Product, PRODUCTS), (App, APPS))
            for model, items in catalog:
                for name, slug in items:
                    model.objects.get_or_create(
                        workspace=workspace, slug=slug, defaults={"name": name}
                    )
            if not Token.objects.for_workspace(workspace).exists():
                self._demo_tokens(workspace, user)
        self.stdout.write(self.style.SUCCESS("Demo data ready: workspace Acme (acme)."))
        if password:
            self.stdout.write(f"Sign in at /accounts/login/ as demo / {password}")
        else:
            self.stdout.write(
                "User 'demo' already existed; its password is unchanged "
                "(pass --password to set one)."
            )

    def _demo_tokens(self, workspace: Workspace, user) -> None:
        """A few sample tokens with random values, made only while the workspace has none."""
        for key, kind, description, products, apps, environments, period in DEMO_TOKENS:
            Token.objects.create_token(
                workspace=workspace,
                key=key,
                value=secrets.token_urlsafe(32),
                by=user,
                type=kind,
                description=description,
                period_days=period,
                products=workspace.products.filter(slug__in=products),
                apps=workspace.apps.filter(slug__in=apps),
                environments=workspace.environments.filter(slug__in=environments),
            )
