"""Sending one webhook request: signing it, and posting it through lib/safe_fetch.py.

The URL rules and the address check are lib/safe_fetch.py's (https, public addresses only,
checked right before each attempt and the connection pinned to the checked address, no
redirects): the form checks the URL when the webhook is saved, and `post` again at each
attempt. A 3xx is a failed attempt, the whole attempt has a deadline (COFFER_WEBHOOK_TIMEOUT,
10 s), and at most 64 KiB of the answer is read.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ssl
import time
from dataclasses import dataclass

from django.conf import settings

from lib import safe_fetch

MAX_RESPONSE_BYTES = 64 * 1024
USER_AGENT = "Coffer-Webhooks/1"
SIGNATURE_HEADER = "X-Coffer-Signature"


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The X-Coffer-Signature value: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


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
        reply = safe_fetch.fetch(
            "POST",
            url,
            body=body,
            headers={"User-Agent": USER_AGENT, "Content-Type": "application/json", **headers},
            timeout=timeout,
            max_bytes=MAX_RESPONSE_BYTES,
        )
        return Answer(reply.status, elapsed(), reply.body, "")
    except safe_fetch.UnsafeURL as refused:
        return Answer(None, elapsed(), b"", f"Refused: {refused}")
    except TimeoutError:
        return Answer(None, elapsed(), b"", f"Timed out after {timeout:g} s.")
    except ssl.SSLError as error:
        return Answer(None, elapsed(), b"", f"TLS error: {error.reason or error}"[:300])
    except (OSError, http.client.HTTPException) as error:
        return Answer(None, elapsed(), b"", f"Connection failed: {error}"[:300])
