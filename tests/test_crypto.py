"""Envelope encryption (keys/crypto.py): the key ring, data keys, values and their errors."""

from __future__ import annotations

import base64
import logging
import os
import stat

import pytest
from django.test import override_settings
from hypothesis import given
from hypothesis import strategies as st

from keys import crypto
from keys.checks import check_master_key
from keys.models import WorkspaceKey
from tests.factories import WorkspaceFactory
from tokens.models import Token

KEY_A = base64.b64encode(b"A" * 32).decode()
KEY_B = base64.b64encode(b"B" * 32).decode()
TEST_RING = os.environ["COFFER_MASTER_KEYS"]  # test1:..., set by the root conftest.py


def make(workspace, key="API_KEY", value="a-secret-value-of-some-length", **kwargs) -> Token:
    kwargs.setdefault("environments", list(workspace.environments.all()))
    return Token.objects.create_token(workspace=workspace, key=key, value=value, **kwargs)


def stored(token: Token) -> Token:
    return Token.objects.select_related("workspace").get(pk=token.pk)


# --- the key ring -------------------------------------------------------------------------


def test_key_ring_entries_are_id_colon_base64_and_the_first_is_active():
    ring = crypto.parse_key_ring(f"k2:{KEY_B}, k1:{KEY_A}", "test")
    assert (ring.active_id, ring.ids) == ("k2", ["k2", "k1"])
    assert ring.get("k1") == b"A" * 32


def test_key_file_takes_one_entry_a_line_and_comments():
    text = f"# rotated 2026-11, old key kept, see runbook\nk2:{KEY_B}\n\nk1:{KEY_A}  # old\n"
    assert crypto.parse_key_ring(text, "file").ids == ["k2", "k1"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "holds no master key. Make one with `python manage.py generate_master_key`"),
        ("# only a comment", "holds no master key"),
        (KEY_A, "entry 1 is not of the form <id>:<base64 key>"),
        (f"bad id:{KEY_A}", "entry 1 is not of the form"),
        ("k1:not base64!", "master key 'k1' is not valid base64"),
        (f"k1:{base64.b64encode(b'x' * 16).decode()}", "is 16 bytes; it must be 32 bytes"),
        (f"k1:{KEY_A},k1:{KEY_B}", "master key id 'k1' appears twice"),
    ],
)
def test_malformed_key_rings_are_refused_with_a_clear_message(text, message):
    with pytest.raises(crypto.MasterKeyError) as excinfo:
        crypto.parse_key_ring(text, "COFFER_MASTER_KEYS")
    assert message in str(excinfo.value)
    assert KEY_A not in str(excinfo.value)


def test_key_ring_never_shows_its_keys_in_a_repr():
    ring = crypto.parse_key_ring(f"k1:{KEY_A}", "test")
    assert "AAAA" not in repr(ring)
    assert repr(ring) == "KeyRing(active_id='k1')"


def test_key_ring_comes_from_the_environment_first(tmp_path):
    key_file = tmp_path / "master.keys"
    key_file.write_text(f"file:{KEY_B}\n")
    with override_settings(COFFER_MASTER_KEYS=f"env:{KEY_A}", COFFER_MASTER_KEY_FILE=key_file):
        assert crypto.key_ring().ids == ["env"]
    with override_settings(COFFER_MASTER_KEYS="", COFFER_MASTER_KEY_FILE=key_file):
        assert crypto.key_ring().ids == ["file"]


def test_without_debug_a_missing_key_stops_with_how_to_make_one(tmp_path):
    missing = tmp_path / "master.keys"
    with (
        override_settings(DEBUG=False, COFFER_MASTER_KEYS="", COFFER_MASTER_KEY_FILE=missing),
        pytest.raises(crypto.MasterKeyError) as excinfo,
    ):
        crypto.key_ring()
    assert "No master key configured" in str(excinfo.value)
    assert "python manage.py generate_master_key" in str(excinfo.value)
    assert not missing.exists()


def test_in_debug_a_private_key_file_is_made_in_the_data_dir_with_a_warning(db, tmp_path, caplog):
    # db: before making a key, Coffer checks that no data key needs a missing one.
    key_file = tmp_path / "data" / "master.keys"
    with (
        override_settings(DEBUG=True, COFFER_MASTER_KEYS="", COFFER_MASTER_KEY_FILE=key_file),
        caplog.at_level(logging.WARNING, logger="keys.crypto"),
    ):
        ring = crypto.key_ring()
        crypto.key_ring.cache_clear()
        again = crypto.key_ring()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert ring.ids == ["dev1"] and again.get("dev1") == ring.get("dev1")
    assert caplog.text.count("Generated a development master key") == 1
    assert str(key_file) in caplog.text
    assert base64.b64encode(ring.get("dev1")).decode() not in caplog.text


# --- the system check ---------------------------------------------------------------------


def test_system_check_passes_with_a_key():
    assert check_master_key() == []


