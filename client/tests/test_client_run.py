"""`coffer run` against a real gunicorn: values injected, exit status and signals passed on,
--only, --preserve-env and --mask."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from coffer_helpers import PYTHON, coffer, coffer_env
from tests.api_server import running_server

pytestmark = pytest.mark.slow

PRINT_ENV = (
    "import json, os, sys; "
    "print(json.dumps({k: os.environ.get(k) for k in sys.argv[1].split(',')})); "
    "sys.exit(int(sys.argv[2]))"
)
ALL = "DB_URL,STRIPE_KEY,MULTILINE,QUOTES,COFFER_ACCESS_KEY"


@pytest.fixture(scope="module")
def server():
    with running_server(COFFER_API_RATE_LIMIT="1000") as running:
        yield running


@pytest.fixture
def env(server, cache):
    return coffer_env(server.url, server.keys["main"], cache)


def child_env(result) -> dict:
    return json.loads(result.stdout)


def test_run_injects_every_value_and_passes_the_exit_status(server, env):
    result = coffer("run", "--", sys.executable, "-c", PRINT_ENV, ALL, "7", env=env)
    assert result.returncode == 7, result.stderr
    seen = child_env(result)
    assert {key: seen[key] for key in server.values} == server.values
    assert seen["COFFER_ACCESS_KEY"] is None  # the key is not handed to the child
    assert result.stderr == b""


def test_a_signal_death_is_128_plus_the_signal(env):
    result = coffer("run", "--", "sh", "-c", "kill -TERM $$", env=env)
    assert result.returncode == 128 + signal.SIGTERM


def test_signals_are_forwarded_to_the_child(env):
    script = (
        "import signal, sys\n"
        "signal.signal(signal.SIGUSR1, lambda *a: sys.exit(3))\n"
        "print('ready', flush=True)\n"
        "signal.pause()\n"
    )
    process = subprocess.Popen(
        [PYTHON, "-m", "coffer_cli", "run", "--", sys.executable, "-c", script],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout.readline() == b"ready\n"
    process.send_signal(signal.SIGUSR1)
    assert process.wait(timeout=20) == 3


def test_a_missing_command_is_127_and_nothing_else_runs(env):
    result = coffer("run", "--", "no-such-command-here", env=env)
    assert result.returncode == 127
    assert b"no-such-command-here: command not found" in result.stderr


def test_only_gives_just_those_keys(env):
    result = coffer(
        "run", "--only", "DB_URL", "--", sys.executable, "-c", PRINT_ENV, ALL, "0", env=env
    )
    seen = child_env(result)
    assert seen["DB_URL"] and seen["STRIPE_KEY"] is None and seen["MULTILINE"] is None


def test_only_an_unknown_key_fails_closed(env, tmp_path):
    result = coffer("run", "--only", "DB_URL,NOPE", "--", "touch", "ran", env=env, cwd=tmp_path)
    assert result.returncode == 125
    assert b"NOPE: unknown token" in result.stderr
    assert not (tmp_path / "ran").exists()


def test_preserve_env_keeps_what_is_set(server, env):
    env["DB_URL"] = "mine"
    kept = coffer("run", "--preserve-env", "--", sys.executable, "-c", PRINT_ENV, ALL, "0", env=env)
    assert child_env(kept)["DB_URL"] == "mine"
    assert child_env(kept)["STRIPE_KEY"] == server.values["STRIPE_KEY"]
    replaced = coffer("run", "--", sys.executable, "-c", PRINT_ENV, ALL, "0", env=env)
    assert child_env(replaced)["DB_URL"] == server.values["DB_URL"]


def test_mask_hides_values_even_cut_across_writes(server, env):
    script = (
        "import os, sys, time\n"
        "v = os.environ['STRIPE_KEY']\n"
        "sys.stdout.write('key=' + v[:5]); sys.stdout.flush(); time.sleep(0.3)\n"
        "sys.stdout.write(v[5:] + ' url=' + os.environ['DB_URL'] + '\\n'); sys.stdout.flush()\n"
        "sys.stderr.write('err ' + os.environ['QUOTES'] + '\\n')\n"
        "print(os.environ['MULTILINE'])\n"
    )
    result = coffer("run", "--mask", "--", sys.executable, "-c", script, env=env)
    assert result.returncode == 0
    assert result.stdout.startswith(b"key=*** url=***\n")
    assert result.stderr == b"err ***\n"
    for value in server.values.values():
        for piece in [value, *value.splitlines()]:
            if len(piece) >= 4:
                assert piece.encode() not in result.stdout + result.stderr


def test_mask_passes_each_line_on_before_the_child_ends(server, env):
    script = (
        "import os, sys\n"
        "print('first', os.environ['STRIPE_KEY'], flush=True)\n"
        "sys.stdin.read()\n"
        "print('last')\n"
    )
    process = subprocess.Popen(
        [PYTHON, "-m", "coffer_cli", "run", "--mask", "--", sys.executable, "-c", script],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    start = time.monotonic()
    assert process.stdout.readline() == b"first ***\n"  # while the child still waits
    assert process.poll() is None and time.monotonic() - start < 20
    out, _ = process.communicate(b"", timeout=20)
    assert out == b"last\n" and process.returncode == 0


def test_the_key_is_never_in_coffer_output(server, env):
    for args in (["run", "--", "true"], ["run", "--only", "NOPE", "--", "true"]):
        result = coffer(*args, env=env)
        assert server.keys["main"].encode() not in result.stdout + result.stderr


def test_the_key_can_come_from_a_file_and_only_one_place(server, env, tmp_path):
    key_file = tmp_path / "coffer.key"
    key_file.write_text(env.pop("COFFER_ACCESS_KEY") + "\n")
    env["COFFER_ACCESS_KEY_FILE"] = str(key_file)
    assert coffer("run", "--", "true", env=env).returncode == 0
    env["COFFER_ACCESS_KEY"] = server.keys["main"]
    both = coffer("run", "--", "true", env=env)
    assert both.returncode == 2 and b"not both" in both.stderr
    del env["COFFER_ACCESS_KEY"], env["COFFER_ACCESS_KEY_FILE"]
    none = coffer("run", "--", "true", env=env)
    assert none.returncode == 2 and b"no access key: set COFFER_ACCESS_KEY" in none.stderr
