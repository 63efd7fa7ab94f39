"""`coffer run --watch` in the background, with a child that writes down what happens to it:
the client's watch tests and the browser test that edits a value in the UI share it.

The child is a small Python script that appends one line per event to a file ("start PID
VALUE", "term PID", "hup PID"); the tests wait for lines (within bounds well above what the
watch needs, which `bench/longpoll.py --watchers` measures), never for a fixed time."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from coffer_helpers import PYTHON, coffer_env

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
