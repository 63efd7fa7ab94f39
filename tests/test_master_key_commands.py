"""generate_master_key, rotate_master_key, and refusing to start without a master key."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from audit.models import AuditAction, AuditEvent
from keys import crypto
from keys.models import WorkspaceKey
from tests.factories import WorkspaceFactory
from tokens.models import Token

ROOT = Path(__file__).resolve().parent.parent
TEST_RING = os.environ["COFFER_MASTER_KEYS"]  # "test1:...", set by the root conftest.py
NEW_KEY = "k2:" + base64.b64encode(b"N" * 32).decode()
ROTATING = f"{NEW_KEY},{TEST_RING}"


def run(command: str, *args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(command, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def manage_py(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """Run a fresh process with production settings and no master key unless given."""
    environ = {k: v for k, v in os.environ.items() if k not in {"COFFER_MASTER_KEYS"}}
    environ.pop("DATABASE_URL", None)
    environ |= {"COFFER_DEBUG": "false", "COFFER_DATA_DIR": str(tmp_path)} | env
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60
    )


# --- generate_master_key ------------------------------------------------------------------


def test_generate_master_key_prints_one_key_ring_entry():
    out, err = run("generate_master_key", "--id", "k9")
    ring = crypto.parse_key_ring(out, "output")
    assert ring.ids == ["k9"]
    assert len(ring.get("k9")) == 32
    assert out.count("\n") == 1
    assert "COFFER_MASTER_KEYS" in err
    assert "put it FIRST in the key ring" in err
    assert "python manage.py rotate_master_key" in err
    assert out.strip().split(":", 1)[1] not in err


def test_generate_master_key_makes_a_new_key_each_time_with_a_dated_id():
    first, _ = run("generate_master_key")
    second, _ = run("generate_master_key", "--id", "other")
    assert first.split(":")[1] != second.split(":")[1]
    assert first.startswith("k20")


@pytest.mark.parametrize(
    ("kek_id", "message"),
    [("bad id", "cannot be a master key id"), ("test1", "already has a master key with id")],
)
def test_generate_master_key_refuses_an_unusable_id(kek_id, message):
    with pytest.raises(CommandError, match=message):
        run("generate_master_key", "--id", kek_id)


def test_generate_master_key_runs_without_any_key_and_check_refuses_to(tmp_path):
    made = manage_py(tmp_path, "manage.py", "generate_master_key", "--id", "first")
    assert made.returncode == 0, made.stderr
    assert crypto.parse_key_ring(made.stdout, "output").ids == ["first"]
    assert "Keep it secret and back it up" in made.stderr
    assert not (tmp_path / "master.keys").exists()

    refused = manage_py(tmp_path, "manage.py", "check")
    assert refused.returncode != 0
    assert "coffer.E001" in refused.stderr
    assert "python manage.py generate_master_key" in refused.stderr

    accepted = manage_py(tmp_path, "manage.py", "check", COFFER_MASTER_KEYS=made.stdout.strip())
    assert accepted.returncode == 0, accepted.stderr


def test_web_server_refuses_to_start_without_a_master_key(tmp_path):
    refused = manage_py(tmp_path, "-c", "import config.wsgi")
    assert refused.returncode != 0
    assert "Coffer cannot start: No master key configured" in refused.stderr
    assert "python manage.py generate_master_key" in refused.stderr

    started = manage_py(tmp_path, "-c", "import config.wsgi", COFFER_MASTER_KEYS=NEW_KEY)
    assert started.returncode == 0, started.stderr


def test_web_server_refuses_to_start_with_a_malformed_master_key(tmp_path):
    refused = manage_py(tmp_path, "-c", "import config.wsgi", COFFER_MASTER_KEYS="k1:c2hvcnQ=")
    assert refused.returncode != 0
    assert "master key 'k1' is 5 bytes; it must be 32 bytes" in refused.stderr


# --- rotate_master_key --------------------------------------------------------------------


def make_workspaces(count: int) -> list[Token]:
    tokens = []
    for number in range(count):
        workspace = WorkspaceFactory(slug=f"team-{number}")
        tokens.append(
            Token.objects.create_token(
                workspace=workspace,
                key=f"KEY_{number}",
                value=f"value-of-workspace-{number}",
                environments=list(workspace.environments.all()),
            )
        )
    return tokens


def assert_every_token_decrypts_with_only_the_new_key(tokens: list[Token]) -> None:
    with override_settings(COFFER_MASTER_KEYS=NEW_KEY):
        for number, token in enumerate(tokens):
            assert Token.objects.get(pk=token.pk).reveal() == f"value-of-workspace-{number}"


def kek_ids() -> list[str]:
    return list(WorkspaceKey.objects.order_by("workspace__slug").values_list("kek_id", flat=True))


def test_rotation_rewraps_every_data_key_and_says_the_old_key_can_go(db):
    tokens = make_workspaces(5)
    with override_settings(COFFER_MASTER_KEYS=ROTATING):
        out, err = run("rotate_master_key")
    assert kek_ids() == ["k2"] * 5
    assert "Active master key: k2. 5 workspace data key(s) to re-wrap." in out
    assert "Re-wrapped 5 workspace data key(s) under master key 'k2'." in out
    assert "Master key 'test1' is no longer used: it can be removed from the key ring" in out
    assert f"[{'#' * 30}] 5/5 workspaces" in err
    assert "[" + "#" * 6 + "." * 24 + "] 1/5 workspaces" in err
    events = AuditEvent.objects.filter(action=AuditAction.KEY_ROTATED).order_by("workspace__slug")
    assert [(e.workspace.slug, e.detail, e.actor_name, e.token_key) for e in events] == [
        (
            f"team-{n}",
            {"from_master_key": "test1", "to_master_key": "k2"},
            "rotate_master_key",
            "",
        )
        for n in range(5)
    ]
    assert_every_token_decrypts_with_only_the_new_key(tokens)
    assert all(record.rotated_at for record in WorkspaceKey.objects.all())


def test_rotation_run_again_has_nothing_to_do(db):
    make_workspaces(2)
    with override_settings(COFFER_MASTER_KEYS=ROTATING):
        run("rotate_master_key")
        out, _ = run("rotate_master_key")
    assert "0 workspace data key(s) to re-wrap" in out
    assert AuditEvent.objects.filter(action=AuditAction.KEY_ROTATED).count() == 2


@pytest.mark.django_db(transaction=True)
def test_rotation_interrupted_midway_then_run_again_loses_nothing(monkeypatch):
    tokens = make_workspaces(5)
    original = WorkspaceKey.rotate
    calls = []

    def rotate_then_get_killed(cls, workspace_id, **kwargs):
        calls.append(workspace_id)
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C (SIGINT) while the third workspace is next
        return original(workspace_id, **kwargs)

    monkeypatch.setattr(WorkspaceKey, "rotate", classmethod(rotate_then_get_killed))
    with override_settings(COFFER_MASTER_KEYS=ROTATING):
        with pytest.raises(CommandError, match="Interrupted after 2 re-wrapped data key"):
            run("rotate_master_key")
        assert kek_ids() == ["k2", "k2", "test1", "test1", "test1"]
        monkeypatch.undo()
        out, _ = run("rotate_master_key")
    assert "3 workspace data key(s) to re-wrap" in out
    assert kek_ids() == ["k2"] * 5
    assert AuditEvent.objects.filter(action=AuditAction.KEY_ROTATED).count() == 5
    assert_every_token_decrypts_with_only_the_new_key(tokens)


@pytest.mark.django_db(transaction=True)
def test_a_crash_inside_one_workspace_rolls_back_only_that_workspace(monkeypatch):
    """One transaction per workspace: a crash after the re-wrap but before its audit event
    leaves that workspace on the old key (not half-rotated) and the others done."""
    tokens = make_workspaces(4)
    original = AuditEvent.record
    rotations = []

    def record_then_crash(workspace, action, **kwargs):
        if action == AuditAction.KEY_ROTATED:
            rotations.append(workspace.slug)
            if len(rotations) == 3:
                raise RuntimeError("the process died")
        return original(workspace, action, **kwargs)

    monkeypatch.setattr(AuditEvent, "record", staticmethod(record_then_crash))
    with override_settings(COFFER_MASTER_KEYS=ROTATING):
        with pytest.raises(RuntimeError, match="the process died"):
            run("rotate_master_key")
        assert kek_ids() == ["k2", "k2", "test1", "test1"]
        monkeypatch.undo()
        run("rotate_master_key")
    assert kek_ids() == ["k2"] * 4
    assert AuditEvent.objects.filter(action=AuditAction.KEY_ROTATED).count() == 4
    assert_every_token_decrypts_with_only_the_new_key(tokens)


def test_rotation_with_a_wrong_old_key_names_each_workspace_and_key_and_changes_nothing(db):
    tokens = make_workspaces(2)
    wrong = "test1:" + base64.b64encode(b"W" * 32).decode()
    with (
        override_settings(COFFER_MASTER_KEYS=f"{NEW_KEY},{wrong}"),
        pytest.raises(CommandError, match="2 workspace data key.s. are still on an old"),
    ):
        run("rotate_master_key")
    assert kek_ids() == ["test1", "test1"]
    assert not AuditEvent.objects.filter(action=AuditAction.KEY_ROTATED).exists()
    for number, token in enumerate(tokens):
        assert Token.objects.get(pk=token.pk).reveal() == f"value-of-workspace-{number}"


def test_rotation_errors_are_printed_with_workspace_and_key_id(db):
    make_workspaces(1)
    wrong = "test1:" + base64.b64encode(b"W" * 32).decode()
    err = StringIO()
    with (
        override_settings(COFFER_MASTER_KEYS=f"{NEW_KEY},{wrong}"),
        pytest.raises(CommandError),
    ):
        call_command("rotate_master_key", stdout=StringIO(), stderr=err)
    assert (
        "workspace team-0: cannot unwrap the data key with master key 'test1': the master key "
        "is wrong or the wrapped data key is corrupted."
    ) in err.getvalue()


def test_rotation_with_the_old_key_missing_says_which_key_to_add_back(db):
    make_workspaces(2)
    err = StringIO()
    with override_settings(COFFER_MASTER_KEYS=NEW_KEY), pytest.raises(CommandError):
        call_command("rotate_master_key", stdout=StringIO(), stderr=err)
    assert "workspace team-0: master key 'test1' is not in the key ring (known: k2)" in (
        err.getvalue()
    )
    assert "Master key 'test1' is used by 2 workspace data key(s) and 0 two-factor secrets but" in (
        err.getvalue()
    )
    assert kek_ids() == ["test1", "test1"]


def test_rotation_says_an_old_key_still_in_use_must_be_kept(db):
    make_workspaces(1)  # on test1
    k0 = "k0:" + base64.b64encode(b"O" * 32).decode()
    with override_settings(COFFER_MASTER_KEYS=f"{k0},{TEST_RING}"):
        on_k0 = WorkspaceFactory(slug="on-k0")
        Token.objects.create_token(
            workspace=on_k0, key="K", value="v", environments=list(on_k0.environments.all())
        )
    wrong_k0 = "k0:" + base64.b64encode(b"W" * 32).decode()
    out = StringIO()
    with (
        override_settings(COFFER_MASTER_KEYS=f"{NEW_KEY},{TEST_RING},{wrong_k0}"),
        pytest.raises(CommandError, match="1 workspace data key"),
    ):
        call_command("rotate_master_key", stdout=out, stderr=StringIO())
    assert "Master key 'test1' is no longer used: it can be removed" in out.getvalue()
    assert (
        "Master key 'k0' is still used by 1 workspace data key(s) and 0 two-factor secrets: "
        "keep it." in (out.getvalue())
    )


def test_rotation_without_a_usable_key_ring_is_a_command_error(db, tmp_path):
    with (
        override_settings(
            DEBUG=False, COFFER_MASTER_KEYS="", COFFER_MASTER_KEY_FILE=tmp_path / "none"
        ),
        pytest.raises(CommandError, match="python manage.py generate_master_key"),
    ):
        run("rotate_master_key")
