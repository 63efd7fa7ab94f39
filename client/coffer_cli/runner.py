"""`coffer run`'s child: started with its environment, sent the signals Coffer receives, and
(with --mask) its output passed through a Masker, line by line."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Sequence

from coffer_cli.mask import Masker

# Forwarded to the child as they arrive; its exit status is then Coffer's.
FORWARDED = [
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGWINCH,
]
NOT_EXECUTABLE, NOT_FOUND = 126, 127  # as a shell (and env) report them
READ_CHUNK = 65536


def write_all(descriptor: int, data: bytes) -> None:
    while data:
        written = os.write(descriptor, data)
        data = data[written:]


def pump(source: int, target: int, masker: Masker) -> None:
    """Copy the child's stream to ours, masked, until its end. A closed target (a reader
    that went away) discards the rest but keeps draining, so the child never blocks."""
    broken = False
    while True:
        chunk = os.read(source, READ_CHUNK)
        out = masker.feed(chunk) if chunk else masker.flush()
        if out and not broken:
            try:
                write_all(target, out)
            except OSError:
                broken = True
        if not chunk:
            return


def run(command: Sequence[str], env: dict[str, str], mask: list[str] | None) -> int:
    """Run `command`; its exit status, or 128 + N when signal N ended it."""
    child: subprocess.Popen | None = None
    early: list[int] = []  # signals that came before the child existed: sent once it does

    def forward(number: int, frame: object) -> None:
        if child is None:
            early.append(number)
        elif child.poll() is None:
            child.send_signal(number)

    previous = {number: signal.signal(number, forward) for number in FORWARDED}
    try:
        child = start(command, env, piped=mask is not None)
        for number in early:
            child.send_signal(number)
        pumps = []
        if mask is not None:
            for stream, target in ((child.stdout, 1), (child.stderr, 2)):
                assert stream is not None
                thread = threading.Thread(
                    target=pump, args=(stream.fileno(), target, Masker(mask)), daemon=True
                )
                thread.start()
                pumps.append(thread)
        status = child.wait()
        for thread in pumps:
            thread.join()
        for pipe in (child.stdout, child.stderr):
            if pipe is not None:
                pipe.close()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    return 128 - status if status < 0 else status


def start(command: Sequence[str], env: dict[str, str], *, piped: bool) -> subprocess.Popen:
    output = subprocess.PIPE if piped else None
    try:
        return subprocess.Popen(list(command), env=env, stdout=output, stderr=output, bufsize=0)
    except FileNotFoundError:
        raise LaunchError(NOT_FOUND, f"{command[0]}: command not found") from None
    except PermissionError:
        raise LaunchError(NOT_EXECUTABLE, f"{command[0]}: permission denied") from None
    except OSError as error:
        raise LaunchError(NOT_EXECUTABLE, f"{command[0]}: {error.strerror}") from None


class LaunchError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
