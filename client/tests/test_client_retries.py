"""Retries: bounded in number and in time, with no fallback for a 429 or a 401."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from coffer_helpers import coffer, coffer_env

KEY = "cfr_" + "K" * 49


@contextmanager
def fake_coffer(status: int, headers: dict[str, str] | None = None) -> Iterator[tuple[str, list]]:
    """A server answering every request with `status`; yields its URL and the requests seen."""
    seen: list[float] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(time.monotonic())
            body = b'{"error": "busy"}'
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def timed(*args: str, env: dict[str, str]):
    start = time.monotonic()
    result = coffer(*args, env=env)
    return result, time.monotonic() - start


def test_a_5xx_is_tried_the_given_number_of_times(cache):
    with fake_coffer(503) as (url, seen):
        result, _ = timed("run", "--tries", "3", "--", "true", env=coffer_env(url, KEY, cache))
    assert result.returncode == 125
    assert len(seen) == 3
    assert b"HTTP 503: busy" in result.stderr
    assert result.stderr.count(b"retrying in") == 2


def test_retries_stop_at_the_total_timeout(cache):
    with fake_coffer(503) as (url, seen):
        result, took = timed(
            "run",
            "--tries",
            "20",
            "--timeout",
            "1.5",
            "--",
            "true",
            env=coffer_env(url, KEY, cache),
        )
    assert result.returncode == 125
    assert took < 1.5 + 1.5  # the budget, plus the interpreter's start
    assert 2 <= len(seen) < 20


def test_a_server_that_never_answers_is_given_up_on_in_time(cache):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()  # accepts connections, never answers
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        result, took = timed("run", "--timeout", "1", "--", "true", env=coffer_env(url, KEY, cache))
    assert result.returncode == 125
    assert b"timed out" in result.stderr
    assert took < 1 + 1.5


def test_a_429_past_the_budget_is_not_waited_for_nor_covered_by_the_fallback(cache):
    with fake_coffer(429, {"Retry-After": "60"}) as (url, seen):
        result, took = timed("run", "--timeout", "5", "--", "true", env=coffer_env(url, KEY, cache))
    assert result.returncode == 125
    assert len(seen) == 1 and took < 4
    assert b"HTTP 429" in result.stderr


def test_a_refusal_is_not_retried(cache):
    with fake_coffer(401) as (url, seen):
        result = coffer("run", "--", "true", env=coffer_env(url, KEY, cache))
    assert result.returncode == 125 and len(seen) == 1
    assert b"access key cfr_KKKKKK\xe2\x80\xa6 refused (HTTP 401): busy" in result.stderr
    assert KEY.encode() not in result.stderr
