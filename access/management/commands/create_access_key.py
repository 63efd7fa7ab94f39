"""`manage.py create_access_key`: make an access key for the HTTP API and print it, once.

exit status: 0 made (the key alone on the last line of stdout); 2 an unknown workspace,
environment, product or app, or an invalid name, expiry or network (the message says which).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandParser

from access.models import DEFAULT_EXPIRY_DAYS, AccessKey
from lib.commands import usage_error
from tokens.cli import use_context

HELP = """\
Make an access key for the HTTP API (/api/v1/), bound to one environment and optionally one
product and/or one app of a workspace: it resolves there and nowhere else. The key is printed
alone on the last line of stdout, once; only its hash is stored.
"""


def parse_expiry(text: str) -> int | dt.date | None:
    """DAYS, a YYYY-MM-DD date, or "never"."""
    text = text.strip().lower()
    if text == "never":
        return None
    if text.isdigit():
        return int(text)
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise usage_error(
            f'--expires-in "{text}" is not a number of days, a YYYY-MM-DD date or "never".'
        ) from None


class Command(BaseCommand):
    help = HELP

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workspace", required=True, metavar="SLUG")
        parser.add_argument("--environment", required=True, metavar="SLUG")
        parser.add_argument("--product", metavar="SLUG", help="Bind the key to this product.")
        parser.add_argument("--app", metavar="SLUG", help="Bind the key to this app.")
        parser.add_argument("--name", required=True, help="Unique in the workspace.")
        parser.add_argument(
            "--expires-in",
            default=str(DEFAULT_EXPIRY_DAYS),
            metavar="DAYS|DATE|never",
            help=f"Days from now (default {DEFAULT_EXPIRY_DAYS}), a YYYY-MM-DD date (invalid "
            "from 00:00 UTC that day) or never.",
        )
        parser.add_argument(
            "--allow",
            action="extend",
            nargs="+",
            default=[],
            metavar="CIDR",
            help="Only from these IPv4/IPv6 addresses or networks (default: anywhere).",
        )
        parser.add_argument("--description", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        context = use_context(
            options["workspace"], options["environment"], options["product"], options["app"]
        )
        workspace = context.environment.workspace
        try:
            key, secret = AccessKey.objects.create_key(
                workspace=workspace,
                name=options["name"],
                expires=parse_expiry(options["expires_in"]),
                allowed_networks=options["allow"],
                description=options["description"],
                environment=context.environment,
                product=context.product,
                app=context.app,
            )
        except ValidationError as error:
            messages = [message for messages in error.message_dict.values() for message in messages]
            raise usage_error(" ".join(messages)) from None
        expires = key.expires_at.strftime("%Y-%m-%d %H:%M UTC") if key.expires_at else "never"
        scope = [f"environment {key.environment.slug}"]
        scope += [f"product {key.product.slug}"] if key.product else []
        scope += [f"app {key.app.slug}"] if key.app else []
        self.stdout.write(
            f"Access key “{key.name}” ({key.identifier}…) in workspace {workspace.slug}"
        )
        self.stdout.write(f"Resolves in: {', '.join(scope)}")
        self.stdout.write(f"Expires: {expires}")
        self.stdout.write(f"Allowed from: {', '.join(key.allowed_networks) or 'anywhere'}")
        self.stdout.write("The key is shown this once; store it as a secret now:")
        self.stdout.write(secret, style_func=str)
