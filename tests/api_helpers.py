"""Shared set-up for the API tests: a workspace with tokens, keys, and request helpers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.db import DatabaseError, connection
from django.test import Client

from api import ratelimit
from audit.models import AuditEvent
from tests.factories import AppFactory, ProductFactory, TokenFactory, make_access_key
from workspaces.models import Workspace

RESOLVE = "/api/v1/resolve"
VALUES = "/api/v1/values"


@contextmanager
def audit_insert_fails(message: str = "disk full") -> Iterator[None]:
    """The database refuses every INSERT into the audit trail (however it is written), as a
    full disk or a lost table would."""
    table = AuditEvent._meta.db_table

    def refuse(execute, sql, params, many, context):
        if "INSERT INTO" in sql.upper() and table in sql:
            raise DatabaseError(message)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(refuse):
        yield


def fresh_rate_limit_window(margin: float) -> None:
    """Wait for the next rate-limit window when this one ends within `margin` seconds: counts
    made across a window's end start again, and a test counting on a 429 would see a 200."""
    left = ratelimit.WINDOW_SECONDS - time.time() % ratelimit.WINDOW_SECONDS
    if left < margin:
        time.sleep(left + 0.05)


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def post_resolve(client: Client, key: str | None, body: bytes | str, query: str = "", **extra):
    data = body.encode() if isinstance(body, str) else body
    headers = bearer(key) if key else {}
    return client.generic(
        "POST", RESOLVE + query, data, content_type="text/plain", headers=headers, **extra
    )


def get_values(client: Client, key: str | None, query: str = "", **extra):
    return client.get(VALUES + query, headers=bearer(key) if key else {}, **extra)


@dataclass
class Setup:
    workspace: Workspace
    key: str  # bound to production, product payments, app checkout
    row: object
    values: dict[str, str]


def api_setup(workspace: Workspace) -> Setup:
    """Tokens DB_URL (everywhere), STRIPE_KEY (payments only), MOBILE_KEY (the mobile app
    only), SANDBOX_ONLY (sandbox only); a key for production / payments / checkout."""
    payments = ProductFactory(workspace=workspace, name="Payments", slug="payments")
    checkout = AppFactory(workspace=workspace, name="Checkout", slug="checkout")
    mobile = AppFactory(workspace=workspace, name="Mobile", slug="mobile")
    production = workspace.environments.get(slug="production")
    sandbox = workspace.environments.get(slug="sandbox")
    values = {
        "DB_URL": "postgres://app:p@ss$word\\with'quotes\"@db/app",
        "STRIPE_KEY": "sk_live_" + "x" * 24,
        "MOBILE_KEY": "mobile-secret-value-1234",
        "SANDBOX_ONLY": "sandbox-secret-value-1234",
    }
    TokenFactory(workspace=workspace, key="DB_URL", value=values["DB_URL"])
    TokenFactory(
        workspace=workspace, key="STRIPE_KEY", value=values["STRIPE_KEY"], products=[payments]
    )
    TokenFactory(workspace=workspace, key="MOBILE_KEY", value=values["MOBILE_KEY"], apps=[mobile])
    TokenFactory(
        workspace=workspace,
        key="SANDBOX_ONLY",
        value=values["SANDBOX_ONLY"],
        environments=[sandbox],
    )
    row, key = make_access_key(
        workspace, name="deploy", environment=production, product=payments, app=checkout
    )
    return Setup(workspace, key, row, values)
