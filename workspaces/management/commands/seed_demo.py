"""Demo data for a first look: user `demo`, owner of workspace Acme with its catalog."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

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


class Command(BaseCommand):
    help = (
        "Create demo data (idempotent): user 'demo', owner of workspace Acme (slug acme) with "
        "environments Production and Sandbox, products Payments and Storefront, apps Checkout, "
        "Mobile and Backoffice. Refuses to run with DEBUG off. Exit 1 on error."
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
        self.stdout.write(self.style.SUCCESS("Demo data ready: workspace Acme (acme)."))
        if password:
            self.stdout.write(
                f"Sign in at http://127.0.0.1:8000/accounts/login/ as demo / {password}"
            )
        else:
            self.stdout.write(
                "User 'demo' already existed; its password is unchanged "
                "(pass --password to set one)."
            )
