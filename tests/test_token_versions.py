"""Token History: every value a token has had is kept as a version (TokenVersion), restorable
and destroyable, bound to its token and version number, within COFFER_TOKEN_VERSIONS."""

from __future__ import annotations

import base64
import datetime as dt
import io
import os

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from keys.crypto import CryptoError
from keys.models import WorkspaceKey
from tests.factories import TokenFactory, UserFactory, WorkspaceFactory
from tokens.models import Token, TokenVersion, UseContext
from tokens.references.resolve import resolve_text

pytestmark = pytest.mark.django_db

FIRST, SECOND, THIRD = (f"{word}-value-{'x' * 16}" for word in ("first", "second", "third"))


@pytest.fixture
def alice():
    return UserFactory(username="alice", password=None)


@pytest.fixture
def edited(workspace, alice):
    """A token set three times: versions 0, 1, 2 (FIRST, SECOND, THIRD)."""
    token = TokenFactory(workspace=workspace, key="API_KEY", value=FIRST, by=alice)
    token.set_value(SECOND, by=alice)
    token.set_value(THIRD, by=alice)
    return token


def resolved(token: Token) -> str:
    production = token.workspace.environments.get(slug="production")
    return resolve_text("$Secret{API_KEY}", UseContext(production), actor="tests")


def test_every_value_set_is_a_version_with_who_when_and_hint(edited, alice):
    versions = list(edited.versions.newest_first())
    assert [v.version for v in versions] == [2, 1, 0]
    assert [v.value_hint for v in versions] == ["xxxx"] * 3
    assert {v.set_by for v in versions} == {alice}
    assert versions[0].set_at == edited.value_set_at
    assert [v.reveal() for v in versions] == [THIRD, SECOND, FIRST]


def test_an_edit_that_keeps_the_value_makes_no_version(edited):
    edited.update(description="only the description")
    assert edited.versions.count() == 3


def test_restore_makes_the_old_value_current_as_a_new_version(edited, alice):
    new = edited.restore_version(1, by=alice)

    assert new == 3 and edited.value_version == 3
    assert edited.reveal() == SECOND
    assert resolved(edited) == SECOND
    restored = edited.versions.get(version=3)
    assert (restored.restored_from, restored.set_by, restored.reveal()) == (1, alice, SECOND)
    assert edited.versions.get(version=2).reveal() == THIRD, "the overwritten value is kept"
    event = AuditEvent.objects.filter(action=AuditAction.VERSION_RESTORED).get()
    assert (event.token, event.actor, event.detail) == (
        edited,
        alice,
        {"restored_version": 1, "new_version": 3},
    )
    assert SECOND not in str(event.detail) and "Version restored" in str(event)


def test_restore_restarts_the_period(workspace):
    token = TokenFactory(workspace=workspace, key="API_KEY", value=FIRST, period_days=30)
    token.set_value(SECOND)
    set_long_ago = timezone.now() - dt.timedelta(days=29)
    Token.objects.filter(pk=token.pk).update(
        value_set_at=set_long_ago, expires_at=set_long_ago + dt.timedelta(days=30)
    )
    token.refresh_from_db()

    token.restore_version(0)

    assert token.expires_at > timezone.now() + dt.timedelta(days=29)


def test_restoring_the_current_destroyed_or_unknown_version_is_refused(edited):
    edited.destroy_version(0)
    for version, message in (
        (2, "Version 3 is already the current value."),
        (0, "Version 1 cannot be restored: it was destroyed or is no longer kept."),
        (9, "Version 10 cannot be restored"),
    ):
        with pytest.raises(ValidationError, match=message):
            edited.restore_version(version)
    edited.refresh_from_db()
    assert (edited.value_version, edited.reveal()) == (2, THIRD)


def test_a_revoked_token_keeps_its_history_but_cannot_restore(edited):
    edited.revoke()
    with pytest.raises(ValidationError, match="revoked"):
        edited.restore_version(0)
    assert edited.versions.count() == 3


def test_destroy_erases_one_old_version_for_good(edited, alice):
    edited.destroy_version(1, by=alice)

    gone = edited.versions.get(version=1)
    assert bytes(gone.ciphertext) == b"" and gone.value_hint == ""
    assert (gone.is_destroyed, gone.destroyed_by) == (True, alice)
    with pytest.raises(CryptoError, match="destroyed"):
        gone.reveal()
    assert edited.versions.get(version=0).reveal() == FIRST, "the others are untouched"
    assert resolved(edited) == THIRD
    event = AuditEvent.objects.filter(action=AuditAction.VERSION_DESTROYED).get()
    assert (event.token, event.detail) == (edited, {"destroyed_version": 1})
    with pytest.raises(ValidationError, match="already destroyed"):
        edited.destroy_version(1)