def test_system_check_reports_a_missing_key_as_an_error(tmp_path):
    with override_settings(
        DEBUG=False, COFFER_MASTER_KEYS="", COFFER_MASTER_KEY_FILE=tmp_path / "none"
    ):
        [error] = check_master_key()
    assert error.id == "coffer.E001"
    assert "python manage.py generate_master_key" in error.hint


def test_system_check_reports_a_malformed_key_as_an_error():
    with override_settings(COFFER_MASTER_KEYS="k1:tooshort"):
        [error] = check_master_key()
    assert error.id == "coffer.E001"
    assert "'k1'" in error.msg


def test_system_check_warns_about_a_key_file_others_can_read(tmp_path):
    key_file = tmp_path / "master.keys"
    key_file.write_text(f"k1:{KEY_A}\n")
    key_file.chmod(0o644)
    with override_settings(COFFER_MASTER_KEYS="", COFFER_MASTER_KEY_FILE=key_file):
        [warning] = check_master_key()
        assert warning.id == "coffer.W001"
        key_file.chmod(0o600)
        assert check_master_key() == []


# --- data keys and values -----------------------------------------------------------------


def test_each_workspace_has_its_own_data_key(workspace, other_workspace):
    make(workspace)
    make(other_workspace)
    one, two = WorkspaceKey.objects.order_by("workspace_id")
    assert one.unwrap(label="w") != two.unwrap(label="w")
    assert len(one.unwrap(label="w")) == 32


def test_values_round_trip_and_are_never_stored_as_given(workspace):
    token = make(workspace, value="round-trip-value")
    assert b"round-trip-value" not in bytes(stored(token).ciphertext)
    assert stored(token).reveal() == "round-trip-value"


def test_reveal_values_decrypts_tokens_of_several_workspaces(workspace, other_workspace):
    tokens = [make(workspace, value="one-1"), make(other_workspace, value="two-2")]
    values = Token.objects.reveal_values(Token.objects.select_related("workspace"))
    assert values == {tokens[0].pk: "one-1", tokens[1].pk: "two-2"}


def test_ten_encryptions_of_one_value_use_ten_nonces(workspace):
    dek = WorkspaceKey.dek_for(workspace)
    blobs = [
        crypto.encrypt(dek, "same", aad=crypto.value_aad(workspace.pk, "t", 0)) for _ in range(10)
    ]
    assert len({blob[: crypto.NONCE_BYTES] for blob in blobs}) == 10


# --- swapped and corrupted ciphertexts ----------------------------------------------------


def assert_clean_failure(token: Token, secret: str) -> str:
    with pytest.raises(crypto.CryptoError) as excinfo:
        stored(token).reveal()
    message = str(excinfo.value)
    assert f"token {token.key} in workspace {token.workspace.slug}" in message
    assert "'test1'" in message
    assert secret not in message
    return message


def test_a_ciphertext_copied_into_another_token_fails_to_decrypt(workspace):
    source = make(workspace, key="SOURCE", value="source-secret")
    target = make(workspace, key="TARGET", value="target-secret")
    Token.objects.filter(pk=target.pk).update(ciphertext=bytes(source.ciphertext))
    message = assert_clean_failure(target, "source-secret")
    assert "copied from another token, version or workspace" in message


def test_a_ciphertext_copied_into_another_version_fails_to_decrypt(workspace):
    token = make(workspace, value="version-zero-secret")
    version_zero = bytes(token.ciphertext)
    token.set_value("version-one-secret")
    Token.objects.filter(pk=token.pk).update(ciphertext=version_zero)  # old ciphertext, v1
    assert_clean_failure(token, "version-zero-secret")
    Token.objects.filter(pk=token.pk).update(ciphertext=version_zero, value_version=0)
    assert stored(token).reveal() == "version-zero-secret"  # the control: only the copy fails


def test_a_ciphertext_copied_into_another_workspace_fails_to_decrypt(workspace, other_workspace):
    source = make(workspace, key="SAME", value="workspace-one-secret")
    target = make(other_workspace, key="SAME", value="workspace-two-secret")
    Token.objects.filter(pk=target.pk).update(ciphertext=bytes(source.ciphertext))
    assert_clean_failure(target, "workspace-one-secret")


def test_a_token_row_moved_to_another_workspace_fails_to_decrypt(workspace, other_workspace):
    token = make(workspace, value="moved-secret")
    make(other_workspace, key="OTHER")  # so the other workspace has a data key
    Token.objects.filter(pk=token.pk).update(workspace=other_workspace)
    with pytest.raises(crypto.CryptoError, match="cannot decrypt the value"):
        stored(token).reveal()


def test_a_data_key_copied_into_another_workspace_fails_to_unwrap(workspace, other_workspace):
    make(workspace)
    victim = make(other_workspace, key="VICTIM")
    wrapped = WorkspaceKey.objects.get(workspace=workspace).wrapped_dek
    WorkspaceKey.objects.filter(workspace=other_workspace).update(wrapped_dek=wrapped)
    with pytest.raises(crypto.CryptoError) as excinfo:
        stored(victim).reveal()
    assert str(excinfo.value) == (
        f"token VICTIM in workspace {other_workspace.slug}: cannot unwrap the data key with "
        "master key 'test1': the master key is wrong or the wrapped data key is corrupted."
    )


