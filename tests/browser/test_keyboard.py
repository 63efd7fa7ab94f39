"""The Tokens page with the keyboard only: Tab, Shift+Tab, Enter, Space, Escape and typing.

The tests never click and never focus an element by script: they press Tab until the focused
element is the one a user is looking for (its accessible name, read from the page), then act
on it. They check where the focus lands after each redraw and what the live region reads out.
"""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser.test_tokens_page import acme, row
from tests.factories import TokenFactory
from tests.helpers import sign_in
from tokens.models import Token

# The accessible name of the focused element, close enough for finding it: aria-label, else
# its label's text, else its own text.
FOCUSED_NAME = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return "";
  const label = el.getAttribute("aria-label")
    || (el.labels && el.labels[0] && el.labels[0].textContent)
    || el.textContent || "";
  return label.replace(/\\s+/g, " ").trim();
}"""


def tab_to(page: Page, name: str | re.Pattern[str], *, limit: int = 80, back: bool = False) -> None:
    """Press Tab (Shift+Tab with back=True) until the focused element is called `name`."""
    for _ in range(limit):
        page.keyboard.press("Shift+Tab" if back else "Tab")
        focused = page.evaluate(FOCUSED_NAME)
        if name.search(focused) if isinstance(name, re.Pattern) else focused == name:
            return
    raise AssertionError(f"{name!r} never got the focus")


def sign_in_to_tokens(page: Page, live_server) -> None:
    """Sign in as olivia and wait for the Tokens page, so no key is pressed on the sign-in page."""
    sign_in(page, live_server, "olivia")
    expect(page.get_by_role("heading", name="Tokens", level=1)).to_be_visible()


def live_region(page: Page):
    return page.locator("[data-announce-for=token-table]")


def many_tokens(count: int = 30):
    workspace = acme()
    for n in range(count - Token.objects.unrevoked().count()):  # as many listed
        TokenFactory(workspace=workspace, key=f"BULK_TOKEN_{n:02}")
    return workspace


def test_skip_link_then_sort_keeps_the_focus_on_the_heading(
    page: Page, live_server, transactional_db
):
    acme()
    sign_in_to_tokens(page, live_server)
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_visible()
    page.keyboard.press("Enter")
    expect(page.get_by_role("main")).to_be_focused()

    tab_to(page, "Key")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"sort=-key"))
    heading = page.get_by_role("columnheader", name="Key")
    expect(heading).to_have_attribute("aria-sort", "descending")
    expect(heading.get_by_role("link", name="Key")).to_be_focused()
    expect(live_region(page)).to_have_text("Showing tokens 1 to 5 of 5.")
    page.keyboard.press("Enter")  # and back again, still in place
    expect(heading).to_have_attribute("aria-sort", "ascending")
    expect(heading.get_by_role("link", name="Key")).to_be_focused()


def test_next_page_keeps_the_focus_on_the_pager(page: Page, live_server, transactional_db):
    many_tokens(30)
    sign_in_to_tokens(page, live_server)
    tab_to(page, "Next", limit=250)
    page.keyboard.press("Enter")
    expect(page.get_by_text("26–30 of 30 tokens")).to_be_visible()
    expect(live_region(page)).to_have_text("Showing tokens 26 to 30 of 30.")
    expect(page.locator("#page-next")).to_be_focused()  # now the disabled Next: still in place
    page.keyboard.press("Shift+Tab")
    expect(page.get_by_role("link", name="Previous")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_text("1–25 of 30 tokens")).to_be_visible()
    expect(page.get_by_role("link", name="Previous")).to_have_count(0)
    expect(page.locator("#page-previous")).to_be_focused()


def test_search_keeps_the_focus_in_the_box_and_reads_the_count(
    page: Page, live_server, transactional_db
):
    acme()
    sign_in_to_tokens(page, live_server)
    tab_to(page, "Search tokens")
    page.keyboard.type("stripe")
    expect(page).to_have_url(re.compile(r"q=stripe"))
    expect(live_region(page)).to_have_text("Showing tokens 1 to 1 of 1 matching the filters.")
    expect(page.get_by_label("Search tokens")).to_be_focused()


def test_delete_through_its_dialog_lands_on_the_next_row(page: Page, live_server, transactional_db):
    acme()
    sign_in_to_tokens(page, live_server)
    tab_to(page, "Delete GITHUB_OAUTH_TOKEN")
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Delete")
    confirm = dialog.get_by_role("textbox")
    expect(confirm).to_be_focused()
    page.keyboard.type("GITHUB_OAUTH_TOKEN")
    page.keyboard.press("Tab")  # Cancel
    page.keyboard.press("Tab")  # Delete token
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    expect(row(page, "GITHUB_OAUTH_TOKEN")).to_have_count(0)
    # The row that took its place (the next one down), at its first control.
    expect(
        row(page, "INTERNAL_SERVICE_TOKEN").get_by_role(
            "button", name="Copy $Secret{INTERNAL_SERVICE_TOKEN}"
        )
    ).to_be_focused()
    expect(live_region(page)).to_have_text("Showing tokens 1 to 4 of 4.")


def test_revoke_opens_on_cancel_and_escape_returns(page: Page, live_server, transactional_db):
    acme()
    sign_in_to_tokens(page, live_server)
    tab_to(page, "Revoke DB_PASSWORD")
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Revoke")
    expect(dialog.get_by_role("link", name="Cancel")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("link", name="Revoke DB_PASSWORD")).to_be_focused()


def test_create_a_token_with_the_keyboard(page: Page, live_server, transactional_db):
    acme()
    sign_in_to_tokens(page, live_server)
    tab_to(page, "Create Token")
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Create Token")
    expect(dialog.get_by_label("Token Key")).to_be_focused()
    page.keyboard.type("KEYBOARD_TOKEN")
    tab_to(page, "Token Value")
    page.keyboard.type("typed-with-the-keyboard-only")
    tab_to(page, "Period")
    page.keyboard.press("ArrowDown")  # browsing the options does not jump into Custom days
    page.keyboard.press("ArrowDown")
    expect(dialog.get_by_label("Period", exact=True)).to_be_focused()
    expect(dialog.get_by_text(re.compile(r"^Expires on "))).to_be_visible()
    tab_to(page, "Sandbox")
    page.keyboard.press("Space")
    expect(dialog.get_by_role("group", name="Environments").get_by_label("Sandbox")).to_be_checked()
    tab_to(page, "Create Token")
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    expect(row(page, "KEYBOARD_TOKEN")).to_be_visible()
    assert Token.objects.get(key="KEYBOARD_TOKEN").reveal() == "typed-with-the-keyboard-only"
    # Back on the button that opened the modal.
    expect(page.get_by_role("link", name="Create Token")).to_be_focused()


# For the focused element (or the chip round a focused checkbox): its outline's width, style,
# and the contrast of its colour against the first opaque background behind it.
FOCUS_RING = """() => {
  let el = document.activeElement;
  if (!el || el === document.body) return null;
  const chip = el.closest('.choice');
  const ringed = chip && el.matches('.form-check-input') ? chip : el;
  const style = getComputedStyle(ringed);
  const rgb = (text) => (text.match(/[\\d.]+/g) || []).map(Number);
  const luminance = ([r, g, b]) => {
    const [R, G, B] = [r, g, b].map((v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * R + 0.7152 * G + 0.0722 * B;
  };
  let behind = ringed.parentElement;
  let background = null;
  while (behind) {
    const colour = rgb(getComputedStyle(behind).backgroundColor);
    if (colour.length === 3 || colour[3] === 1) {
      background = colour.slice(0, 3);
      break;
    }
    behind = behind.parentElement;
  }
  background = background || [255, 255, 255];
  const [a, b] = [luminance(rgb(style.outlineColor)), luminance(background)].sort((x, y) => y - x);
  return {
    name: (el.getAttribute('aria-label')
      || (el.labels && el.labels[0] && el.labels[0].textContent)
      || el.textContent || el.id || el.tagName)
      .replace(/\\s+/g, ' ').trim().slice(0, 40),
    width: parseFloat(style.outlineWidth),
    style: style.outlineStyle,
    contrast: Math.round(((a + 0.05) / (b + 0.05)) * 100) / 100,
  };
}"""


def rings_while_tabbing(page: Page, stops: int) -> list[dict]:
    found = []
    for _ in range(stops):
        page.keyboard.press("Tab")
        ring = page.evaluate(FOCUS_RING)
        if ring:
            found.append(ring)
    return found


def weak(rings: list[dict]) -> list[dict]:
    return [r for r in rings if r["style"] == "none" or r["width"] < 2 or r["contrast"] < 3]


def test_every_focus_stop_has_a_visible_ring(page: Page, live_server, transactional_db):
    acme()
    sign_in_to_tokens(page, live_server)
    rings = rings_while_tabbing(page, 70)  # the sidebar, the filters, the headings, the rows
    assert len(rings) >= 60
    assert not weak(rings), weak(rings)

    page.get_by_role("link", name="Create Token").click()
    dialog = page.get_by_role("dialog", name="Create Token")
    expect(dialog.get_by_label("Token Key")).to_be_focused()
    rings = rings_while_tabbing(page, 30)  # every field, the choice chips, the buttons
    assert any(r["name"] == "Payments" for r in rings), "the choice chips were reached"
    assert not weak(rings), weak(rings)


def test_the_tabs_move_with_the_arrow_keys(page: Page, live_server, transactional_db):
    acme()
    sign_in_to_tokens(page, live_server)
    tab_to(page, "Tokens", limit=40)  # the sidebar's link first, then the tab
    tab_to(page, "Tokens", limit=40)
    tokens_tab = page.get_by_role("tab", name="Tokens")
    expect(tokens_tab).to_be_focused()
    page.keyboard.press("ArrowRight")  # (Access keys have their own page in the sidebar)
    expect(page.get_by_role("tab", name="Compare environments")).to_be_focused()
    page.keyboard.press("ArrowRight")
    expect(page.get_by_role("tab", name="Activity")).to_be_focused()
    page.keyboard.press("Home")
    expect(tokens_tab).to_be_focused()
    page.keyboard.press("End")
    expect(page.get_by_role("tab", name="Activity")).to_be_focused()
    page.keyboard.press("ArrowRight")  # wraps round
    expect(tokens_tab).to_be_focused()
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/activity/$"))
    expect(page.get_by_role("tab", name="Activity")).to_have_attribute("aria-selected", "true")
