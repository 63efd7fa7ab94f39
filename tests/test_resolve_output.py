"""`manage.py resolve --output`: only a new path or a regular file ever receives values."""

from __future__ import annotations

import os
import socket
import stat

import pytest

from tests.factories import TokenFactory
from tests.test_resolve_command import CONTEXT, VALUE, resolved_events, run
from tokens.management.commands import resolve as resolve_command

TEMPLATE = b"password: $Secret{DB_PASSWORD}\n"


@pytest.fixture(autouse=True)
def token(workspace):
    return TokenFactory(workspace=workspace, key="DB_PASSWORD", value=VALUE)


@pytest.mark.parametrize("output", ["", " ", "\t\n"])
def test_empty_output_is_a_usage_error_and_prints_nothing(output):
    result = run(*CONTEXT, "--output", output, stdin=TEMPLATE)
    assert (result.code, result.out) == (2, b"")
    assert "--output must name a file" in result.err
    assert VALUE not in result.err
    assert not resolved_events().exists()


def make_fifo(path):
    os.mkfifo(path)


def make_device(path):
    null = os.stat("/dev/null")
    os.mknod(path, 0o666 | stat.S_IFCHR, null.st_rdev)


def make_socket(path):
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.close()  # the node stays


def make_symlink_to_stdout(path):
    os.symlink("/proc/self/fd/1", path)


def make_symlink_to_a_file(path):
    (path.parent / "target.yaml").write_bytes(b"old\n")
    os.symlink(path.parent / "target.yaml", path)


def make_directory(path):
    path.mkdir()


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (make_fifo, "a FIFO (named pipe)"),
        pytest.param(
            make_device,
            "a character device",
            marks=pytest.mark.skipif(os.geteuid() != 0, reason="mknod of a device needs root"),
        ),
        (make_socket, "a socket"),
        (make_symlink_to_stdout, "a symbolic link"),
        (make_symlink_to_a_file, "a symbolic link"),
        (make_directory, "a directory"),
    ],
)
def test_anything_but_a_regular_file_is_refused_and_left_alone(tmp_path, make, kind):
    target = tmp_path / "out"
    make(target)
    before = os.lstat(target)
    result = run(*CONTEXT, "--output", str(target), stdin=TEMPLATE)
    assert (result.code, result.out) == (2, b"")
    assert f"--output {target} is {kind}" in result.err
    after = os.lstat(target)
    assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        {"out", *(["target.yaml"] if make is make_symlink_to_a_file else [])}
    )
    if make is make_symlink_to_a_file:
        assert (tmp_path / "target.yaml").read_bytes() == b"old\n"
    assert not resolved_events().exists()


def test_a_missing_folder_is_a_usage_error(tmp_path):
    result = run(*CONTEXT, "--output", str(tmp_path / "nope" / "out"), stdin=TEMPLATE)
    assert (result.code, result.out) == (2, b"")
    assert "does not exist" in result.err


def test_an_existing_regular_file_is_replaced_atomically(tmp_path):
    target = tmp_path / "app.yaml"
    target.write_bytes(b"old\n")
    result = run(*CONTEXT, "--output", str(target), stdin=TEMPLATE)
    assert result.code == 0
    assert target.read_bytes() == f"password: {VALUE}\n".encode()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["app.yaml"]


def test_a_new_path_is_created(tmp_path):
    target = tmp_path / "app.yaml"
    assert run(*CONTEXT, "--output", str(target), stdin=TEMPLATE).code == 0
    assert target.read_bytes() == f"password: {VALUE}\n".encode()
    assert [p.name for p in tmp_path.iterdir()] == ["app.yaml"]


def test_a_path_swapped_for_a_link_before_the_rename_is_refused(tmp_path, monkeypatch):
    """The check is made again right before the rename: a symlink put there while the values
    were being resolved is refused, and neither it nor its target is written."""
    target = tmp_path / "app.yaml"
    target.write_bytes(b"old\n")
    victim = tmp_path / "victim"
    victim.write_bytes(b"victim\n")
    real_put_in_place = resolve_command.AtomicFile._put_in_place

    def swap_then_put(self):
        target.unlink()
        os.symlink(victim, target)
        return real_put_in_place(self)

    monkeypatch.setattr(resolve_command.AtomicFile, "_put_in_place", swap_then_put)
    result = run(*CONTEXT, "--output", str(target), stdin=TEMPLATE)
    assert (result.code, result.out) == (2, b"")
    assert "is a symbolic link" in result.err
    assert target.is_symlink() and victim.read_bytes() == b"victim\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.yaml", "victim"]


def test_a_path_that_appears_before_the_rename_is_not_replaced_if_not_regular(
    tmp_path, monkeypatch
):
    target = tmp_path / "app.yaml"
    real_put_in_place = resolve_command.AtomicFile._put_in_place

    def appear_then_put(self):
        os.mkfifo(target)
        return real_put_in_place(self)

    monkeypatch.setattr(resolve_command.AtomicFile, "_put_in_place", appear_then_put)
    result = run(*CONTEXT, "--output", str(target), stdin=TEMPLATE)
    assert result.code == 2
    assert stat.S_ISFIFO(os.lstat(target).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["app.yaml"]
