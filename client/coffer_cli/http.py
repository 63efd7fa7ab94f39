"""Talking to Coffer: one request, retried with backoff inside a total time budget.

Retried: a connection that fails or times out, a 5xx, a 429 (waiting its Retry-After when the
budget allows). Never retried: any other answer, 401 and 403 above all (fail closed at once).
Each try's socket timeout is the budget left, and the body is read in chunks that stop at the
deadline, so a call never takes much longer than `timeout` seconds, whatever the server does.
"""

from __future__ import annotations

import json
import os
import random
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Callable

from coffer_cli import __version__

USER_AGENT = f"coffer-cli/{__version__}"
BACKOFF_BASE = 0.25  # seconds: the first retry waits up to this, then doubling
BACKOFF_CAP = 4.0
READ_CHUNK = 64 * 1024
MIN_TRY = 0.2  # seconds: no try is started with less time than this left


class Unreachable(Exception):
    """Coffer could not be reached or could not answer (network, timeout, 5xx): the only
    failure the fallback may cover."""


class Refused(Exception):
    """Coffer answered with a refusal (4xx); `status` says which. Never covered by the
    fallback."""

    def __init__(self, status: int, message: str, body: bytes = b"") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.body = body


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def ssl_context() -> ssl.SSLContext:
    """Verification always on; COFFER_CA_FILE adds a private CA (SSL_CERT_FILE and
    SSL_CERT_DIR are honoured by OpenSSL's default paths)."""
    return ssl.create_default_context(cafile=os.environ.get("COFFER_CA_FILE") or None)


def error_message(body: bytes, status: int) -> str:
    try:
        message = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {status}"
    return str(message)


class Api:
    def __init__(
        self,
        url: str,
        key: str,
        *,
        timeout: float,
        tries: int,
        sleep: Callable[[float], None] = time.sleep,
        warn: Callable[[str], None] = lambda message: None,
    ) -> None:
        self.url = url.rstrip("/")
        self.key = key
        self.timeout = timeout
        self.tries = tries
        self.sleep = sleep
        self.warn = warn
        self.context = ssl_context() if self.url.startswith("https:") else None

    def request(
        self, method: str, path: str, query: dict[str, str], body: bytes | None = None
    ) -> Response:
        """The 2xx or 422 answer; Refused for another 4xx; Unreachable when the tries or the
        time budget run out."""
        deadline = time.monotonic() + self.timeout
        url = f"{self.url}{path}?{urllib.parse.urlencode(query)}" if query else self.url + path
        last, attempt = "no try was made", 0
        for attempt in range(self.tries):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            wait = None
            try:
                response = self._once(method, url, body, deadline)
            except (OSError, TimeoutError, urllib.error.URLError) as error:
                last = describe(error)
            else:
                if response.status < 400 or response.status == 422:
                    return response
                message = error_message(response.body, response.status)
                if response.status == 429:
                    last = f"HTTP 429: {message}"
                    wait = retry_after(response.headers)
                elif response.status >= 500:
                    last = f"HTTP {response.status}: {message}"
                    wait = retry_after(response.headers)
                    wait = None if wait is None else min(wait, BACKOFF_CAP)
                else:
                    raise Refused(response.status, message, response.body)
            if attempt + 1 == self.tries:
                break
            pause = wait if wait is not None else backoff(attempt)
            room = deadline - time.monotonic() - MIN_TRY  # a last try needs some time
            if pause > room:
                if (wait is not None and last.startswith("HTTP 429")) or room <= 0:
                    break  # waiting as asked, or trying at all, would pass the deadline
                pause = room
            self.warn(f"{last}; retrying in {pause:.1f}s")
            self.sleep(pause)
        if last.startswith("HTTP 429"):
            raise Refused(429, last[len("HTTP 429: ") :])
        tried = f"{attempt + 1} {'try' if attempt == 0 else 'tries'}"
        elapsed = self.timeout - (deadline - time.monotonic())
        raise Unreachable(f"{last}; {tried} in {elapsed:.1f}s")

    def _once(self, method: str, url: str, body: bytes | None, deadline: float) -> Response:
        request = urllib.request.Request(url, data=body, method=method)
        request.add_header("Authorization", f"Bearer {self.key}")
        request.add_header("User-Agent", USER_AGENT)
        request.add_header("Accept", "application/json, */*")
        if body is not None:
            request.add_header("Content-Type", "application/octet-stream")
        timeout = max(0.05, deadline - time.monotonic())
        try:
            answer = urllib.request.urlopen(request, timeout=timeout, context=self.context)
        except urllib.error.HTTPError as error:
            answer = error  # a 4xx or 5xx still has a status and a body
        with answer:
            data = bytearray()
            while True:
                if time.monotonic() > deadline:
                    raise TimeoutError("the answer was too slow to arrive")
                chunk = answer.read(READ_CHUNK)
                if not chunk:
                    break
                data += chunk
            headers = {name.lower(): value for name, value in answer.headers.items()}
            return Response(answer.status, headers, bytes(data))


def backoff(attempt: int) -> float:
    """Exponential backoff with full jitter (AWS's "Exponential Backoff And Jitter")."""
    return random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))


def retry_after(headers: dict[str, str]) -> float | None:
    try:
        return max(0.0, float(headers.get("retry-after", "")))
    except ValueError:
        return None


def describe(error: BaseException) -> str:
    reason = getattr(error, "reason", None)
    if isinstance(reason, BaseException):
        error = reason
    if isinstance(error, (TimeoutError, ssl.SSLError)) or "timed out" in str(error):
        if isinstance(error, ssl.SSLCertVerificationError):
            return f"TLS verification failed: {error.verify_message}"
        return f"timed out ({error})" if not isinstance(error, ssl.SSLError) else f"TLS: {error}"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    return f"{type(error).__name__}: {error}"
