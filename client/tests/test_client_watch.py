"""`coffer run --watch` against a real server that holds long polls (gunicorn with uvicorn
workers, config.asgi): an edit restarts the child with the new values, or sends it the reload
signal; --stagger delays it; a stubborn child is killed after --grace; a revoked key stops the
watch and leaves the child running, or stops both with --exit-on-revoke.

A child here is a small Python script that writes what happens to it into a file, one line
per event; the tests wait for lines (within bounds well above what the watch needs, which
bench/longpoll.py measures), never for a fixed time."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from coffer_helpers import PYTHON, coffer, coffer_env
from tests.api_server import running_server

pytestmark = pytest.mark.slow

CHILD = """
import os, signal, sys, time
out, stubborn = sys.argv[1], sys.argv[2] == "stubborn"
def log(text):
    with open(out, "a") as f:
        f.write(text + "\\n")
def term(*_):
    log(f"term {os.getpid()}")
    if not stubborn:
        sys.exit(0)
signal.signal(signal.SIGHUP, lambda *_: log(f"hup {os.getpid()}"))
signal.signal(signal.SIGTERM, term)
log(f"start {os.getpid()} {os.environ.get('STRIPE_KEY')}")
while True:
    time.sleep(0.05)
"""


@pytest.fixture(scope="module")
def server():
    with running_server(asgi=True, COFFER_API_RATE_LIMIT="1000") as running:
        yield running


class Watch:
    """`coffer run --watch ... -- python CHILD OUT` in the background."""

    def __init__(
        self, server, tmp_path: Path, *options: str, key: str = "main", stubborn: bool = False
    ) -> None:
        self.out = tmp_path / "child.log"
        self.out.touch()
        script = tmp_path / "child.py"
        script.write_text(CHILD)
        env = coffer_env(server.url, server.keys[key], tmp_path / "cache")
        self.process = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "coffer_cli",
                "run",
                *options,
                "--",
                sys.executable,
                str(script),
                str(self.out),
                "stubborn" if stubborn else "no",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def lines(self) -> list[str]:
        return self.out.read_text().splitlines()

    def wait_for(self, pattern: str, count: int = 1, within: float = 30) -> list[str]:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            found = [line for line in self.lines() if re.match(pattern, line)]
            if len(found) >= count:
                return found
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"no {count} x {pattern!r} in {self.lines()}: {self.finish()}")

    def finish(self, timeout: float = 30) -> tuple[int | None, str]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            _, err = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        return self.process.returncode, err.decode(errors="replace")

    def stderr_so_far_contains(self, text: str, within: float = 30) -> None:
        """Wait for `text` on coffer's stderr without ending it (read line by line)."""
        assert self.process.stderr is not None
        os.set_blocking(self.process.stderr.fileno(), False)
        seen, deadline = b"", time.monotonic() + within
        while time.monotonic() < deadline:
            chunk = self.process.stderr.read() or b""
            seen += chunk
            if text.encode() in seen:
                self.early_stderr = seen.decode(errors="replace")
                return
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not in {seen!r}")


def set_value(server, key: str, value: str) -> None:
    server.django(
        f"from tokens.models import Token\nToken.objects.get(key={key!r}).set_value({value!r})"
    )


def pid_of(line: str) -> int:
    return int(line.split()[1])


def test_an_edit_restarts_the_child_with_the_new_value(server, tmp_path):
    watch = Watch(server, tmp_path, "--watch")
    first = watch.wait_for(r"start ")[0]
    assert first.endswith(server.values["STRIPE_KEY"])
    set_value(server, "STRIPE_KEY", "sk_live_rotated_once")
    starts = watch.wait_for(r"start ", count=2)
    assert starts[1].endswith(" sk_live_rotated_once")
    assert pid_of(starts[1]) != pid_of(starts[0])
    assert watch.lines().index(f"term {pid_of(first)}") < watch.lines().index(starts[1])
    status, err = watch.finish()
    assert "values changed; restarting CMD in 0.0s" in err
    assert "CMD restarted with the new values" in err
    assert "sk_live_rotated_once" not in err and server.keys["main"] not in err
    assert status == 0  # the child's own status after coffer's SIGTERM reached it


def test_a_reload_signal_is_sent_instead_of_a_restart(server, tmp_path):
    watch = Watch(server, tmp_path, "--watch", "--reload-signal", "HUP")
    first = watch.wait_for(r"start ")[0]
    set_value(server, "STRIPE_KEY", "sk_live_rotated_for_hup")
    hup = watch.wait_for(r"hup ")[0]
    assert pid_of(hup) == pid_of(first)
    assert len(watch.wait_for(r"start ")) == 1  # not restarted
    _, err = watch.finish()
    assert "values changed; sending SIGHUP in" in err


def test_stagger_delays_the_restart_by_at_most_its_bound(server, tmp_path):
    watch = Watch(server, tmp_path, "--watch", "--stagger", "4")
    watch.wait_for(r"start ")
    set_value(server, "STRIPE_KEY", "sk_live_rotated_staggered")
    watch.wait_for(r"start ", count=2)
    _, err = watch.finish()
    delay = float(re.search(r"restarting CMD in (\d+\.\d)s", err)[1])
    assert 0 <= delay <= 4


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace(server, tmp_path):
    watch = Watch(server, tmp_path, "--watch", "--grace", "1", stubborn=True)
    first = watch.wait_for(r"start ")[0]
    set_value(server, "STRIPE_KEY", "sk_live_rotated_stubborn")
    second = watch.wait_for(r"start ", count=2)[1]
    assert f"term {pid_of(first)}" in watch.lines()
    with pytest.raises(ProcessLookupError):
        os.kill(pid_of(first), 0)  # gone: killed
    # This child ignores the SIGTERM coffer would forward: it goes first, then coffer.
    os.kill(pid_of(second), signal.SIGKILL)
    status, err = watch.finish()
    assert status == 128 + signal.SIGKILL


def test_a_revoked_key_stops_the_watch_and_leaves_the_child_running(server, tmp_path):
    watch = Watch(server, tmp_path, "--watch", key="spare1")
    first = watch.wait_for(r"start ")[0]
    server.django(
        "from access.models import AccessKey\nAccessKey.objects.get(name='spare1').revoke()"
    )
    watch.stderr_so_far_contains("the watch stopped, CMD keeps running")
    assert "refused (HTTP 401)" in watch.early_stderr
    assert watch.process.poll() is None
    os.kill(pid_of(first), 0)  # still running
    status, _ = watch.finish()
    assert status == 0
    assert len(watch.wait_for(r"start ")) == 1


def test_exit_on_revoke_stops_the_child_and_exits_125(server, tmp_path):
    watch = Watch(server, tmp_path, "--watch", "--exit-on-revoke", key="spare2")
    first = watch.wait_for(r"start ")[0]
    server.django(
        "from access.models import AccessKey\nAccessKey.objects.get(name='spare2').revoke()"
    )
    watch.process.wait(timeout=60)  # coffer ends by itself
    status, err = watch.finish()
    assert status == 125
    assert "the watch stopped and CMD is stopped (--exit-on-revoke)" in err
    assert f"term {pid_of(first)}" in watch.lines()


@pytest.mark.parametrize("name", ["KILL", "SIGSTOP", "NOPE", "1"])
def test_a_signal_no_process_can_handle_is_a_usage_error(tmp_path, name):
    env = coffer_env("http://127.0.0.1:9", "cfr_x", tmp_path)
    result = coffer("run", "--reload-signal", name, "--", "true", env=env)
    assert result.returncode == 2
    assert b"is not a signal a process can handle" in result.stderr
