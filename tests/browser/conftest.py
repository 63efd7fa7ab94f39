"""Browser tests: Playwright driving Debian's chromium against pytest-django's live_server."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

# A modal round trip (htmx request, Django's live server, a swap) can take a few seconds on a
# loaded 2-core machine; Playwright's default of 5 s made the slowest ones fail at random.
expect.set_options(timeout=15_000)

AXE_JS = Path(__file__).resolve().parents[2] / ".tools/axe/node_modules/axe-core/axe.min.js"
AXE_FAILS_ON = ("serious", "critical")


def chromium_path() -> str:
    path = os.environ.get("COFFER_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(path):
        pytest.fail(
            "The browser tests need Chromium: run `make test` as root (it installs Debian's "
            "chromium), `apt-get install chromium`, or set COFFER_CHROMIUM to an executable.",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": chromium_path(),
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1280, "height": 900}}


def pytest_collection_modifyitems(items):
    for item in items:
        if is_browser_test(item):
            item.add_marker(pytest.mark.browser)  # before `-m` deselects by it
        if "screenshot" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.screenshots)  # `make screenshots` runs these


def is_browser_test(item) -> bool:
    return "tests/browser/" in str(item.fspath).replace(os.sep, "/")


class BrowserTestsLast:
    """The browser tests last (in pytest-django's order among themselves): Playwright's sync
    API keeps an event loop in the main thread from its first test to the end of the session,
    and a test client call to an async view (the change feed's GET /api/v1/values) cannot run
    in a thread with a running loop. Every other test runs before that loop exists."""

    @pytest.hookimpl(trylast=True)  # after pytest-django's reordering by database use
    def pytest_collection_modifyitems(self, items):
        browser = [item for item in items if is_browser_test(item)]
        if browser:
            chosen = set(browser)
            items[:] = [item for item in items if item not in chosen] + browser


def pytest_configure(config):
    config.pluginmanager.register(BrowserTestsLast(), "coffer-browser-tests-last")


@pytest.fixture(autouse=True)
def no_native_dialogs(request, monkeypatch):
    """Coffer asks its questions in the page (one <dialog>, docs/design.md): a native alert(),
    confirm(), prompt() or beforeunload dialog in any page of any browser test fails that test.
    Every context the test opens (the `page` fixture's, its own through `browser.new_context()`
    or `browser.new_page()`) is watched. It yields what it saw (tests/browser/test_shell.py
    checks that it sees)."""
    if "browser" not in request.fixturenames and "page" not in request.fixturenames:
        yield []
        return
    browser = request.getfixturevalue("browser")
    seen: list[str] = []

    def on_dialog(dialog) -> None:
        where = dialog.page.url if dialog.page else "?"
        seen.append(f"{dialog.type}: {dialog.message!r} on {where}")
        dialog.dismiss()

    def watch(context):
        context.on("dialog", on_dialog)
        return context

    new_context, new_page = browser.new_context, browser.new_page

    def watched_page(*args, **kwargs):
        page = new_page(*args, **kwargs)
        watch(page.context)
        return page

    monkeypatch.setattr(browser, "new_context", lambda *a, **kw: watch(new_context(*a, **kw)))
    monkeypatch.setattr(browser, "new_page", watched_page)
    yield seen
    if seen:
        pytest.fail("A native dialog appeared (use the in-page dialog): " + "; ".join(seen))


@pytest.fixture
def screenshot(tmp_path):
    """`screenshot(page, "tokens-table")`: take a screenshot for the docs, and check it was taken.

    It goes to the folder COFFER_SCREENSHOTS names (`make screenshots` sets docs/screenshots),
    otherwise to the test's temporary folder: a plain `make test` changes no tracked file."""
    asked = os.environ.get("COFFER_SCREENSHOTS")
    folder = Path(asked) if asked else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)

    def take(page, name: str, **options) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=path, **options)
        assert path.read_bytes().startswith(b"\x89PNG"), f"no screenshot written at {path}"
        return path

    return take


@pytest.fixture(scope="session")
def axe_source() -> str:
    path = Path(os.environ.get("COFFER_AXE_JS") or AXE_JS)
    if not path.exists():
        pytest.fail(
            f"The accessibility checks need axe-core at {path}: run `make axe` (npm), or set "
            "COFFER_AXE_JS to an axe.min.js.",
            pytrace=False,
        )
    return path.read_text()


@pytest.fixture
def axe(axe_source):
    """`axe(page, "#selector")`: run axe-core on the page (or one part of it) and fail on any
    serious or critical violation. The script is evaluated through the DevTools protocol, so
    the page's strict CSP stays as it is."""

    def check(page, include: str | None = None) -> dict:
        if not page.evaluate("() => typeof window.axe === 'object'"):
            page.evaluate(axe_source)
        results = page.evaluate(
            "async (include) => await axe.run(include ? document.querySelector(include) : "
            "document, {resultTypes: ['violations']})",
            include,
        )
        bad = [v for v in results["violations"] if v["impact"] in AXE_FAILS_ON]
        report = [
            {
                "id": v["id"],
                "impact": v["impact"],
                "help": v["help"],
                "nodes": [n["target"] for n in v["nodes"]][:5],
            }
            for v in bad
        ]
        assert not bad, "axe-core: " + json.dumps(report, indent=1)
        return results

    return check