def test_flipping_any_byte_of_a_ciphertext_fails_cleanly(workspace):
    token = make(workspace, value="flip-me")
    original = bytes(token.ciphertext)
    for position in range(len(original)):
        corrupted = bytearray(original)
        corrupted[position] ^= 0x01
        Token.objects.filter(pk=token.pk).update(ciphertext=bytes(corrupted))
        with pytest.raises(crypto.CryptoError, match="ciphertext is corrupted"):
            stored(token).reveal()


@pytest.mark.parametrize("blob", [b"", b"\x00" * 27, b"short"])
def test_an_empty_or_truncated_ciphertext_fails_cleanly(workspace, blob):
    token = make(workspace)
    Token.objects.filter(pk=token.pk).update(ciphertext=blob)
    assert_clean_failure(token, "a-secret-value-of-some-length")


# --- wrong and missing master keys --------------------------------------------------------


def test_a_wrong_master_key_is_an_error_naming_token_workspace_and_key_id(workspace):
    token = make(workspace, key="PAYMENT_KEY", value="wrong-key-secret")
    with (
        override_settings(COFFER_MASTER_KEYS=f"test1:{KEY_A}"),
        pytest.raises(crypto.CryptoError) as excinfo,
    ):
        stored(token).reveal()
    assert str(excinfo.value) == (
        "token PAYMENT_KEY in workspace acme: cannot unwrap the data key with master key "
        "'test1': the master key is wrong or the wrapped data key is corrupted."
    )
    assert stored(token).reveal() == "wrong-key-secret"  # the right key still works


def test_a_missing_master_key_is_an_error_naming_token_workspace_and_key_id(workspace):
    token = make(workspace, key="PAYMENT_KEY")
    with (
        override_settings(COFFER_MASTER_KEYS=f"k2:{KEY_B}"),
        pytest.raises(crypto.CryptoError) as excinfo,
    ):
        stored(token).reveal()
    assert str(excinfo.value) == (
        "token PAYMENT_KEY in workspace acme: master key 'test1' is not in the key ring "
        "(known: k2). Add it back to COFFER_MASTER_KEYS, or restore the key file."
    )


def test_new_data_keys_are_wrapped_by_the_active_master_key(workspace):
    with override_settings(COFFER_MASTER_KEYS=f"k2:{KEY_B},{TEST_RING}"):
        token = make(workspace, value="under-k2")
        assert WorkspaceKey.objects.get(workspace=workspace).kek_id == "k2"
        assert stored(token).reveal() == "under-k2"


def test_a_missing_data_key_is_an_error_not_a_new_key(workspace):
    token = make(workspace, key="ORPHAN")
    WorkspaceKey.objects.filter(workspace=workspace).delete()
    with pytest.raises(crypto.CryptoError, match="the workspace has no data key"):
        stored(token).reveal()
    assert not WorkspaceKey.objects.exists()


# --- crypto-shredding ---------------------------------------------------------------------


def test_deleting_a_workspace_destroys_its_data_key(workspace, other_workspace):
    doomed = make(workspace, value="shredded-secret")
    survivor = make(other_workspace, value="surviving-secret")
    ciphertext, version, token_id = bytes(doomed.ciphertext), doomed.value_version, doomed.pk
    workspace_id = workspace.pk
    workspace.delete()
    assert not WorkspaceKey.objects.filter(workspace_id=workspace_id).exists()
    assert not Token.objects.filter(workspace_id=workspace_id).exists()
    # No key left can read the old ciphertext, even one placed back into a workspace.
    for record in WorkspaceKey.objects.all():
        with pytest.raises(crypto.CryptoError):
            crypto.decrypt(
                record.unwrap(label="w"),
                ciphertext,
                aad=crypto.value_aad(workspace_id, token_id, version),
                label="shredded",
            )
    assert stored(survivor).reveal() == "surviving-secret"


def test_a_new_workspace_never_inherits_a_deleted_workspaces_data_key(db):
    first = WorkspaceFactory()
    make(first)
    old_wrapped = bytes(WorkspaceKey.objects.get(workspace=first).wrapped_dek)
    first.delete()
    second = WorkspaceFactory()
    make(second)
    assert bytes(WorkspaceKey.objects.get(workspace=second).wrapped_dek) != old_wrapped


@given(text=st.text(max_size=200))
def test_any_key_ring_text_loads_or_is_refused_with_a_message(text):
    try:
        ring = crypto.parse_key_ring(text, "COFFER_MASTER_KEYS")
    except crypto.MasterKeyError as error:
        assert str(error).startswith("COFFER_MASTER_KEYS")
    else:
        assert ring.active_id in ring.ids
        assert all(len(ring.get(kek_id)) == 32 for kek_id in ring.ids)
