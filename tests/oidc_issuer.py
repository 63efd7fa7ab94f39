"""An OIDC issuer for the tests: an HTTPS server on 127.0.0.1 (the webhook receiver's
self-signed certificate) serving a discovery document and a JWKS, with RSA and EC signing keys
made by `cryptography`, able to rotate its keys; and hostile tokens it would never sign.

    with Issuer(tmp_path) as issuer:
        token = issuer.token(repository="acme/app")          # RS256, GitHub Actions' claims
        issuer.rotate()                                      # new keys; the old ones are gone
        issuer.fetches                                       # how many JWKS requests it served
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import ssl
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.webhook_receiver import self_signed_certificate

AUDIENCE = "https://coffer.example"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def github_claims(issuer: str, **overrides: Any) -> dict[str, Any]:
    """The claims of a GitHub Actions job token (deploying main of acme/app to production)."""
    now = int(time.time())
    claims = {
        "iss": issuer,
        "aud": AUDIENCE,
        "sub": "repo:acme/app:environment:production",
        "repository": "acme/app",
        "repository_owner": "acme",
        "ref": "refs/heads/main",
        "environment": "production",
        "workflow": "deploy",
        "job_workflow_ref": "acme/app/.github/workflows/deploy.yml@refs/heads/main",
        "run_id": "1234567890",
        "jti": str(uuid.uuid4()),
        "iat": now,
        "nbf": now - 5,
        "exp": now + 300,
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


class SigningKey:
    def __init__(self, algorithm: str) -> None:
        self.algorithm = algorithm
        self.kid = f"{algorithm.lower()}-{uuid.uuid4().hex[:8]}"
        self.private: Any
        if algorithm == "RS256":
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            self.private = ec.generate_private_key(ec.SECP256R1())

    @property
    def jwk(self) -> dict[str, Any]:
        public_key: Any = self.private.public_key()
        kind: Any = RSAAlgorithm if self.algorithm == "RS256" else ECAlgorithm
        public = json.loads(kind.to_jwk(public_key))
        return {**public, "kid": self.kid, "use": "sig", "alg": self.algorithm}

    @property
    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


class Issuer:
    def __init__(self, folder: Path, *, tls: bool = True) -> None:
        self.certificate, key = self_signed_certificate(folder)
        self.keys: list[SigningKey] = [SigningKey("RS256"), SigningKey("ES256")]
        self.fetches = 0
        issuer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                if issuer.handle(self, "GET"):
                    return
                if self.path == "/.well-known/openid-configuration":
                    document: dict[str, Any] = {
                        "issuer": issuer.url,
                        "jwks_uri": f"{issuer.url}/jwks",
                        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                        **issuer.discovery(),
                    }
                elif self.path == "/jwks":
                    issuer.fetches += 1
                    document = {"keys": [signing.jwk for signing in issuer.keys]}
                else:
                    self.send_error(404)
                    return
                body = json.dumps(document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                if not issuer.handle(self, "POST"):
                    self.send_error(404)

            def log_message(self, format, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls:  # plain http only for COFFER_OIDC_ALLOW_INSECURE_ISSUERS' own test
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.certificate, key)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.server.handle_error = lambda *args: None  # type: ignore[method-assign]
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Issuer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    # --- hooks for a fuller provider (tests/oidc_provider.py) ---------------------------------

    def discovery(self) -> dict[str, Any]:
        """More fields of the discovery document."""
        return {}

    def handle(self, request: http.server.BaseHTTPRequestHandler, method: str) -> bool:
        """Answer a request this issuer does not know; False lets it answer (or 404)."""
        return False

    def rotate(self) -> None:
        """New signing keys; the old ones are no longer published."""
        self.keys = [SigningKey("RS256"), SigningKey("ES256")]

    def token(self, algorithm: str = "RS256", *, kid: str | None = None, **claims: Any) -> str:
        """A token signed with the current key of `algorithm`, GitHub Actions' claims with
        `claims` over them (None drops a claim)."""
        signing = next(key for key in self.keys if key.algorithm == algorithm)
        return jwt.encode(
            github_claims(self.url, **claims),
            signing.private,
            algorithm=algorithm,
            headers={"kid": kid or signing.kid},
        )

    # --- tokens no issuer signs ---------------------------------------------------------------

    def unsigned_token(self, **claims: Any) -> str:
        """`alg: none`, no signature."""
        header = {"alg": "none", "typ": "JWT", "kid": self.keys[0].kid}
        payload = github_claims(self.url, **claims)
        return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}."

    def hmac_with_public_key(self, **claims: Any) -> str:
        """HS256 with the issuer's public RSA key (PEM) as the secret: the classic confusion."""
        header = {"alg": "HS256", "typ": "JWT", "kid": self.keys[0].kid}
        signing_input = (
            f"{b64(json.dumps(header).encode())}."
            f"{b64(json.dumps(github_claims(self.url, **claims)).encode())}"
        )
        mac = hmac.new(self.keys[0].public_pem, signing_input.encode(), hashlib.sha256)
        return f"{signing_input}.{b64(mac.digest())}"
