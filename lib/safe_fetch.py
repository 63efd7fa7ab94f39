"""One outbound HTTPS request that cannot be turned against Coffer's own network.

Used by every request Coffer makes to an address someone typed in: webhook deliveries
(notifications/http.py) and an OIDC issuer's discovery document and keys (identities/oidc.py).

- A URL must be `https://` and every address its host resolves to must be public (not
  loopback, private, link-local, site-local, shared, reserved or multicast; an IPv6 address
  embedding an IPv4 one, NAT64 `64:ff9b::/96`, IPv4-compatible `::/96`, IPv4-translated
  `::ffff:0:0:0/96` or IPv4-mapped, is judged by that IPv4 address), unless
  COFFER_WEBHOOK_ALLOW_PRIVATE is on (tests and development). `fetch` checks it right before
  each request, then connects to the very address it checked (a DNS answer that changes in
  between, "DNS rebinding", cannot send the request elsewhere). TLS still verifies the
  certificate against the URL's host name, with the system's CAs or COFFER_WEBHOOK_CA_FILE's.
- Redirects are not followed (the caller sees the 3xx), the whole exchange has a deadline, and
  at most `max_bytes` of the answer are read.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

READ_CHUNK = 16 * 1024


class UnsafeURL(ValueError):
    """A URL Coffer will not send to; the message says why, for a form and the log."""


class Deadline(TimeoutError):
    """The whole exchange took longer than its timeout (each socket read may not have)."""


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    path: str  # path and query, as sent in the request line
    address: str  # the checked IP address to connect to


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes  # at most max_bytes
    complete: bool  # False: the answer was longer than max_bytes


# IPv6 ranges whose last 32 bits are an IPv4 address the packet may end up at: NAT64's
# well-known prefix (RFC 6052), IPv4-compatible (deprecated) and IPv4-translated (SIIT)
# addresses. IPv4-mapped ones (::ffff:0:0/96) are `ipv4_mapped`. The local-use NAT64 prefix
# 64:ff9b:1::/48 may embed its IPv4 address anywhere: it is not global, so always refused.
EMBEDS_IPV4 = tuple(
    ipaddress.IPv6Network(network) for network in ("64:ff9b::/96", "::/96", "::ffff:0:0:0/96")
)
SITE_LOCAL = ipaddress.IPv6Network("fec0::/10")  # deprecated, still routed inside some sites


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
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


def check_url(url: str) -> tuple[str, int, str]:
    """The URL's host, port and request path, or UnsafeURL saying why it is refused (no DNS)."""
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise UnsafeURL("The URL cannot contain spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeURL("Enter a valid URL, e.g. https://hooks.example.com/coffer.") from None
    if parts.scheme.lower() != "https":
        raise UnsafeURL("The URL must start with https:// (deliveries are signed, not hidden).")
    if not parts.hostname:
        raise UnsafeURL("Enter a valid URL, e.g. https://hooks.example.com/coffer.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeURL("The URL cannot contain a user name or password.")
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    return parts.hostname, port or 443, path


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
    if not settings.COFFER_WEBHOOK_ALLOW_PRIVATE:
        for address in addresses:
            if not is_public(address):
                raise UnsafeURL(
                    f"The host {host} resolves to {address}, which is not a public address: "
                    "webhooks are only sent to the internet."
                )
    return Target(host=host, port=port, path=path, address=str(addresses[0]))


def tls_context() -> ssl.SSLContext:
    """The system's trusted CAs, or COFFER_WEBHOOK_CA_FILE's (an internal CA)."""
    return ssl.create_default_context(cafile=settings.COFFER_WEBHOOK_CA_FILE or None)


class PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to `address` (already checked), verifying the certificate for `host`."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=tls_context())
        self._address = target.address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def _plain_http(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    parts = urlsplit(url)
    try:
        port = parts.port or 80
    except ValueError:
        raise UnsafeURL("Enter a valid URL.") from None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return http.client.HTTPConnection(parts.hostname or "", port, timeout=timeout), path


def fetch(
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    timeout: float,
    max_bytes: int,
    body: bytes | None = None,
    allow_plain_http: bool = False,
) -> Reply:
    """One request under the rules above. Raises UnsafeURL (refused, nothing sent), Deadline
    (the whole exchange took more than `timeout` seconds), ssl.SSLError, OSError or
    http.client.HTTPException. `allow_plain_http` (development only, the caller's setting)
    lets an `http://` URL through unchecked."""
    started = time.monotonic()
    connection: http.client.HTTPConnection
    if allow_plain_http and urlsplit(url).scheme == "http":
        connection, path = _plain_http(url, timeout)
    else:
        target = resolve(url)
        connection, path = PinnedHTTPSConnection(target, timeout), target.path
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        chunks: list[bytes] = []
        kept = 0
        while kept <= max_bytes:  # one byte more than wanted tells a longer answer
            if time.monotonic() - started > timeout:
                raise Deadline
            chunk = response.read1(min(READ_CHUNK, max_bytes + 1 - kept))
            if not chunk:
                break
            chunks.append(chunk)
            kept += len(chunk)
        answer = b"".join(chunks)
        return Reply(response.status, answer[:max_bytes], complete=len(answer) <= max_bytes)
    finally:
        connection.close()