def test_the_current_version_cannot_be_destroyed(edited):
    with pytest.raises(ValidationError, match="current value and cannot be destroyed"):
        edited.destroy_version(2)
    assert edited.versions.get(version=2).reveal() == THIRD


@override_settings(COFFER_TOKEN_VERSIONS=3)
def test_only_the_last_versions_are_kept(workspace):
    token = TokenFactory(workspace=workspace, key="API_KEY", value="value-0-" + "x" * 16)
    for n in range(1, 6):
        token.set_value(f"value-{n}-" + "x" * 16)

    assert list(token.versions.newest_first().values_list("version", flat=True)) == [5, 4, 3]
    with pytest.raises(ValidationError, match="no longer kept"):
        token.restore_version(2)
    token.restore_version(3)
    assert list(token.versions.newest_first().values_list("version", flat=True)) == [6, 5, 4]
    assert token.reveal() == "value-3-" + "x" * 16


@override_settings(COFFER_TOKEN_VERSIONS=1)
def test_a_limit_of_one_keeps_only_the_current_value(workspace):
    token = TokenFactory(workspace=workspace, key="API_KEY", value=FIRST)
    token.set_value(SECOND)
    assert list(token.versions.values_list("version", flat=True)) == [1]


def test_an_old_versions_ciphertext_moved_to_another_version_does_not_decrypt(edited):
    first = edited.versions.get(version=0)
    TokenVersion.objects.filter(token=edited, version=1).update(ciphertext=first.ciphertext)

    moved = edited.versions.get(version=1)
    with pytest.raises(CryptoError, match="copied from another token, version or workspace"):
        moved.reveal()
    with pytest.raises(CryptoError):
        edited.restore_version(1)
    edited.refresh_from_db()
    assert (edited.value_version, edited.reveal()) == (2, THIRD), "nothing changed"
    assert first.reveal() == FIRST, "control: it is where it is stored that binds it"


def test_an_old_version_moved_to_another_token_does_not_decrypt(workspace, edited):
    other = TokenFactory(workspace=workspace, key="OTHER", value="other-value-" + "y" * 16)
    theirs = edited.versions.get(version=0)
    TokenVersion.objects.filter(token=other, version=0).update(ciphertext=theirs.ciphertext)
    with pytest.raises(CryptoError):
        other.versions.get(version=0).reveal()


def test_deleting_a_token_deletes_every_version(edited):
    edited.delete_token()
    assert not TokenVersion.objects.exists()


def test_deleting_a_workspace_shreds_every_version_with_its_data_key(edited):
    other = TokenFactory(key="ELSEWHERE", value="elsewhere-" + "z" * 16)
    edited.workspace.delete()
    assert not WorkspaceKey.objects.filter(workspace_id=edited.workspace_id).exists()
    assert list(TokenVersion.objects.values_list("token__key", flat=True)) == ["ELSEWHERE"]
    assert other.versions.get().reveal() == "elsewhere-" + "z" * 16


NEW_KEY = "k2:" + base64.b64encode(b"N" * 32).decode()


def test_versions_survive_a_master_key_rotation(edited):
    with override_settings(COFFER_MASTER_KEYS=f"{NEW_KEY},{os.environ['COFFER_MASTER_KEYS']}"):
        call_command("rotate_master_key", stdout=io.StringIO(), stderr=io.StringIO())
    with override_settings(COFFER_MASTER_KEYS=NEW_KEY):  # the old master key is gone
        assert WorkspaceKey.objects.get(workspace=edited.workspace).kek_id == "k2"
        token = Token.objects.get(pk=edited.pk)
        assert [v.reveal() for v in token.versions.newest_first()] == [THIRD, SECOND, FIRST]
        token.restore_version(0)
        assert resolved(token) == FIRST


def test_every_kept_version_decrypts_through_one_path(edited, workspace):
    """What a backup check needs: each sealed version, decrypted with its binding."""
    TokenFactory(workspace=workspace, key="SECOND_TOKEN", value="another-" + "w" * 16)
    edited.destroy_version(0)
    sealed = TokenVersion.objects.sealed().select_related("token__workspace")
    assert sorted(v.reveal() for v in sealed) == sorted([SECOND, THIRD, "another-" + "w" * 16])


def test_a_new_token_starts_its_history_at_version_zero():
    token = TokenFactory(workspace=WorkspaceFactory(slug="fresh"), key="NEW", value=FIRST)
    assert list(token.versions.values_list("version", "restored_from")) == [(0, None)]
