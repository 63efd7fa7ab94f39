"""Which proxy a request goes through: $https_proxy / $http_proxy, less $no_proxy."""

from __future__ import annotations

from coffer_cli.transport import proxy_for


def test_the_scheme_s_proxy_is_used(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.delenv("https_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert proxy_for("https", "coffer.example.com") == ("proxy.internal", 3128)
    monkeypatch.delenv("http_proxy", raising=False)
    monkeypatch.delenv("HTTP_PROXY", raising=False)
    assert proxy_for("http", "coffer.example.com") is None


def test_no_proxy_names_hosts_and_domains(monkeypatch):
    monkeypatch.setenv("https_proxy", "proxy.internal:8080")
    monkeypatch.setenv("no_proxy", "localhost, .example.com")
    assert proxy_for("https", "coffer.example.com") is None
    assert proxy_for("https", "localhost") is None
    assert proxy_for("https", "example.org") == ("proxy.internal", 8080)
    monkeypatch.setenv("no_proxy", "*")
    assert proxy_for("https", "example.org") is None
