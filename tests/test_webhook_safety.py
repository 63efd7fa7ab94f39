"""Where a webhook may be sent: https only, public addresses only (checked when it is saved and
again, against the address actually connected to, right before each attempt)."""

from __future__ import annotations

import socket

import pytest

from lib.safe_fetch import UnsafeURL, check_url, resolve
from notifications import http as webhook_http
from notifications.delivery import attempt_delivery
from tests.factories import make_delivery, make_webhook

PUBLIC = "93.184.216.34"


def fake_dns(monkeypatch, answers: dict[str, list[str]]) -> list[str]:
    """getaddrinfo answering `answers` (host -> addresses); returns the hosts looked up."""
    asked: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        asked.append(host)
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in answers[host]
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://hooks.example.com/x", "must start with https://"),
        ("ftp://hooks.example.com/x", "must start with https://"),
        ("https:///nohost", "Enter a valid URL"),
        ("https://user:pw@hooks.example.com/", "user name or password"),
        ("https://hooks.example.com/a b", "spaces or control characters"),
        ("https://hooks.example.com:99999/", "Enter a valid URL"),
        ("hooks.example.com", "must start with https://"),
    ],
)
def test_malformed_or_plain_http_urls_are_refused(url, message):
    with pytest.raises(UnsafeURL, match=message):
        check_url(url)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.1.2.3",
        "10.0.0.1",
        "10.255.255.254",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        # IPv6 addresses that lead to a private IPv4 address, and site-local ones
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b:1::a00:1",  # local-use NAT64
        "64:ff9b:1:abcd::808:808",  # local-use NAT64: its IPv4 address can be anywhere
        "::a00:1",  # IPv4-compatible 10.0.0.1
        "::7f00:1",  # IPv4-compatible 127.0.0.1
        "::ffff:0:a00:1",  # IPv4-translated 10.0.0.1
        "::ffff:0:a9fe:a9fe",  # IPv4-translated 169.254.169.254
        "fec0::1",  # site-local
        "fec0::808:808",
    ],
)
def test_private_addresses_are_refused(settings, address):
    settings.COFFER_WEBHOOK_ALLOW_PRIVATE = False
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(UnsafeURL, match="not a public address"):
        resolve(f"https://{host}/hook")


@pytest.mark.parametrize("address", ["64:ff9b::808:808", "::ffff:0:808:808", "2606:4700::1111"])
def test_an_ipv6_address_leading_to_a_public_one_is_accepted(settings, address):
    """NAT64 of a public address (an IPv6-only network reaching an IPv4 host) is public."""
    settings.COFFER_WEBHOOK_ALLOW_PRIVATE = False
    assert resolve(f"https://[{address}]/hook").address == address


def test_a_host_name_resolving_to_a_private_address_is_refused(settings, monkeypatch):
    settings.COFFER_WEBHOOK_ALLOW_PRIVATE = False
    fake_dns(monkeypatch, {"internal.example.com": [PUBLIC, "10.1.2.3"]})
    with pytest.raises(UnsafeURL, match="resolves to 10.1.2.3"):
        resolve("https://internal.example.com/hook")


def test_a_public_address_is_accepted_and_pinned(settings, monkeypatch):
    settings.COFFER_WEBHOOK_ALLOW_PRIVATE = False
    fake_dns(monkeypatch, {"hooks.example.com": [PUBLIC]})
    target = resolve("https://hooks.example.com:8443/coffer?x=1")
    assert (target.host, target.port, target.path, target.address) == (
        "hooks.example.com",
        8443,
        "/coffer?x=1",
        PUBLIC,
    )


def test_an_unknown_host_is_refused(settings, monkeypatch):
    fake_dns(monkeypatch, {})
    with pytest.raises(UnsafeURL, match="could not be found"):
        resolve("https://nowhere.example.com/")


def test_allow_private_lets_loopback_through(settings):
    settings.COFFER_WEBHOOK_ALLOW_PRIVATE = True
    assert resolve("https://127.0.0.1:9/hook").address == "127.0.0.1"


@pytest.mark.django_db
def test_dns_rebinding_is_caught_at_delivery_time(settings, monkeypatch, workspace):
    """Public when saved, private when sent: the attempt is refused and nothing connects."""
    settings.COFFER_WEBHOOK_ALLOW_PRIVATE = False
    fake_dns(monkeypatch, {"rebind.example.com": [PUBLIC]})
    resolve("https://rebind.example.com/hook")  # what the form checks
    webhook, _ = make_webhook(workspace, url="https://rebind.example.com/hook")
    delivery = make_delivery(webhook)
    asked = fake_dns(monkeypatch, {"rebind.example.com": ["169.254.169.254"]})
    connections: list[object] = []
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: connections.append(a) or 1 / 0)

    status = attempt_delivery(str(delivery.pk))

    assert asked == ["rebind.example.com"], "resolved again right before sending"
    assert connections == [], "no connection to the rebound address"
    (attempt,) = delivery.attempts.all()
    assert attempt.status_code is None and "169.254.169.254" in attempt.error
    assert status == "retrying"


@pytest.mark.django_db
def test_the_connection_goes_to_the_checked_address(settings, monkeypatch, workspace):
    settings.COFFER_WEBHOOK_ALLOW_PRIVATE = False
    fake_dns(monkeypatch, {"hooks.example.com": [PUBLIC]})
    connected: list[tuple] = []

    def create_connection(address, *args, **kwargs):
        connected.append(address)
        raise ConnectionRefusedError("refused")

    monkeypatch.setattr(socket, "create_connection", create_connection)
    answer = webhook_http.post("https://hooks.example.com/hook", b"{}", {})
    assert connected == [(PUBLIC, 443)]
    assert answer.status_code is None and "Connection failed" in answer.error
