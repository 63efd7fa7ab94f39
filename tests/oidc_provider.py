"""An OpenID Connect provider for people, for the tests: the issuer of tests/oidc_issuer.py
(HTTPS on 127.0.0.1, discovery, JWKS) with the authorization-code flow on top. /authorize
approves at once, as the configured person, and sends the browser back with a code and the
state; /token checks the client, the redirect URI and the PKCE verifier and answers with an ID
token signed by the issuer's key; /userinfo answers the access token's person.

    with Provider(tmp_path, email="ada@example.com") as provider:
        provider.url                 # the issuer (and COFFER_OIDC_SSO_SERVER_URL)
        provider.person["email_verified"] = False
        provider.authorize_requests  # the query of each /authorize, to check prompt=login
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt

from tests.oidc_issuer import Issuer

CLIENT_ID = "coffer-web"
CLIENT_SECRET = "test-client-secret"


class Provider(Issuer):
    def __init__(
        self,
        folder: Path,
        *,
        email: str = "ada@example.com",
        sub: str = "person-1",
        email_verified: bool = True,
    ) -> None:
        super().__init__(folder)
        self.person: dict[str, Any] = {
            "sub": sub,
            "email": email,
            "email_verified": email_verified,
            "name": "Ada Lovelace",
            "preferred_username": email.partition("@")[0],
        }
        self.codes: dict[str, dict[str, Any]] = {}
        self.access_tokens: dict[str, dict[str, Any]] = {}
        self.authorize_requests: list[dict[str, str]] = []

    def discovery(self) -> dict[str, Any]:
        return {
            "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token",
            "userinfo_endpoint": f"{self.url}/userinfo",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "code_challenge_methods_supported": ["S256"],
        }

    def handle(self, request: http.server.BaseHTTPRequestHandler, method: str) -> bool:
        path = urlsplit(request.path).path
        if method == "GET" and path == "/authorize":
            self._authorize(request)
        elif method == "POST" and path == "/token":
            self._token(request)
        elif method == "GET" and path == "/userinfo":
            self._userinfo(request)
        else:
            return False
        return True

    # --- the endpoints -------------------------------------------------------------------------

    def _authorize(self, request: http.server.BaseHTTPRequestHandler) -> None:
        query = {k: v[0] for k, v in parse_qs(urlsplit(request.path).query).items()}
        self.authorize_requests.append(query)
        if query.get("client_id") != CLIENT_ID or query.get("response_type") != "code":
            self._json(request, 400, {"error": "invalid_request"})
            return
        code = secrets.token_urlsafe(24)
        self.codes[code] = {
            "redirect_uri": query.get("redirect_uri", ""),
            "nonce": query.get("nonce"),
            "code_challenge": query.get("code_challenge"),
            "person": dict(self.person),
        }
        target = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"
        request.send_response(302)
        request.send_header("Location", target)
        request.send_header("Content-Length", "0")
        request.end_headers()

    def _token(self, request: http.server.BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(request.rfile.read(length).decode()).items()}
        client_id, secret = form.get("client_id"), form.get("client_secret")
        basic = request.headers.get("Authorization", "")
        if basic.startswith("Basic "):
            client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
        grant = self.codes.pop(form.get("code", ""), None)
        if (
            client_id != CLIENT_ID
            or secret != CLIENT_SECRET
            or grant is None
            or form.get("grant_type") != "authorization_code"
            or form.get("redirect_uri") != grant["redirect_uri"]
            or not _pkce_matches(form.get("code_verifier", ""), grant["code_challenge"])
        ):
            self._json(request, 400, {"error": "invalid_grant"})
            return
        access_token = secrets.token_urlsafe(24)
        self.access_tokens[access_token] = grant["person"]
        now = int(time.time())
        claims = {
            **grant["person"],
            "iss": self.url,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            **({"nonce": grant["nonce"]} if grant["nonce"] else {}),
        }
        signing = self.keys[0]
        id_token = jwt.encode(
            claims, signing.private, algorithm=signing.algorithm, headers={"kid": signing.kid}
        )
        self._json(
            request,
            200,
            {
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": id_token,
            },
        )

    def _userinfo(self, request: http.server.BaseHTTPRequestHandler) -> None:
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        person = self.access_tokens.get(bearer)
        if person is None:
            self._json(request, 401, {"error": "invalid_token"})
            return
        self._json(request, 200, person)

    @staticmethod
    def _json(request: http.server.BaseHTTPRequestHandler, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    # --- Coffer's settings for this provider ------------------------------------------------

    def settings(self, *, link_by_email: bool = False) -> dict[str, Any]:
        """The settings COFFER_OIDC_SSO_* would give (for override_settings)."""
        from django.conf import settings

        csp: dict[str, list[str]] = {k: list(v) for k, v in settings.SECURE_CSP.items()}
        csp["form-action"].append(self.url)
        return {
            "SOCIALACCOUNT_PROVIDERS": {
                "openid_connect": {
                    "OAUTH_PKCE_ENABLED": True,
                    "EMAIL_AUTHENTICATION": link_by_email,
                    "APPS": [
                        {
                            "provider_id": "sso",
                            "name": "Acme SSO",
                            "client_id": CLIENT_ID,
                            "secret": CLIENT_SECRET,
                            "settings": {"server_url": self.url},
                        }
                    ],
                }
            },
            "SECURE_CSP": csp,
        }


def _pkce_matches(verifier: str, challenge: str | None) -> bool:
    if not challenge:
        return False
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == challenge
