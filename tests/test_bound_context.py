"""The rules an access key and a workload identity share (access/context.py), and the description
rule they share with tokens: the same input is refused with the same message by each, and
nothing is stored."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError

from access.models import AccessKey
from audit.models import AuditEvent
from identities.models import WorkloadIdentity
from tests.factories import make_access_key, make_workload_identity
from tokens.models import Token
from workspaces.models import Environment

pytestmark = pytest.mark.django_db

ISSUER = "https://token.actions.githubusercontent.com"


def make_key(workspace, **options):
    return make_access_key(workspace, **options)[0]


def make_identity(workspace, **options):
    return make_workload_identity(workspace, issuer=ISSUER, **options)


def make_token(workspace, **options):
    environments = list(workspace.environments.all())
    return Token.objects.create_token(
        workspace=workspace, key="API_KEY", value="a-value", environments=environments, **options
    )


MAKERS = [pytest.param(make_key, id="access key"), pytest.param(make_identity, id="identity")]
DESCRIPTIONS = [
    ("x" * 501, "The description has at most 500 characters."),
    ("a\x00b", "The description cannot contain NUL characters."),
    (42, "The description must be text."),
]


@pytest.mark.parametrize("make", MAKERS)
@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({"expires": 0}, "expires_at", "The expiry is 1 to 3650 days."),
        ({"expires": dt.date(2000, 1, 1)}, "expires_at", "The expiry date must be in the future"),
        ({"allowed_networks": ["10.0.0.1/8"]}, "allowed_networks", "did you mean 10.0.0.0/8"),
    ],
)
def test_the_same_input_is_refused_with_the_same_message(workspace, make, options, field, message):
    with pytest.raises(ValidationError) as raised:
        make(workspace, **options)
    assert any(message in text for text in raised.value.message_dict[field])
    assert not AccessKey.objects.exists() and not WorkloadIdentity.objects.exists()
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize(("make", "noun"), [(make_key, "key"), (make_identity, "identity")])
def test_the_context_needs_an_environment_of_this_workspace(workspace, other_workspace, make, noun):
    elsewhere = other_workspace.environments.get(slug="production")
    with pytest.raises(ValidationError) as raised:
        make(workspace, environment=elsewhere)
    assert raised.value.message_dict["environment"] == ["Choose an environment of this workspace."]
    with pytest.raises(ValidationError) as raised:
        make(workspace, environment=Environment(workspace=workspace, name="unsaved"))
    assert raised.value.message_dict["environment"] == [
        f"Choose the environment the {noun} resolves in."
    ]


@pytest.mark.parametrize(
    ("make", "named"), [(make_key, "An access key"), (make_identity, "A workload identity")]
)
def test_a_name_is_unique_in_its_workspace(workspace, other_workspace, make, named):
    make(workspace, name="deploy")
    make(other_workspace, name="deploy")
    with pytest.raises(ValidationError) as raised:
        make(workspace, name="deploy")
    assert raised.value.message_dict["name"] == [
        f"{named} named “deploy” already exists in this workspace."
    ]


@pytest.mark.parametrize("make", [*MAKERS, pytest.param(make_token, id="token")])
@pytest.mark.parametrize(("description", "message"), DESCRIPTIONS)
def test_a_description_is_text_of_at_most_500_characters_without_nul(
    workspace, make, description, message
):
    with pytest.raises(ValidationError) as raised:
        make(workspace, description=description)
    assert raised.value.message_dict["description"] == [message]
    assert not Token.objects.exists() and not AccessKey.objects.exists()
    assert not WorkloadIdentity.objects.exists() and not AuditEvent.objects.exists()
