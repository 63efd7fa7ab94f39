"""Every sealed thing is in one list (keys/sealed.py), and the backup's manifest, verify_backup,
the start-up key check and rotate_master_key all use it.

Two-factor secrets are sealed straight under a master key, not a data key. A backup used to
list only the data keys' master keys and verify_backup did not open those secrets: after a
restore with the listed keys it said OK, the code page answered 500 and everyone with an
authenticator was locked out.
"""

from __future__ import annotations

import base64
import io
import json
import os
import tarfile

import pyotp
import pytest
from django.core.management import CommandError, call_command
from django.core.management.base import SystemCheckError
from django.test import Client, override_settings

from keys.checks import master_key_problems
from keys.sealed import SOURCES, inventory
from tests.factories import make_webhook
from tests.test_backup import make_tokens, random_values
from tests.test_two_factor import CODE_PAGE, set_up_totp, sign_in

pytestmark = pytest.mark.django_db(transaction=True)

TEST_RING = os.environ["COFFER_MASTER_KEYS"]
K2 = "k2:" + base64.b64encode(b"2" * 32).decode()


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(*args, stdout=out, stderr=err)
    except CommandError as error:
        return error.returncode, out.getvalue(), err.getvalue() + str(error)
    return 0, out.getvalue(), err.getvalue()


@pytest.fixture
def totp_on_k2(workspace):
    """Data keys on the test key; olivia's TOTP secret and recovery seed sealed under k2 (a
    key added first to the ring, as before a rotation)."""
    from tests.factories import MembershipFactory, UserFactory
    from workspaces.models import Role

    make_tokens("globex", random_values(2))
    user = UserFactory(username="olivia")
    MembershipFactory(workspace=workspace, user=user, role=Role.EDITOR)
    with override_settings(COFFER_MASTER_KEYS=f"{K2},{TEST_RING}"):
        client = Client()
        sign_in(client)
        secret, _ = set_up_totp(client)
    return secret


def test_the_list_holds_every_kind_of_ciphertext():
    assert [source.name for source in SOURCES] == [
        "token values",
        "token versions",
        "pending imports",
        "two-factor secrets",
        "webhook signing secrets",
    ]


def test_the_manifest_counts_two_factor_secrets_and_needs_their_master_key(totp_on_k2, tmp_path):
    output = tmp_path / "coffer.backup"
    with override_settings(COFFER_MASTER_KEYS=f"{K2},{TEST_RING}"):
        status, out, err = run("backup", "--output", str(output))
    assert status == 0, err
    with tarfile.open(output) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest["master_key_ids"] == ["k2", "test1"]
    assert manifest["counts"]["two_factor_secrets"] == 2  # the TOTP secret and recovery seed
    assert "Master keys needed to read it: k2, test1" in out


def test_verify_fails_naming_the_person_when_their_secret_cannot_be_read(totp_on_k2, tmp_path):
    output = tmp_path / "coffer.backup"
    with override_settings(COFFER_MASTER_KEYS=f"{K2},{TEST_RING}"):
        assert run("backup", "--output", str(output))[0] == 0
        status, out, err = run("verify_backup", str(output))
        assert status == 0, err
        assert "Two-factor secrets: 2 checked, 2 decrypt and authenticate." in out

    status, out, err = run("verify_backup", str(output))  # k2 is lost

    assert status == 1
    assert "Master keys needed: k2 (MISSING), test1 (in the key ring)." in out
    assert "Two-factor secrets: 2 checked, 0 decrypt and authenticate." in out
    assert "FAILED: TOTP secret of olivia (master key 'k2'):" in err
    assert "FAILED: recovery-code seed of olivia (master key 'k2'):" in err
    assert run("verify_backup", "--live")[0] == 1


def test_verify_refuses_a_manifest_that_leaves_out_a_needed_master_key(totp_on_k2, tmp_path):
    """A manifest made before this list existed named only the data keys' master keys."""
    output = tmp_path / "coffer.backup"
    with override_settings(COFFER_MASTER_KEYS=f"{K2},{TEST_RING}"):
        assert run("backup", "--output", str(output))[0] == 0
        rewrite_manifest(output, master_key_ids=["test1"])
        status, _, err = run("verify_backup", str(output))
    assert status == 1
    assert "the manifest lists master keys test1; the restored database needs k2, test1." in err


def test_the_start_up_check_opens_a_two_factor_secret_per_master_key(totp_on_k2):
    with override_settings(COFFER_MASTER_KEYS=f"{K2},{TEST_RING}"):
        assert master_key_problems() == []
    problems = master_key_problems()
    assert len(problems) == 1
    assert problems[0].startswith("Master key 'k2' does not read the two-factor secrets:")
    with pytest.raises(SystemCheckError, match="coffer.E002"):
        call_command("check")


def test_rotation_counts_from_the_same_list(totp_on_k2):
    assert inventory("default").master_keys["k2"]["two-factor secrets"] == 2
    with override_settings(COFFER_MASTER_KEYS=f"{TEST_RING},{K2}"):
        status, out, err = run("rotate_master_key")
    assert status == 0, err
    assert "Re-sealed 2 two-factor secrets under master key 'test1'" in out
    assert "Master key 'k2' is no longer used" in out
    assert "k2" not in inventory("default").master_keys


def test_the_code_page_is_a_clear_503_when_the_secret_cannot_be_read(totp_on_k2):
    client = Client()
    assert sign_in(client)["Location"] == CODE_PAGE
    response = client.post(CODE_PAGE, {"code": pyotp.TOTP(totp_on_k2).now()})
    assert response.status_code == 503
    page = response.content.decode()
    assert "Your two-factor secret cannot be read" in page
    assert totp_on_k2 not in page
    assert "_auth_user_id" not in client.session


def test_webhook_secrets_and_pending_imports_are_counted(workspace):
    make_webhook(workspace)
    counts = inventory("default").counts
    assert counts["webhook_signing_secrets"] == 1 and counts["pending_imports"] == 0


def rewrite_manifest(path, **changes) -> None:
    with tarfile.open(path) as archive:
        members = {m.name: archive.extractfile(m).read() for m in archive.getmembers()}  # type: ignore
    manifest = json.loads(members["manifest.json"]) | changes
    members["manifest.json"] = json.dumps(manifest).encode()
    with tarfile.open(path, "w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("extra member", "its manifest describes only manifest.json and"),
        ("size", "its manifest says 12"),
        ("member name", "its manifest names the member 'other.db'"),
    ],
)
def test_verify_refuses_an_archive_its_manifest_does_not_describe_before_restoring(
    tmp_path, monkeypatch, change, message
):
    from backups.management.commands import verify_backup

    make_tokens("acme", random_values(1))
    output = tmp_path / "coffer.backup"
    assert run("backup", "--output", str(output))[0] == 0
    if change == "extra member":
        add_member(output, "payload.sh", b"#!/bin/sh\n")
    elif change == "size":
        rewrite_manifest(output, database_bytes=12)
    else:
        rewrite_manifest(output, database_member="other.db")
    restores = []
    monkeypatch.setattr(verify_backup, "restored", lambda *a: restores.append(a))

    status, _, err = run("verify_backup", str(output))

    assert status == 1
    assert message in err and "Nothing was restored." in err
    assert restores == []


def add_member(path, name: str, data: bytes) -> None:
    with tarfile.open(path, "a") as archive:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
