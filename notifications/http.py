"""Sending one webhook request safely: the URL rules, the address check, signing, the request.

- A URL must be `https://` and every address its host resolves to must be public (not
  loopback, private, link-local, site-local, shared, reserved or multicast; an IPv6 address
  embedding an IPv4 one, NAT64 `64:ff9b::/96`, IPv4-compatible `::/96`, IPv4-translated
  `::ffff:0:0:0/96` or IPv4-mapped, is judged by that IPv4 address), unless
  COFFER_WEBHOOK_ALLOW_PRIVATE is on (tests and development). The form checks it when the
  webhook is saved, and `post` checks it again right before each attempt, then connects to the
  very address it checked (a DNS answer that changes in between, "DNS rebinding", cannot send
  the request elsewhere). TLS still verifies the certificate against the URL's host name.
- Development only (COFFER_WEBHOOK_ALLOW_LOCAL, on with DEBUG and never otherwise): a receiver
  on this machine may be added, `http://` or `https://` to 127.0.0.1, localhost or [::1],
  whose every address must then be loopback. Production's rules are the ones above, unchanged.
- Redirects are not followed (a 3xx is a failed attempt), the whole attempt has a deadline
  (COFFER_WEBHOOK_TIMEOUT, 10 s), and at most 64 KiB of the answer is read.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

MAX_RESPONSE_BYTES = 64 * 1024
USER_AGENT = "Coffer-Webhooks/1"
SIGNATURE_HEADER = "X-Coffer-Signature"


class UnsafeURL(ValueError):
    """A webhook URL Coffer will not send to; the message says why, for the form and the log."""


LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    path: str  # path and query, as sent in the request line
    address: str  # the checked IP address to connect to
    tls: bool = True  # plain http only to a local receiver in development


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The X-Coffer-Signature value: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


# IPv6 ranges whose last 32 bits are an IPv4 address the packet may end up at: NAT64's
# well-known prefix (RFC 6052), IPv4-compatible (deprecated) and IPv4-translated (SIIT)
# addresses. IPv4-mapped ones (::ffff:0:0/96) are `ipv4_mapped`. The local-use NAT64 prefix
# 64:ff9b:1::/48 may embed its IPv4 address anywhere: it is not global, so always refused.
EMBEDS_IPV4 = tuple(
    ipaddress.IPv6Network(network) for network in ("64:ff9b::/96", "::/96", "::ffff:0:0:0/96")
)
SITE_LOCAL = ipaddress.IPv6Network("fec0::/10")  # deprecated, still routed inside some sites


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether an address is on the public internet, judging an IPv6 address that embeds an
    IPv4 one by the IPv4 address it leads to."""
    if isinstance(address, ipaddress.IPv6Address):
        if address in SITE_LOCAL:
            return False
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif any(address in network for network in EMBEDS_IPV4):
            address = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.is_global and not address.is_multicast


def is_local_receiver(url: str) -> bool:
    """Whether the URL names a receiver on this machine and development allows one."""
    if not settings.COFFER_WEBHOOK_ALLOW_LOCAL:
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and (parts.hostname or "") in LOCAL_HOSTS


def check_url(url: str) -> tuple[str, int, str]:
    """The URL's host, port and request path, or UnsafeURL saying why it is refused (no DNS)."""
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise UnsafeURL("The URL cannot contain spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeURL("Enter a valid URL, e.g. https://hooks.example.com/coffer.") from None
    if parts.scheme.lower() != "https" and not is_local_receiver(url):
        raise UnsafeURL("The URL must start with https:// (deliveries are signed, not hidden).")
    if not parts.hostname:
        raise UnsafeURL("Enter a valid URL, e.g. https://hooks.example.com/coffer.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeURL("The URL cannot contain a user name or password.")
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    return parts.hostname, port or (80 if parts.scheme.lower() == "http" else 443), path


def resolve(url: str) -> Target:
    """Check the URL, resolve its host and check every address; the target to connect to."""
    host, port, path = check_url(url)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise UnsafeURL(f"The host {host} could not be found.") from None
    addresses = []
    for info in infos:
        try:
            addresses.append(ipaddress.ip_address(str(info[4][0]).split("%")[0]))
        except ValueError:
            continue
    if not addresses:
        raise UnsafeURL(f"The host {host} could not be found.")
    local = is_local_receiver(url)
    if local and not all(address.is_loopback for address in addresses):
        raise UnsafeURL(f"The host {host} does not resolve to this machine only.")
    if not settings.COFFER_WEBHOOK_ALLOW_PRIVATE and not local:
        for address in addresses:
            if not _is_public(address):
                raise UnsafeURL(
                    f"The host {host} resolves to {address}, which is not a public address: "
                    "webhooks are only sent to the internet."
                )
    tls = urlsplit(url).scheme.lower() == "https"
    return Target(host=host, port=port, path=path, address=str(addresses[0]), tls=tls)


def tls_context() -> ssl.SSLContext:
    """The system's trusted CAs, or COFFER_WEBHOOK_CA_FILE's (an internal CA)."""
    return ssl.create_default_context(cafile=settings.COFFER_WEBHOOK_CA_FILE or None)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Plain HTTP to `address` (a local receiver in development, already checked)."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to `address` (already checked), verifying the certificate for `host`."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=tls_context())
        self._address = target.address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Answer:
    status_code: int | None
    duration_ms: int
    body: bytes
    error: str


def post(url: str, body: bytes, headers: dict[str, str]) -> Answer:
    """POST `body` once; never raises for a network problem (the Answer's `error` says it)."""
    timeout = float(settings.COFFER_WEBHOOK_TIMEOUT)
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        target = resolve(url)
    except UnsafeURL as refused:
        return Answer(None, elapsed(), b"", f"Refused: {refused}")
    connection: http.client.HTTPConnection = (
        _PinnedHTTPSConnection(target, timeout)
        if target.tls
        else _PinnedHTTPConnection(target, timeout)
    )
    try:
        connection.request(
            "POST",
            target.path,
            body=body,
            headers={"User-Agent": USER_AGENT, "Content-Type": "application/json", **headers},
        )
        response = connection.getresponse()
        chunks: list[bytes] = []
        kept = 0
        while kept < MAX_RESPONSE_BYTES:
            if time.monotonic() - started > timeout:
                raise TimeoutError
            chunk = response.read1(min(16 * 1024, MAX_RESPONSE_BYTES - kept))
            if not chunk:
                break
            chunks.append(chunk)
            kept += len(chunk)
        return Answer(response.status, elapsed(), b"".join(chunks), "")
    except TimeoutError:
        return Answer(None, elapsed(), b"", f"Timed out after {timeout:g} s.")
    except ssl.SSLError as error:
        return Answer(None, elapsed(), b"", f"TLS error: {error.reason or error}"[:300])
    except (OSError, http.client.HTTPException) as error:
        return Answer(None, elapsed(), b"", f"Connection failed: {error}"[:300])
    finally:
        connection.close()
