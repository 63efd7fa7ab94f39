"""The documentation site builds strictly and, opened in a browser, asks no other host for
anything (no web fonts, no CDN scripts): the docs work offline, as the app does."""

from __future__ import annotations

import functools
import http.server
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from playwright.sync_api import Page

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def docs_site(tmp_path):
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(site)],
        cwd=ROOT,
        check=True,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    handler.log_message = lambda *args: None
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield site, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_every_page_loads_with_no_request_to_another_host(page: Page, docs_site):
    site, url = docs_site
    outside: list[str] = []

    def only_local(route):
        if route.request.url.startswith(url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    pages = sorted(path.name for path in site.glob("*.html"))
    assert {"index.html", "user-guide.html", "security.html", "architecture.html"} <= set(pages)
    for name in pages:
        page.goto(f"{url}/{name}")
        page.wait_for_load_state("networkidle")
        assert page.locator("h1").count() >= 1, name
    assert outside == []
