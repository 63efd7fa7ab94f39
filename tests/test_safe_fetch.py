"""lib/safe_fetch.py: the one outbound HTTPS request, shared by webhook deliveries and OIDC
issuer fetches (identities used to reach into notifications' private connection class)."""

from __future__ import annotations

import pytest

from lib import safe_fetch
from tests.webhook_receiver import Receiver, Reply

HEADERS = {"User-Agent": "Coffer-Test/1"}


@pytest.fixture
def receiver(tmp_path, settings):
    settings.COFFER_WEBHOOK_ALLOW_PRIVATE = True  # the receiver is on 127.0.0.1
    with Receiver(tmp_path) as running:
        settings.COFFER_WEBHOOK_CA_FILE = str(running.certificate)
        yield running


def post(url: str, **kwargs) -> safe_fetch.Reply:
    options = {"headers": HEADERS, "timeout": 2.0, "max_bytes": 10, "body": b"{}", **kwargs}
    return safe_fetch.fetch("POST", url, **options)


def test_a_short_answer_is_read_whole(receiver):
    receiver.plan = [Reply(201, body=b"0123456789")]
    reply = post(receiver.url())
    assert (reply.status, reply.body, reply.complete) == (201, b"0123456789", True)
    assert receiver.received[0].headers["User-Agent"] == "Coffer-Test/1"


def test_a_longer_answer_is_cut_at_max_bytes_and_says_so(receiver):
    receiver.plan = [Reply(200, body=b"x" * 50_000)]
    reply = post(receiver.url())
    assert (reply.body, reply.complete) == (b"x" * 10, False)


def test_a_redirect_is_not_followed(receiver):
    receiver.plan = [Reply(302, headers={"Location": "https://127.0.0.1:1/elsewhere"})]
    assert post(receiver.url()).status == 302
    assert len(receiver.received) == 1


def test_a_private_address_is_refused_before_anything_is_sent(receiver, settings):
    settings.COFFER_WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(safe_fetch.UnsafeURL, match="127.0.0.1, which is not a public address"):
        post(receiver.url())
    assert receiver.received == []


def test_plain_http_is_refused_unless_the_caller_allows_it(receiver):
    with pytest.raises(safe_fetch.UnsafeURL, match="must start with https://"):
        post(receiver.url().replace("https://", "http://"))


def test_the_whole_exchange_has_a_deadline(receiver):
    receiver.plan = [Reply(200, delay=1.5)]
    with pytest.raises(TimeoutError):
        post(receiver.url(), timeout=0.5)
