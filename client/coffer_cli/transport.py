"""Talking to Coffer: one request, retried with backoff inside a total time budget.

Retried: a connection that fails or times out, a 5xx, a 429 (waiting its Retry-After when the
budget allows). Never retried: any other answer, 401 and 403 above all (fail closed at once).
Every socket operation's timeout is the budget left (set again before each read of the body),
so a call never takes longer than `timeout` seconds, whatever the server does. HTTP(S) proxies
are taken from $https_proxy / $http_proxy, less $no_proxy, as curl does.
"""

from __future__ import annotations

import http.client
import json
import os
import time
import urllib.parse
from collections.abc import Callable
from typing import NamedTuple

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


class Response(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes


def ssl_context(private_ca: bool):  # -> ssl.SSLContext; ssl is imported only for https://
    """Verification always on; for Coffer, COFFER_CA_FILE adds a private CA (SSL_CERT_FILE and
    SSL_CERT_DIR are honoured by OpenSSL's default paths). Another server (the CI's OIDC token
    endpoint) is checked against the system's CAs only."""
    import ssl

    cafile = os.environ.get("COFFER_CA_FILE") if private_ca else None
    return ssl.create_default_context(cafile=cafile or None)


def proxy_for(scheme: str, host: str) -> tuple[str, int] | None:
    """The proxy from $https_proxy / $http_proxy (either case) unless $no_proxy names the host
    (exactly, or as a domain suffix; `*` for every host)."""
    proxy = os.environ.get(f"{scheme}_proxy") or os.environ.get(f"{scheme.upper()}_PROXY")
    if not proxy:
        return None
    bypass = os.environ.get("no_proxy") or os.environ.get("NO_PROXY") or ""
    for entry in (item.strip().lower().lstrip(".") for item in bypass.split(",")):
        if entry == "*" or (entry and (host == entry or host.endswith("." + entry))):
            return None
    parts = urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)
    return parts.hostname or "", parts.port or 80


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
        key: str | None,
        *,
        timeout: float,
        tries: int,
        sleep: Callable[[float], None] = time.sleep,
        warn: Callable[[str], None] = lambda message: None,
        private_ca: bool = True,
    ) -> None:
        """`key` is sent as `Authorization: Bearer` (None: no Authorization); a query in `url`
        is kept and `request`'s own query added to it."""
        self.url = url.rstrip("/")
        parts = urllib.parse.urlsplit(self.url)
        self.scheme, self.host = parts.scheme, parts.hostname or ""
        self.port = parts.port or (443 if self.scheme == "https" else 80)
        self.base = parts.path
        self.base_query = parts.query
        self.key = key
        self.timeout = timeout
        self.tries = tries
        self.sleep = sleep
        self.warn = warn
        self.context = ssl_context(private_ca) if self.scheme == "https" else None
        self.proxy = proxy_for(self.scheme, self.host.lower())

    def request(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        body: bytes | None = None,
        content_type: str = "application/octet-stream",
        headers: dict[str, str] | None = None,
    ) -> Response:
        """The 2xx, 304 or 422 answer; Refused for another 4xx; Unreachable when the tries or
        the time budget run out. `headers` are sent as well (e.g. If-None-Match)."""
        deadline = time.monotonic() + self.timeout
        search = "&".join(filter(None, [self.base_query, urllib.parse.urlencode(query)]))
        target = (self.base + path or "/") + (f"?{search}" if search else "")
        last, attempt = "no try was made", 0
        for attempt in range(self.tries):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            wait = None
            try:
                response = self._once(method, target, body, content_type, deadline, headers)
            except (OSError, http.client.HTTPException) as error:
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

    def _once(
        self,
        method: str,
        target: str,
        body: bytes | None,
        content_type: str,
        deadline: float,
        extra: dict[str, str] | None = None,
    ) -> Response:
        connection = self._connect(deadline)
        try:
            headers = {"User-Agent": USER_AGENT, "Accept": "application/json, */*", **(extra or {})}
            if self.key is not None:
                headers["Authorization"] = f"Bearer {self.key}"
            if body is not None:
                headers["Content-Type"] = content_type
            if self.proxy is not None and self.scheme == "http":
                target = f"http://{self.host}:{self.port}{target}"  # a plain proxy's form
            connection.request(method, target, body=body, headers=headers)
            answer = connection.getresponse()
            data = bytearray()
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("timed out reading the answer")
                if connection.sock is not None:
                    connection.sock.settimeout(left)  # the deadline holds on every read
                chunk = answer.read(READ_CHUNK)
                if not chunk:
                    break
                data += chunk
            found = {name.lower(): value for name, value in answer.getheaders()}
            return Response(answer.status, found, bytes(data))
        finally:
            connection.close()

    def _connect(self, deadline: float) -> http.client.HTTPConnection:
        timeout = max(0.05, deadline - time.monotonic())
        host, port = self.proxy or (self.host, self.port)
        if self.scheme == "https":
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                host, port, timeout=timeout, context=self.context
            )
            if self.proxy is not None:
                connection.set_tunnel(self.host, self.port)
        else:
            connection = http.client.HTTPConnection(host, port, timeout=timeout)
        return connection


def backoff(attempt: int) -> float:
    """Exponential backoff with full jitter (AWS's "Exponential Backoff And Jitter")."""
    fraction = int.from_bytes(os.urandom(4), "big") / 2**32  # (`random` costs start-up time)
    return fraction * min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)


def retry_after(headers: dict[str, str]) -> float | None:
    try:
        return max(0.0, float(headers.get("retry-after", "")))
    except ValueError:
        return None


def describe(error: BaseException) -> str:
    name = type(error).__name__
    if name == "SSLCertVerificationError":
        return f"TLS verification failed: {getattr(error, 'verify_message', error)}"
    if isinstance(error, TimeoutError) or "timed out" in str(error):
        return "timed out"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    return f"{name}: {error}"
