from __future__ import annotations

import time

import pytest
from django.test import Client

from tests.factories import MembershipFactory, TokenFactory, UserFactory, WorkspaceFactory
from tests.helpers import SECRET
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


@pytest.fixture
def role_client(request):
    """`role_client[role]`: the signed-in client of that role (made only when asked for)."""

    class Clients:
        def __getitem__(self, role: str) -> Client:
            return request.getfixturevalue(f"{role}_client")

    return Clients()


@pytest.fixture
def token(workspace):
    """Token STRIPE_SECRET of Acme, valued SECRET, in every environment."""
    return TokenFactory(workspace=workspace, key="STRIPE_SECRET", value=SECRET)


@pytest.fixture
def upload_peak(monkeypatch) -> dict:
    """The most bytes the upload handler ever held in memory, and whether it saw the file."""
    from tokens.uploads import CappedUploadHandler

    peak = {"kept": 0, "chunks": 0}
    receive = CappedUploadHandler.receive_data_chunk

    def spy(handler, raw_data, start):
        result = receive(handler, raw_data, start)
        peak["kept"] = max(peak["kept"], handler.kept)
        peak["chunks"] += 1
        return result

    monkeypatch.setattr(CappedUploadHandler, "receive_data_chunk", spy)
    return peak


@pytest.fixture
def oidc_issuer(tmp_path, settings):
    """A running test OIDC issuer (tests/oidc_issuer.py) Coffer may fetch keys from: its
    loopback address and self-signed certificate allowed, as for the webhook receiver."""
    from tests.oidc_issuer import Issuer

    with Issuer(tmp_path) as running:
        settings.COFFER_WEBHOOK_ALLOW_PRIVATE = True
        settings.COFFER_WEBHOOK_CA_FILE = str(running.certificate)
        yield running


@pytest.fixture
def sso_provider(tmp_path, settings, monkeypatch):
    """A running test OpenID Connect provider (tests/oidc_provider.py) configured as Coffer's
    single sign-on, its self-signed certificate trusted by allauth's HTTP client."""
    from tests.oidc_provider import Provider

    with Provider(tmp_path) as running:
        for name, value in running.settings().items():
            setattr(settings, name, value)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(running.certificate))
        yield running


@pytest.fixture
def reads_only(settings, monkeypatch):
    """The production roll-up interval, a roll-up just done: the reads in the test append their
    usage records and fold nothing, so a query count is the read's own (the roll-up's are
    counted in tests/test_usage_rollup.py)."""
    from tokens import usage

    settings.COFFER_USAGE_ROLLUP_SECONDS = 3600
    monkeypatch.setattr(usage, "_last_roll_up", time.monotonic())
