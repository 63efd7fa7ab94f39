"""An edit in the UI reaches a watching `coffer run --watch` within seconds: an editor signs in
to the same real server (gunicorn with uvicorn workers, config.asgi) the watch long-polls,
changes the token's value on its Edit form, and the child is restarted with the new value, or
sent its reload signal after the --stagger delay.

The watch, its child and their log lines are client/tests/watching.py's. Every wait is
bounded; the server, coffer and the child are stopped by the test."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.api_server import running_server
from tests.factories import DEFAULT_PASSWORD

CLIENT_TESTS = Path(__file__).resolve().parents[2] / "client" / "tests"
for folder in (CLIENT_TESTS, CLIENT_TESTS.parent):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from watching import Watch, pid_of  # noqa: E402

pytestmark = pytest.mark.slow

# From the click on Save changes to the child's new start: the hub reads the counters once a
# second and coffer restarts at once (`bench/longpoll.py --watchers`: about a second); the bound
# leaves room for a loaded machine without letting a watch that missed the edit pass.
WITHIN = 15

EDITOR = """
from django.contrib.auth import get_user_model
from workspaces.models import Membership, Role, Workspace
user = get_user_model().objects.create_user("olivia", password={password!r})
Membership.objects.create(user=user, workspace=Workspace.objects.get(slug="acme"), role=Role.EDITOR)
"""


@pytest.fixture(scope="module")
def server():
    with running_server(asgi=True, static=True, COFFER_API_RATE_LIMIT="1000") as running:
        running.django(EDITOR.format(password=DEFAULT_PASSWORD))
        yield running


@pytest.fixture
def watches():
    """The watches a test starts, stopped at its end even when it fails."""
    started: list[Watch] = []
    yield started
    for watch in started:
        watch.finish()


def sign_in(page: Page, server) -> None:
    page.goto(f"{server.url}/accounts/login/")
    page.get_by_label("Username").fill("olivia")
    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("link", name="Tokens").first).to_be_visible()


def edit_value_in_the_ui(page: Page, server, key: str, value: str) -> None:
    """From the Tokens page: the token's Edit, a new Token Value, Save changes."""
    page.goto(f"{server.url}/w/acme/tokens/")
    page.get_by_role("link", name=re.compile(rf"^Edit {key}\b")).click()
    dialog = page.get_by_role("dialog", name=re.compile(rf"^Edit token {key}\b"))
    dialog.get_by_label("Token Value").fill(value)
    dialog.get_by_role("button", name="Save changes").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("status").filter(has_text=f"Token {key} saved.")).to_be_visible()


def test_an_edit_in_the_ui_restarts_the_watched_child(page: Page, server, tmp_path, watches):
    watch = Watch(server, tmp_path, "--watch")
    watches.append(watch)
    first = watch.wait_for(r"start ")[0]
    assert first.endswith(" " + server.values["STRIPE_KEY"])

    sign_in(page, server)
    edit_value_in_the_ui(page, server, "STRIPE_KEY", "sk_live_rotated_in_the_ui")

    starts = watch.wait_for(r"start ", count=2, within=WITHIN)
    assert starts[1].endswith(" sk_live_rotated_in_the_ui")
    assert pid_of(starts[1]) != pid_of(first)
    assert f"term {pid_of(first)}" in watch.lines()
    status, err = watch.finish()
    assert "CMD restarted with the new values" in err
    assert "sk_live_rotated_in_the_ui" not in err
    assert status == 0


def test_an_edit_in_the_ui_signals_a_staggered_fleet(page: Page, server, tmp_path, watches):
    """Three watchers with --reload-signal HUP --stagger 3: each child gets one SIGHUP (no
    restart), each after its own random delay of at most 3 seconds."""
    fleet = []
    for n in range(3):
        folder = tmp_path / f"w{n}"
        folder.mkdir()
        watch = Watch(server, folder, "--watch", "--reload-signal", "HUP", "--stagger", "3")
        watches.append(watch)
        fleet.append(watch)
    firsts = [watch.wait_for(r"start ")[0] for watch in fleet]

    sign_in(page, server)
    edit_value_in_the_ui(page, server, "STRIPE_KEY", "sk_live_rotated_for_the_fleet")

    for watch, first in zip(fleet, firsts, strict=True):
        hup = watch.wait_for(r"hup ", within=WITHIN + 3)[0]
        assert pid_of(hup) == pid_of(first)
        assert len(watch.wait_for(r"start ")) == 1  # signalled, not restarted
    for watch in fleet:
        _, err = watch.finish()
        delay = float(re.search(r"values changed; sending SIGHUP in (\d+\.\d)s", err)[1])
        assert 0 <= delay <= 3
