"""factory-boy factories for every model."""

from __future__ import annotations

import datetime as dt
import uuid

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from keys import crypto
from keys.models import WorkspaceKey
from tokens.models import Token, TokenType
from workspaces.models import App, Environment, Membership, Product, Role, Workspace

DEFAULT_PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", DEFAULT_PASSWORD)

    @factory.post_generation
    def saved(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class WorkspaceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Workspace

    name = factory.Sequence(lambda n: f"Workspace {n}")
    slug = factory.Sequence(lambda n: f"workspace-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    workspace = factory.SubFactory(WorkspaceFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.OWNER


class EnvironmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Environment

    workspace = factory.SubFactory(WorkspaceFactory)
    name = factory.Sequence(lambda n: f"Environment {n}")
    slug = factory.Sequence(lambda n: f"environment-{n}")


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    workspace = factory.SubFactory(WorkspaceFactory)
    name = factory.Sequence(lambda n: f"Product {n}")
    slug = factory.Sequence(lambda n: f"product-{n}")


class AppFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = App

    workspace = factory.SubFactory(WorkspaceFactory)
    name = factory.Sequence(lambda n: f"App {n}")
    slug = factory.Sequence(lambda n: f"app-{n}")


class TokenFactory(factory.django.DjangoModelFactory):
    """Creates through Token.objects.create_token, so the value is really encrypted.

    Pass `value=...` to choose it; environments default to all of the workspace's.
    """

    class Meta:
        model = Token

    workspace = factory.SubFactory(WorkspaceFactory)
    key = factory.Sequence(lambda n: f"TOKEN_{n}")
    value = factory.Sequence(lambda n: f"value-{n}-{'s' * 20}")
    type = TokenType.API_KEY
    description = ""

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        if "environments" not in kwargs:
            kwargs["environments"] = list(kwargs["workspace"].environments.all())
        return model_class.objects.create_token(**kwargs)


class AuditEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AuditEvent

    workspace = factory.SubFactory(WorkspaceFactory)
    action = AuditAction.CREATED
    actor_name = "someone"
    token_key = "SOME_KEY"


def token_form_data(workspace, **overrides) -> dict:
    """A submission of the Create Token form (every environment of the workspace); valid once
    `value` is given."""
    values = {
        "key": "PAYMENT_API_KEY",
        "value": "",
        "description": "Card processing",
        "type": TokenType.API_KEY,
        "expiry_date": "",
        "period": "",
        "period_custom": "",
        "environments": [env.pk for env in workspace.environments.all()],
    }
    values.update(overrides)
    return values


def bulk_tokens(workspace, count: int) -> list[Token]:
    """`count` tokens with real ciphertext in a few queries (TokenFactory makes one at a time).

    Keys SERVICE_00000_API_KEY..., descriptions "Credential number N for the bench", all four
    types; every third token has a 90-day period and its expiry somewhere in the next 400
    days, every other one was used in the last `count` minutes; each is in one environment,
    every third has one of 4 new products and every fourth one of 6 new apps. Used by the
    query-count tests and by bench/tokens_page.py.
    """
    products = [ProductFactory(workspace=workspace) for _ in range(4)]
    apps = [AppFactory(workspace=workspace) for _ in range(6)]
    environments = list(workspace.environments.all())
    dek = WorkspaceKey.dek_for(workspace)
    now = timezone.now()
    tokens = []
    for n in range(count):
        token = Token(
            workspace=workspace,
            key=f"SERVICE_{n:05d}_API_KEY",
            type=TokenType.values[n % len(TokenType.values)],
            description=f"Credential number {n} for the bench",
            period_days=90 if n % 3 == 0 else None,
            expires_at=now + dt.timedelta(days=n % 400) if n % 3 == 0 else None,
            last_used_at=now - dt.timedelta(minutes=n) if n % 2 else None,
            value_hint=f"{n % 10000:04d}",
        )
        token.ciphertext = crypto.encrypt(
            dek, f"bench-value-{n}", aad=crypto.value_aad(workspace.pk, token.pk, 0)
        )
        tokens.append(token)
    Token.objects.bulk_create(tokens, batch_size=2000)
    links = (
        (Token.environments.through, "environment_id", environments, 1),
        (Token.products.through, "product_id", products, 3),
        (Token.apps.through, "app_id", apps, 4),
    )
    for through, column, objects, every in links:
        through.objects.bulk_create(
            [
                through(token_id=token.pk, **{column: objects[n % len(objects)].pk})
                for n, token in enumerate(tokens)
                if n % every == 0
            ],
            batch_size=5000,
        )
    return tokens


def make_access_key(workspace, *, name: str = "ci-deploy", environment=None, **options):
    """(AccessKey, the key itself) through AccessKey.objects.create_key; the environment
    defaults to the workspace's production."""
    from access.models import AccessKey

    if environment is None:
        environment = workspace.environments.get(slug="production")
    return AccessKey.objects.create_key(
        workspace=workspace, name=name, environment=environment, **options
    )


def make_webhook(
    workspace, *, url: str = "https://hooks.example.com/coffer", events=None, **fields
):
    """(Webhook, its signing secret), saved as the Add webhook form saves it, without the form's
    DNS check (tests choose their own addresses)."""
    import secrets

    from notifications.models import SECRET_PREFIX, EventType, Webhook

    webhook = Webhook(
        workspace=workspace,
        url=url,
        events=[str(e) for e in (events if events is not None else EventType.values)],
        **fields,
    )
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    webhook.set_secret(secret)
    webhook.save(force_insert=True)
    return webhook, secret


def make_delivery(webhook, *, event_type: str = "token.revoked", body: str = "{}", **fields):
    from notifications.models import WebhookDelivery

    return WebhookDelivery.objects.create(
        webhook=webhook, event_id=uuid.uuid4(), event_type=event_type, body=body, **fields
    )


def make_workload_identity(
    workspace, *, issuer: str, name: str = "gh-deploy", environment=None, conditions=None, **options
):
    """A WorkloadIdentity through create_identity: GitHub Actions' deploy job of acme/app (on
    main) by default, bound to the workspace's production."""
    from identities.models import WorkloadIdentity
    from tests.oidc_issuer import AUDIENCE

    if environment is None:
        environment = workspace.environments.get(slug="production")
    if conditions is None:
        conditions = [
            {"claim": "repository", "pattern": "acme/app"},
            {"claim": "ref", "pattern": "refs/heads/main"},
        ]
    options.setdefault("audience", AUDIENCE)
    return WorkloadIdentity.objects.create_identity(
        workspace=workspace,
        name=name,
        issuer=issuer,
        conditions=conditions,
        environment=environment,
        **options,
    )
