"""The design system as a person sees it (docs/design.md), on every list and page it covers:

- on a phone (390 px) every row action of every list is inside the screen, no sideways scroll;
- one date format: every date or time on a page reads relative ("2 days ago") from one <time>
  element that gives the UTC time on hover and focus, and no other date is written anywhere;
- axe-core finds nothing serious at 1280 and 390 px (with the in-page question open too);
- every Token Key is whole at 1280 px (one line, not cut) and keeps its underscores (no link
  underline drawn through it), on every page and dialog that shows keys;
- screenshots of the pages and components for the docs (`make screenshots` keeps them).
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, ViewportSize, expect

from accounts.models import Invitation
from tests.browser.test_accessibility import world
from tests.factories import MembershipFactory, UserFactory, make_webhook
from tests.helpers import sign_in
from workspaces.models import Role, Workspace

PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 900}

# (name, path under /w/acme/, the rows' actions as a person names them)
LISTS = [
    ("webhooks", "webhooks/", ["Deliveries", "Send test event", "Edit", "Rotate secret", "Delete"]),
    ("deliveries", "{deliveries}", ["Redeliver"]),
    ("history", "{detail}", ["Restore", "Destroy"]),
    ("members", "members/", ["Role", "Remove", "Resend", "Revoke"]),
    ("products", "products/", ["Edit", "Delete"]),
    ("environments", "environments/", ["Edit", "Delete"]),
    ("access-keys", "tokens/access-keys/", ["Revoke"]),
    ("workload-identities", "tokens/workload-identities/", ["Delete"]),
]


def check_configuration(page: Page) -> None:
    """A checked configuration: its results, one reference resolving and one failing."""
    page.get_by_label("Paste a configuration").fill(
        "DATABASE_PASSWORD=$Secret{DB_PASSWORD}\nSTRIPE=$Secret{STRIPE_SECRET}\n"
        "MISSING=$Secret{NOT_IN_ACME}\n"
    )
    page.get_by_role("button", name="Check", exact=True).click()
    expect(page.get_by_role("heading", name="Results")).to_be_visible()


def preview_import(page: Page) -> None:
    page.get_by_label("Paste the contents of a .env file").fill(
        "SERVICE_API_KEY=one\nDB_PASSWORD=two\nnot a binding\n"
    )
    page.get_by_role("button", name="Preview import").click()
    expect(page.get_by_role("heading", name="Preview import")).to_be_visible()


def open_every_event(page: Page) -> None:
    page.evaluate(
        "() => document.querySelectorAll('details.event-more').forEach(d => d.open = true)"
    )


# (name, path under /w/acme/ (or absolute), what a person does there first, or None)
PAGES = [
    *[(name, path, None) for name, path, _ in LISTS],
    ("reminders", "reminders/", None),
    ("tokens", "tokens/", None),
    ("tokens-revoked", "tokens/?revoked=1", None),
    ("activity", "tokens/activity/", open_every_event),
    ("compare", "tokens/compare/", None),
    ("compare-missing", "tokens/compare/?missing=on", None),
    ("check", "tokens/check/", None),
    ("check-results", "tokens/check/", check_configuration),
    ("import", "tokens/import/", None),
    ("import-preview", "tokens/import/", preview_import),
    ("workspace-two-factor", "members/two-factor/", None),
    ("workspace-sso", "members/sso/", None),
    ("account", "/account/", None),
    ("two-factor-setup", "/accounts/2fa/totp/activate/", None),
    ("password-change", "/accounts/password/change/", None),
    ("email-change", "/accounts/email/", None),
    ("reauthenticate", "/accounts/reauthenticate/", None),
    ("workspace-home", "/", None),  # a member of no workspace yet (zed)
]
SIGNED_IN_AS = {"workspace-home": "zed"}

# Dates written by hand: "2026-12-02", "Dec 2, 2026", "Dec 2", "14:05 UTC".
MONTH = r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
HAND_WRITTEN_DATE = re.compile(
    rf"\b\d{{4}}-\d{{2}}-\d{{2}}\b|\b{MONTH} \d{{1,2}}\b|\b\d{{1,2}}:\d{{2}}\b|\bUTC\b"
)
RELATIVE = re.compile(r"^(just now|today|tomorrow|yesterday|in \d+ \w+|\d+ \w+ ago)$")

VISIBLE_TEXT_OUTSIDE_DATES = """() => {
  const copy = document.querySelector("main").cloneNode(true);
  copy.querySelectorAll("time.when, .visually-hidden, script, template").forEach((e) => e.remove());
  return copy.innerText;
}"""


def full_world() -> dict[str, str]:
    paths = world()
    workspace = Workspace.objects.get(slug="acme")
    olivia = workspace.memberships.get(role=Role.OWNER).user
    MembershipFactory(workspace=workspace, user=UserFactory(username="eddie"), role=Role.EDITOR)
    Invitation.create(workspace, email="new.hire@example.com", role=Role.VIEWER, by=olivia)
    make_webhook(
        workspace,
        url="https://hooks.example.com/a/rather/long/path/for/the/deploy-pipeline",
        events=["token.revoked", "token.deleted"],
        description="Restart the deploy pipeline",
    )
    return paths


def url(live_server, paths: dict[str, str], path: str) -> str:
    path = path.format(**paths)
    return (
        f"{live_server.url}{path}" if path.startswith("/") else f"{live_server.url}/w/acme/{path}"
    )


@pytest.mark.parametrize(("name", "path", "actions"), LISTS, ids=[c[0] for c in LISTS])
def test_every_row_action_is_on_the_phone_screen(
    page: Page, live_server, transactional_db, screenshot, name, path, actions
):
    page.set_viewport_size(PHONE)
    paths = full_world()
    sign_in(page, live_server, "olivia")
    page.goto(url(live_server, paths, path))
    expect(page.locator("main h1")).to_be_visible()

    width = page.evaluate("() => document.scrollingElement.scrollWidth")
    assert width <= PHONE["width"], f"{name}: the page scrolls sideways ({width} px)"
    rows = page.locator("main table tbody tr")
    assert rows.count(), f"{name}: no rows"
    for label in actions:
        found = (
            page.locator("main tbody")
            .get_by_role("button", name=re.compile(label, re.I))
            .or_(page.locator("main tbody").get_by_role("link", name=re.compile(label, re.I)))
        )
        assert found.count(), f"{name}: no {label!r} action"
        for n in range(found.count()):
            action = found.nth(n)
            action.scroll_into_view_if_needed()
            box = action.bounding_box()
            assert box is not None, f"{name}: {label!r} is hidden"
            inside = box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
            assert inside, f"{name}: {label!r} is off the screen at x={box['x']:.0f}"
    page.evaluate("() => window.scrollTo(0, 0)")
    screenshot(page, f"phone-{name}", full_page=True)


@pytest.mark.parametrize(("name", "path", "then"), PAGES, ids=[c[0] for c in PAGES])
def test_page_as_a_person_sees_it(
    page: Page, live_server, transactional_db, axe, screenshot, name, path, then
):
    """One date format, nothing serious for axe at 1280 and 390 px, no sideways scroll on the
    phone, a screenshot at both sizes."""
    paths = full_world()
    sign_in(page, live_server, SIGNED_IN_AS.get(name, "olivia"))
    page.goto(url(live_server, paths, path))
    expect(page.locator("main h1")).to_be_visible()
    if then:
        then(page)

    text = page.evaluate(VISIBLE_TEXT_OUTSIDE_DATES)
    written = [found.group(0) for found in HAND_WRITTEN_DATE.finditer(text)]
    assert not written, f"{name}: dates written by hand: {written}"
    times = page.locator("main time.when")
    for n in range(times.count()):
        moment = times.nth(n)
        shown = moment.evaluate("e => e.firstChild.textContent").replace("\xa0", " ")
        assert RELATIVE.match(shown), f"{name}: {shown!r} is not relative"
        assert re.search(r"\b20\d\d\b", moment.get_attribute("data-utc") or "")
    axe(page)
    screenshot(page, f"page-{name}", full_page=True)
    page.set_viewport_size(PHONE)
    page.wait_for_timeout(100)
    width = page.evaluate("() => document.scrollingElement.scrollWidth")
    assert width <= PHONE["width"], f"{name}: the page scrolls sideways on a phone ({width} px)"
    axe(page)
    screenshot(page, f"page-{name}-phone", full_page=True)


def test_a_date_gives_its_utc_time_on_hover_and_keyboard_focus(
    page: Page, live_server, transactional_db, screenshot
):
    paths = full_world()
    sign_in(page, live_server, "olivia")
    page.goto(url(live_server, paths, "tokens/access-keys/"))
    moment = page.locator("main time.when").first
    utc = moment.get_attribute("data-utc")
    assert utc and utc.endswith("UTC")
    tooltip = "e => getComputedStyle(e, '::after').content"
    assert moment.evaluate(tooltip) == "none"
    # The hover's tooltip and a screen reader's description:
    assert moment.get_attribute("title") == utc
    page.keyboard.press("Tab")  # focus something first, then reach the date with the keyboard
    for _ in range(60):
        if page.evaluate("() => document.activeElement.matches('time.when')"):
            break
        page.keyboard.press("Tab")
    focused = page.locator("time.when:focus")
    assert focused.evaluate(tooltip) == f'"{focused.get_attribute("data-utc")}"'
    screenshot(page, "design-date", clip=clip_around(focused, extra=160))


def clip_around(locator, pad: int = 40, extra: int = 0):
    """The element's box with `pad` around it (and `extra` to its right: a tooltip), scrolled
    into view first."""
    locator.scroll_into_view_if_needed()
    box = locator.bounding_box()
    assert box
    x, y = max(box["x"] - pad, 0), max(box["y"] - pad, 0)
    return {
        "x": x,
        "y": y,
        "width": box["width"] + 2 * pad + extra,
        "height": box["height"] + 2 * pad,
    }


def test_component_screenshots_for_the_design_document(
    page: Page, live_server, transactional_db, axe, screenshot
):
    """One screenshot per component for docs/design.md, each looked for the way a user sees it."""
    paths = full_world()
    sign_in(page, live_server, "olivia")
    screenshot(page, "design-logo", clip=clip_around(page.locator(".sidebar .brand"), pad=12))

    page.goto(url(live_server, paths, "webhooks/"))
    header = page.locator("main .page-header")
    expect(header.get_by_role("link", name="Add webhook")).to_be_visible()
    screenshot(page, "design-page-header", clip=clip_around(header, pad=8))
    table = page.get_by_role("table", name="Webhooks of Acme")
    screenshot(page, "design-list", clip=clip_around(table, pad=8))
    events = table.locator("td[data-label=Events]").first
    screenshot(page, "design-chips", clip=clip_around(table.locator("tr").nth(1), pad=4))
    expect(events.get_by_text("All events")).to_be_visible()

    page.goto(url(live_server, paths, "members/"))
    members = page.get_by_role("table", name="Members of Acme")
    expect(members.get_by_text("Owner")).to_be_visible()
    screenshot(page, "design-badges", clip=clip_around(members, pad=8))

    webhook = make_webhook(Workspace.objects.get(slug="acme"), url="https://hooks.example.com/new")
    page.goto(f"{live_server.url}/w/acme/webhooks/{webhook[0].pk}/")
    empty = page.locator("main .empty-state")
    expect(empty.get_by_role("heading", name="No deliveries yet")).to_be_visible()
    screenshot(page, "design-empty-state", clip=clip_around(empty, pad=8))

    page.goto(url(live_server, paths, "webhooks/"))
    page.get_by_role("link", name="Add webhook").click()
    form = page.get_by_role("dialog", name="Add webhook")
    events = form.get_by_role("group", name="Events")
    expect(events.get_by_label("Token revoked")).to_be_checked()
    screenshot(page, "design-checkboxes", clip=clip_around(events, pad=8))
    form.get_by_label("Payload URL").fill("https://hooks.example.com/half-typed")
    page.wait_for_timeout(400)  # Bootstrap ignores Escape during the fade-in
    page.keyboard.press("Escape")
    question = page.get_by_role("dialog", name="Discard what you typed?")
    expect(question.get_by_role("button", name="Keep editing")).to_be_focused()
    page.wait_for_timeout(200)
    axe(page)
    screenshot(page, "design-dialog")
    page.keyboard.press("Enter")
    expect(question).to_be_hidden()

    page.set_viewport_size(PHONE)
    page.goto(url(live_server, paths, "webhooks/"))
    card = page.locator("main tbody tr").first
    screenshot(page, "design-row-actions", clip=clip_around(card, pad=8))

    page.set_viewport_size(DESKTOP)
    page.goto(url(live_server, paths, "tokens/activity/"))
    event = page.locator("main details.event-more").filter(has_text="changed the value of")
    event.locator("summary").click()
    link = event.get_by_role("link", name="Open DB_PASSWORD")
    expect(link.locator(".token-key")).to_have_attribute("title", "DB_PASSWORD")
    screenshot(page, "design-token-key", clip=clip_around(event, pad=4))


# --- The Tokens home: whole keys on a desktop, three whole tokens on a phone's first screen --

# Each Token Key shown on the page ({% token_key %}) that is drawn on more than one line, cut
# short, or with a link's underline through it (hiding its underscores).
KEYS_NOT_WHOLE = """(scope) => Array.from(document.querySelectorAll(scope + " .token-key"))
  .filter((key) => key.getClientRects().length)
  .filter((key) => {
    const range = document.createRange();
    range.selectNodeContents(key);
    const lines = new Set(Array.from(range.getClientRects()).map((r) => Math.round(r.top)));
    const style = getComputedStyle(key);
    // An inline key in a link has the link's underline drawn through it; an inline block not.
    const underlined = (style.display === "inline" && key.closest("a") !== null)
      || style.textDecorationLine.includes("underline");
    return lines.size > 1 || key.scrollWidth > key.clientWidth + 1 || underlined;
  })
  .map((key) => key.textContent)"""


def demo_tokens() -> None:
    """Acme as the demo has it, and a key shared by two environments (its rows grouped)."""
    from tests.browser.test_tokens_page import acme
    from tests.factories import TokenFactory

    workspace = acme()
    TokenFactory(
        workspace=workspace,
        key="STRIPE_SECRET",
        description="Stripe secret key (test mode)",
        products=list(workspace.products.filter(name="Payments")),
        environments=[workspace.environments.get(slug="sandbox")],
    )


def test_a_cut_key_is_whole_while_its_copy_button_has_the_keyboard(
    page: Page, live_server, transactional_db, screenshot
):
    """The longest key (128 characters) is cut at 1280 px; a keyboard user who tabs to its
    copy button sees it whole (a mouse user has its title), and cut again once they move on."""
    from tests.factories import TokenFactory

    demo_tokens()
    workspace = Workspace.objects.get(slug="acme")
    long_key = "PAYMENTS_GATEWAY_" + "X" * 111
    TokenFactory(
        workspace=workspace,
        key=long_key,
        environments=[workspace.environments.get(slug="production")],
    )
    page.set_viewport_size(DESKTOP)
    sign_in(page, live_server, "olivia")
    key = page.locator("main tbody .token-key", has_text=long_key)
    cut = "(k) => k.scrollWidth > k.clientWidth + 1"
    assert key.evaluate(cut), "the 128-character key is not cut at 1280 px"

    copy = page.get_by_role("button", name=f"Copy $Secret{{{long_key}}}")
    for _ in range(80):  # by the keyboard alone, as a keyboard user gets there
        if copy.evaluate("(b) => b === document.activeElement"):
            break
        page.keyboard.press("Tab")
    else:
        raise AssertionError("Tab never reached the long key's copy button")
    assert not key.evaluate(cut), "the key is still cut while its copy button has the focus"
    box = key.bounding_box()
    assert box is not None and box["x"] + box["width"] <= DESKTOP["width"]
    screenshot(page, "tokens-long-key-focused")

    page.keyboard.press("Tab")
    assert key.evaluate(cut), "the key stays whole after the focus moved on"


@pytest.mark.parametrize("width", [1280, 1440])
def test_tokens_rows_are_whole_and_keys_unbroken_on_a_desktop(
    page: Page, live_server, transactional_db, screenshot, width
):
    demo_tokens()
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, live_server, "olivia")
    table = page.get_by_role("table", name="Tokens in Acme")
    expect(table.get_by_role("row")).to_have_count(7)  # the headings and six tokens

    assert page.evaluate(KEYS_NOT_WHOLE, "main tbody") == [], f"keys broken or cut at {width} px"
    card = page.locator("main .card-table")
    assert card.evaluate("(c) => c.scrollWidth <= c.clientWidth"), f"sideways scroll at {width}"
    for n in range(1, 7):
        actions = table.get_by_role("row").nth(n).locator(".row-actions")
        box = actions.bounding_box()
        assert box and box["x"] + box["width"] <= width, f"row {n}'s actions cut at {width} px"
    # A key's tokens, one per environment, sit together.
    keys = table.locator("tbody .token-key").all_text_contents()
    stripe = [n for n, key in enumerate(keys) if key == "STRIPE_SECRET"]
    assert len(stripe) == 2 and stripe[1] == stripe[0] + 1, keys
    screenshot(page, f"design-tokens-{width}")


def test_tokens_first_phone_screen_shows_search_filters_and_three_whole_tokens(
    page: Page, live_server, transactional_db, screenshot, axe
):
    demo_tokens()
    page.set_viewport_size(PHONE)
    sign_in(page, live_server, "olivia")
    table = page.get_by_role("table", name="Tokens in Acme")
    expect(table).to_be_visible()

    def on_first_screen(box) -> bool:
        return bool(box) and box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"]

    assert on_first_screen(page.get_by_label("Search tokens").bounding_box())
    assert on_first_screen(page.get_by_role("button", name="Filters").bounding_box())
    for select in ("Filter by type", "Filter by status", "Filter by environment"):
        expect(page.get_by_label(select)).to_be_hidden()  # behind the one Filters button
    rows = table.locator("tbody tr")
    whole = [n for n in range(rows.count()) if on_first_screen(rows.nth(n).bounding_box())]
    assert len(whole) >= 3, f"only {len(whole)} whole tokens on the first screen"
    assert page.evaluate("() => document.scrollingElement.scrollWidth") <= PHONE["width"]
    axe(page)
    screenshot(page, "design-tokens-phone")


def bulk_revoke(page: Page) -> None:
    page.locator("main [data-bulk-item]").nth(0).check()
    page.locator("main [data-bulk-item]").nth(1).check()
    page.get_by_role("button", name="Revoke selected").click()


def click(name: str | re.Pattern[str]):
    def then(page: Page) -> None:
        page.get_by_role("link", name=name).first.click()

    return then


# (name, path under /w/acme/, what a person does there first, the keys it must show whole)
KEY_PAGES = [
    ("tokens", "tokens/", None, ["DB_PASSWORD", "STRIPE_SECRET"]),
    ("token-page", "{detail}", None, ["DB_PASSWORD"]),
    ("activity", "tokens/activity/", open_every_event, ["DB_PASSWORD"]),
    ("compare", "tokens/compare/", None, ["DB_PASSWORD", "STRIPE_SECRET"]),
    ("check-results", "tokens/check/", check_configuration, ["$Secret{NOT_IN_ACME}"]),
    ("import-preview", "tokens/import/", preview_import, ["SERVICE_API_KEY", "DB_PASSWORD"]),
    ("revoke-dialog", "tokens/", click("Revoke DB_PASSWORD"), ["DB_PASSWORD"]),
    ("delete-dialog", "tokens/", click("Delete DB_PASSWORD"), ["DB_PASSWORD"]),
    ("edit-dialog", "tokens/", click("Edit DB_PASSWORD"), ["DB_PASSWORD"]),
    ("bulk-revoke-dialog", "tokens/", bulk_revoke, []),
    ("restore-dialog", "{detail}", click(re.compile(r"^Restore version")), ["DB_PASSWORD"]),
]


@pytest.mark.parametrize(("name", "path", "then", "keys"), KEY_PAGES, ids=[c[0] for c in KEY_PAGES])
def test_keys_are_whole_at_1280(
    page: Page, live_server, transactional_db, screenshot, name, path, then, keys
):
    """No Token Key broken inside at 1280 px, nor cut, nor its underscores hidden by a link's
    underline, on every page and dialog that shows keys."""
    paths = full_world()
    sign_in(page, live_server, "olivia")
    page.goto(url(live_server, paths, path))
    if then:
        then(page)
    scope = "main"
    if name.endswith("-dialog"):
        scope = "#modal"
        expect(page.locator("#modal .token-key").first).to_be_visible()
        page.wait_for_timeout(350)
    shown = page.locator(f"{scope} .token-key")
    expect(shown.first).to_be_visible()
    texts = shown.all_text_contents()
    for key in keys:
        assert key in texts, f"{name}: {key} is not shown as a Token Key ({texts})"
    assert page.evaluate(KEYS_NOT_WHOLE, scope) == [], f"{name}: keys broken or cut at 1280 px"
    screenshot(page, f"keys-{name}", full_page=True)
