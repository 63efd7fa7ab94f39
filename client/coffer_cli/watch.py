"""`coffer run --watch`: keep CMD running, and when a value it was given changes, give it the
new values: restart it (SIGTERM, a grace period, SIGKILL, then start it again with the new
environment) or send it a reload signal. A random delay of up to `--stagger` seconds comes
first, so a fleet started from one deploy does not restart at the same moment.

How a change is heard: a long poll (`HEAD /api/v1/values?wait=50` with `If-None-Match`), which
Coffer answers with the new ETag as soon as something the key can read changes (reading no
value), or with 304 when the wait ends. The values are fetched (`GET`, an audited read) after the
stagger delay, so a fleet's reads are spread over it too.
A server that cannot hold requests says `Coffer-Wait: 0` and is polled every `--interval`
seconds instead (with jitter). Coffer unreachable: the watch waits and tries again, CMD keeps
running. The access key refused (401/403: revoked, expired): the watch stops with a message;
CMD keeps running with the values it has, unless `--exit-on-revoke` (then it is stopped and
coffer exits 125).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from coffer_cli import runner
from coffer_cli.mask import Masker
from coffer_cli.transport import Api, Refused, Unreachable

WAIT = 50  # seconds asked of the server per long poll (it holds at most 60)
TICK = 0.2  # seconds: how often the main loop looks at the child between events


def fraction() -> float:
    return int.from_bytes(os.urandom(4), "big") / 2**32


class Event(NamedTuple):
    kind: str  # "changed", "refused", "unreachable", "unresolved"
    values: dict[str, str] | None = None
    error: Exception | None = None
    message: str = ""


class Watcher(threading.Thread):
    """The long-poll loop, in a daemon thread; it reports to the main thread through `events`."""

    def __init__(
        self,
        api: Api,
        query: dict[str, str],
        etag: str | None,
        values: dict[str, str],
        interval: float,
    ) -> None:
        super().__init__(name="coffer-watch", daemon=True)
        self.api, self.query, self.etag, self.values = api, query, etag, values
        self.interval = interval
        self.events: queue.Queue[Event] = queue.Queue()
        self.stopped = threading.Event()
        self.unreachable = False

    def pause(self) -> None:
        self.stopped.wait(self.interval * (0.75 + 0.5 * fraction()))

    def run(self) -> None:
        while not self.stopped.is_set():
            headers = {"If-None-Match": self.etag} if self.etag else {}
            started = time.monotonic()
            try:
                response = self.api.request(
                    "HEAD", "/api/v1/values", {**self.query, "wait": str(WAIT)}, headers=headers
                )
            except Refused as error:
                if error.status in (401, 403):
                    self.events.put(Event("refused", error=error))
                    return
                self.events.put(
                    Event("unreachable", message=f"HTTP {error.status}: {error.message}")
                )
                self.pause()
                continue
            except Unreachable as error:
                if not self.unreachable:
                    self.events.put(Event("unreachable", message=str(error)))
                self.unreachable = True
                self.pause()
                continue
            self.unreachable = False
            held = response.headers.get("coffer-wait", "0") != "0"
            etag = response.headers.get("etag") or None
            if response.status == 200 and (etag is None or etag != self.etag):
                self.etag = etag
                self.events.put(Event("changed"))
            quick = time.monotonic() - started < 1
            if not held or etag is None or (response.status == 304 and quick):
                self.pause()  # a server that does not hold requests: poll at --interval

    def fetch(self) -> Event:
        """GET the values now (after the stagger): "changed" with them, or what went wrong."""
        try:
            response = self.api.request("GET", "/api/v1/values", self.query)
        except Refused as error:
            if error.status in (401, 403):
                return Event("refused", error=error)
            return Event("unreachable", message=f"HTTP {error.status}: {error.message}")
        except Unreachable as error:
            return Event("unreachable", message=str(error))
        if response.headers.get("etag"):
            self.etag = response.headers["etag"]
        if response.status != 200:
            return Event("unresolved")
        try:
            values = json.loads(response.body)
        except ValueError:
            return Event("unreachable", message="the answer could not be read")
        if not isinstance(values, dict) or values == self.values:
            return Event("same")
        self.values = values
        return Event("changed", values=values)


class Child:
    """The running CMD, its output pumps (--mask) and the signals coffer forwards to it."""

    def __init__(self, command: Sequence[str], mask: bool) -> None:
        self.command, self.mask = list(command), mask
        self.process: Any = None
        self.pumps: list[threading.Thread] = []

    def start(self, env: dict[str, str], values: dict[str, str]) -> None:
        self.process = runner.start(self.command, env, piped=self.mask)
        self.pumps = []
        if self.mask:
            secrets = list(values.values())
            for stream, target in ((self.process.stdout, 1), (self.process.stderr, 2)):
                thread = threading.Thread(
                    target=runner.pump,
                    args=(stream.fileno(), target, Masker(secrets)),
                    daemon=True,
                )
                thread.start()
                self.pumps.append(thread)

    def send(self, number: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(number)

    def poll(self) -> int | None:
        status = self.process.poll()
        if status is not None:
            self.finish()
        return status

    def finish(self) -> None:
        for thread in self.pumps:
            thread.join()
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()

    def stop(self, grace: float) -> int:
        """SIGTERM, up to `grace` seconds, then SIGKILL; the exit status."""
        self.send(signal.SIGTERM)
        try:
            status = self.process.wait(timeout=grace)
        except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired
            self.process.kill()
            status = self.process.wait()
        self.finish()
        return status


def status_of(code: int) -> int:
    return 128 - code if code < 0 else code


def supervise(
    command: Sequence[str],
    make_env: Callable[[dict[str, str]], dict[str, str]],
    values: dict[str, str],
    watcher: Watcher,
    *,
    mask: bool,
    reload_signal: int | None,
    grace: float,
    stagger: float,
    exit_on_revoke: bool,
    say: Callable[[str], None],
    on_refused: Callable[[Refused], str],
) -> int:
    """Run CMD until it exits by itself (its status is coffer's), applying each change."""
    child = Child(command, mask)
    early: list[int] = []

    def forward(number: int, frame: object) -> None:
        if child.process is None:
            early.append(number)
        else:
            child.send(number)

    previous = {number: signal.signal(number, forward) for number in runner.FORWARDED}
    try:
        child.start(make_env(values), values)
        for number in early:
            child.send(number)
        watcher.start()
        due: float | None = None  # when the pending change is applied (after the stagger)
        pending: dict[str, str] | None = None
        while True:
            status = child.poll()
            if status is not None:
                return status_of(status)
            timeout = TICK if due is None else max(0.0, min(TICK, due - time.monotonic()))
            try:
                event = watcher.events.get(timeout=timeout)
            except queue.Empty:
                event = None
            if watcher.stopped.is_set():
                event, due = None, None  # refused once: said once; CMD runs on unwatched
            if event is not None and event.kind == "changed" and due is None:
                delay = stagger * fraction()
                due = time.monotonic() + delay
                what = (
                    "sending SIG" + signal.Signals(reload_signal).name[3:]
                    if (reload_signal is not None)
                    else "restarting CMD"
                )
                say(f"values changed; {what} in {delay:.1f}s")
            if due is not None and time.monotonic() >= due:
                due, event = None, watcher.fetch()
                if event.kind == "changed":
                    pending = event.values
            if event is not None and event.kind == "refused":
                assert isinstance(event.error, Refused)
                watcher.stopped.set()  # (when the GET was refused, the long poll would be too)
                message = on_refused(event.error)
                if exit_on_revoke:
                    say(f"{message}; the watch stopped and CMD is stopped (--exit-on-revoke)")
                    child.stop(grace)
                    return 125
                say(f"{message}; the watch stopped, CMD keeps running with the values it has")
            elif event is not None and event.kind == "unreachable":
                say(
                    f"warning: Coffer cannot be reached ({event.message}); CMD keeps running, "
                    "the watch tries again"
                )
            elif event is not None and event.kind == "unresolved":
                say(
                    "warning: some --only key cannot be resolved any more; CMD keeps running "
                    "with the values it has"
                )
            if pending is not None:
                values, pending = pending, None
                if reload_signal is not None:
                    child.send(reload_signal)
                else:
                    child.stop(grace)
                    child.start(make_env(values), values)
                    say("CMD restarted with the new values")
    finally:
        watcher.stopped.set()
        for number, handler in previous.items():
            signal.signal(number, handler)
