"""factory-boy factories for every model."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from tokens.models import AuditAction, AuditEvent, Token, TokenType
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


def make_access_key(workspace, *, name: str = "ci-deploy", environment=None, **options):
    """(AccessKey, the key itself) through AccessKey.objects.create_key; the environment
    defaults to the workspace's production."""
    from access.models import AccessKey

    if environment is None:
        environment = workspace.environments.get(slug="production")
    return AccessKey.objects.create_key(
        workspace=workspace, name=name, environment=environment, **options
    )
