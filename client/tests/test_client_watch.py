"""`coffer run --watch` against a real server that holds long polls (gunicorn with uvicorn
workers, config.asgi): an edit restarts the child with the new values, or sends it the reload
signal; --stagger delays it; a stubborn child is killed after --grace; a revoked key stops the
watch and leaves the child running, or stops both with --exit-on-revoke. The child and the
watch are watching.py's; tests/browser/test_watch_edit.py makes the edit in the UI instead.
"""

from __future__ import annotations

import os
import re
import signal

import pytest
from coffer_helpers import coffer, coffer_env
from tests.api_server import running_server
from watching import Watch, pid_of, set_value

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server():
    with running_server(asgi=True, COFFER_API_RATE_LIMIT="1000") as running:
        yield running


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
