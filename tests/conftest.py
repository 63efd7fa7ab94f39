from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory
from workspaces.models import Role


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    """Hashing with the production hasher takes ~0.6 s here; tests sign many users in."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def workspace(db):
    return WorkspaceFactory(name="Acme", slug="acme")


@pytest.fixture
def other_workspace(db):
    return WorkspaceFactory(name="Globex", slug="globex")


def _member_client(workspace, role: Role, username: str) -> Client:
    user = UserFactory(username=username)
    MembershipFactory(workspace=workspace, user=user, role=role)
    client = Client()
    client.force_login(user)
    client.user = user
    return client


@pytest.fixture
def owner_client(workspace) -> Client:
    return _member_client(workspace, Role.OWNER, "olivia")


@pytest.fixture
def editor_client(workspace) -> Client:
    return _member_client(workspace, Role.EDITOR, "eddie")


@pytest.fixture
def viewer_client(workspace) -> Client:
    return _member_client(workspace, Role.VIEWER, "vera")


@pytest.fixture
def outsider_client(other_workspace) -> Client:
    """Signed in, but a member of another workspace only."""
    return _member_client(other_workspace, Role.OWNER, "mallory")
