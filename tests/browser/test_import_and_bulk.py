"""Importing a .env file and acting on many tokens, in a real browser, as a user does it: a
50-line file imported, 10 of its tokens revoked at once, and the same bulk actions without
JavaScript. axe-core checks the Import pages and the bulk confirmations."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, Page, expect

from audit.models import AuditAction, AuditEvent
from tests.factories import MembershipFactory, TokenFactory, UserFactory, WorkspaceFactory
from tests.helpers import sign_in
from tokens.models import Token
from workspaces.models import Role

SECRET = "dotenv-secret-0b5e1f7a9c3d"


def fifty_line_env() -> bytes:
    """50 lines as a real .env has them: comments, blanks, export, quotes, a multi-line value."""
    lines = ["# Payments service", ""]
    for n in range(43):
        if n % 3 == 0:
            lines.append(f"export SERVICE_KEY_{n:02d}='{SECRET}-{n}'")
        else:
            lines.append(f'SERVICE_KEY_{n:02d}="{SECRET}-{n}"')
    lines += ["", "# a PEM key", 'TLS_KEY="-----BEGIN KEY-----', "abc", '-----END KEY-----"']
    assert len(lines) == 50
    return ("\n".join(lines) + "\n").encode()


def workspace_with_owner(username: str = "olivia"):
    workspace = WorkspaceFactory(name="Acme", slug="acme")
    MembershipFactory(user=UserFactory(username=username), workspace=workspace, role=Role.OWNER)
    return workspace


def settled(page: Page) -> None:
    """Wait for the modal's fade-in to end: axe measures contrast on what it sees."""
    page.wait_for_function(
        "() => { const m = document.getElementById('modal'); return m.classList.contains('show')"
        " && getComputedStyle(m).opacity === '1'; }"
    )
    page.wait_for_timeout(300)


def row(page: Page, key: str):
    return page.get_by_role("row").filter(has=page.get_by_text(key, exact=True))


def test_import_fifty_lines_then_revoke_ten(
    page: Page, live_server, transactional_db, axe, screenshot
):
    workspace = workspace_with_owner()
    sign_in(page, live_server, "olivia")
    page.goto(f"{live_server.url}/w/acme/tokens/")

    page.get_by_role("link", name="Import").click()
    expect(page.get_by_role("heading", name="Import tokens from a .env file")).to_be_visible()
    axe(page)
    page.get_by_label("Or choose a .env file").set_input_files(
        {"name": "payments.env", "mimeType": "text/plain", "buffer": fifty_line_env()}
    )
    page.get_by_role("button", name="Preview import").click()

    expect(page.get_by_role("heading", name="Preview import")).to_be_visible()
    expect(page.get_by_text("44 new, 0 already exist, 0 invalid.")).to_be_visible()
    lines = page.get_by_role("table", name="Lines of the file")
    expect(lines.get_by_role("row")).to_have_count(45)  # heading + 44 bindings
    expect(row(page, "TLS_KEY")).to_contain_text("New")
    assert SECRET not in page.content()
    axe(page)
    screenshot(page, "import-preview", full_page=False)
    page.get_by_label("Type", exact=True).select_option(label="Credential")
    page.get_by_label("Production").check()
    page.get_by_role("button", name="Import", exact=True).click()

    expect(page.get_by_role("status").filter(has_text="Imported 44 new tokens.")).to_be_visible()
    expect(page.get_by_text("1–25 of 44 tokens")).to_be_visible()
    assert Token.objects.filter(workspace=workspace).count() == 44
    assert (
        Token.objects.get(key="TLS_KEY").reveal() == "-----BEGIN KEY-----\nabc\n-----END KEY-----"
    )

    # Ten of them revoked at once.
    keys = [f"SERVICE_KEY_{n:02d}" for n in range(10)]
    for key in keys:
        page.get_by_label(f"Select {key}").check()
    expect(page.get_by_text("10 selected:")).to_be_visible()
    page.get_by_role("button", name="Revoke selected").click()
    dialog = page.get_by_role("dialog", name="Revoke 10 tokens?")
    expect(dialog).to_be_visible()
    expect(
        dialog.get_by_role("list", name="Selected tokens").get_by_role("listitem")
    ).to_have_count(10)
    settled(page)
    axe(page, "#modal")
    screenshot(page, "bulk-revoke")
    dialog.get_by_role("button", name="Revoke 10 tokens").click()
    expect(page.get_by_role("status").filter(has_text="Revoked 10 tokens.")).to_be_visible()
    for key in keys:  # revoked ones leave the list (Show revoked lists them)
        expect(row(page, key)).to_have_count(0)
    expect(row(page, "SERVICE_KEY_10")).to_contain_text("Active")
    assert Token.objects.revoked().count() == 10
    assert AuditEvent.objects.filter(action=AuditAction.REVOKED).count() == 10

    # Select all on this page, then Delete selected: the count must be typed.
    page.get_by_label("Select all on this page").check()
    expect(page.get_by_text("25 selected:")).to_be_visible()
    page.get_by_role("button", name="Delete selected").click()
    dialog = page.get_by_role("dialog", name="Delete 25 tokens?")
    expect(dialog.get_by_role("button", name="Delete 25 tokens")).to_be_disabled()
    settled(page)
    axe(page, "#modal")
    dialog.get_by_label("Type 25 to confirm").fill("25")
    dialog.get_by_role("button", name="Delete 25 tokens").click()
    expect(
        page.get_by_role("status").filter(has_text="Deleted 25 tokens for good.")
    ).to_be_visible()
    left = Token.objects.unrevoked().count()  # the revoked ones stay hidden
    assert left == 19 - 10
    expect(page.get_by_text(f"1–{left} of {left} tokens")).to_be_visible()


def test_bulk_actions_without_javascript(browser: Browser, live_server, transactional_db, axe):
    workspace = workspace_with_owner("nojs")
    for n in range(3):
        TokenFactory(workspace=workspace, key=f"PLAIN_{n}")
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    sign_in(page, live_server, "nojs")
    page.goto(f"{live_server.url}/w/acme/tokens/")

    page.get_by_label("Select all on this page").check()
    page.get_by_role("button", name="Change environments").click()
    expect(page.get_by_role("heading", name="Change the environments of 3 tokens")).to_be_visible()
    expect(page.get_by_label("Production")).to_be_checked()  # what they all have now
    page.get_by_label("Production").uncheck()
    page.get_by_label("Sandbox").check()
    page.get_by_role("button", name="Change environments").click()
    expect(page).to_have_url(re.compile(r"/w/acme/tokens/$"))
    envs = {
        token.key: sorted(token.environments.values_list("name", flat=True))
        for token in Token.objects.all()
    }
    assert envs == {f"PLAIN_{n}": ["Sandbox"] for n in range(3)}

    page.get_by_label("Select PLAIN_1").check()
    page.get_by_role("button", name="Delete selected").click()
    expect(page.get_by_role("heading", name="Delete 1 token?")).to_be_visible()
    page.get_by_label("Type 1 to confirm").fill("2")
    page.get_by_role("button", name="Delete 1 token").click()
    expect(page.get_by_text("Type the number of tokens exactly as shown (1)")).to_be_visible()
    assert Token.objects.count() == 3
    page.get_by_label("Type 1 to confirm").fill("1")
    page.get_by_role("button", name="Delete 1 token").click()
    expect(page).to_have_url(re.compile(r"/w/acme/tokens/$"))
    assert sorted(Token.objects.values_list("key", flat=True)) == ["PLAIN_0", "PLAIN_2"]
    context.close()


def test_a_double_click_on_the_confirmation_acts_once(page: Page, live_server, transactional_db):
    workspace = workspace_with_owner("quick")
    for n in range(3):
        TokenFactory(workspace=workspace, key=f"TWICE_{n}")
    sign_in(page, live_server, "quick")
    page.goto(f"{live_server.url}/w/acme/tokens/")
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.get_by_label("Select all on this page").check()
    page.get_by_role("button", name="Revoke selected").click()
    dialog = page.get_by_role("dialog", name="Revoke 3 tokens?")
    settled(page)
    dialog.get_by_role("button", name="Revoke 3 tokens").dblclick()
    expect(page.get_by_role("status").filter(has_text="Revoked 3 tokens.")).to_be_visible()
    page.wait_for_timeout(1500)  # what a second request would have answered by now
    expect(page.get_by_role("status").filter(has_text="Nothing to revoke")).to_have_count(0)
    assert len(posts) == 2, posts  # the selection, then one confirmation
    assert AuditEvent.objects.filter(action=AuditAction.REVOKED).count() == 3


def test_back_after_importing_and_the_phone_size(
    browser: Browser, live_server, transactional_db, axe
):
    """At 390x844 the preview and a bulk confirmation pass axe; Back after importing lands on a
    page saying the preview is closed, with a way on."""
    workspace_with_owner("phone")
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    sign_in(page, live_server, "phone")
    page.goto(f"{live_server.url}/w/acme/tokens/import/")
    page.get_by_label("Paste the contents of a .env file").fill(
        f"\ufeffexport ONE={SECRET}\r\nTWO=2\r\nlower_key=3\r\n{'K' * 129}=4\r\n"
    )
    page.get_by_role("button", name="Preview import").click()
    expect(page.get_by_text("3 new, 0 already exist, 1 invalid.")).to_be_visible()
    axe(page)
    page.get_by_label("Production").check()
    page.get_by_role("button", name="Import", exact=True).click()
    expect(page.get_by_role("status").filter(has_text="Imported 3 new tokens")).to_be_visible()

    page.go_back()
    expect(page.get_by_role("heading", name="This import preview is closed")).to_be_visible()
    expect(page.get_by_text("nothing more was imported")).to_be_visible()
    axe(page)
    page.get_by_role("link", name="Back to Tokens").click()
    assert Token.objects.count() == 3

    # On a phone Select all joins the bulk bar once a token is selected.
    page.get_by_label("Select ONE").check()
    page.get_by_label("Select all on this page").check()
    page.get_by_role("button", name="Delete selected").click()
    dialog = page.get_by_role("dialog", name="Delete 3 tokens?")
    expect(dialog).to_be_visible()
    settled(page)
    axe(page, "#modal")
    context.close()


def test_a_token_deleted_by_someone_else_before_the_confirmation(
    page: Page, live_server, transactional_db, axe
):
    workspace = workspace_with_owner("slow")
    for n in range(3):
        TokenFactory(workspace=workspace, key=f"STALE_{n}")
    sign_in(page, live_server, "slow")
    page.goto(f"{live_server.url}/w/acme/tokens/")
    page.get_by_label("Select all on this page").check()
    page.get_by_role("button", name="Revoke selected").click()
    dialog = page.get_by_role("dialog", name="Revoke 3 tokens?")
    settled(page)
    Token.objects.get(key="STALE_1").delete()  # another editor, meanwhile
    dialog.get_by_role("button", name="Revoke 3 tokens").click()
    refusal = page.get_by_role("dialog", name="Nothing was changed")
    expect(refusal.get_by_role("alert")).to_contain_text(
        "1 of the 3 selected tokens no longer exists"
    )
    expect(page.get_by_text("1–2 of 2 tokens")).to_be_visible()  # the table behind, redrawn
    axe(page, "#modal")
    refusal.get_by_role("link", name="Back to Tokens").click()
    expect(refusal).to_be_hidden()
    assert not Token.objects.revoked().exists()


def test_the_preview_keeps_ordinary_keys_on_one_line(page: Page, live_server, transactional_db):
    """A long reason in the last column squeezed the Key column until NEW_STRIPE wrapped as
    NEW_ST / RIPE at 1280 px."""
    workspace_with_owner("wide")
    sign_in(page, live_server, "wide")
    page.goto(f"{live_server.url}/w/acme/tokens/import/")
    page.get_by_label("Paste the contents of a .env file").fill(
        "NEW_STRIPE=1\nDB_URL=x:$Secret{DB_PASS}@h\n9BAD=3\n"
    )
    page.get_by_role("button", name="Preview import").click()
    expect(page.get_by_role("heading", name="Preview import")).to_be_visible()
    lines = page.evaluate(
        """() => Array.from(document.querySelectorAll('table td:nth-child(2)')).map(td => {
            const range = document.createRange();
            range.selectNodeContents(td.querySelector('.token-key') || td);
            return new Set(Array.from(range.getClientRects()).map(r => Math.round(r.top))).size;
            })"""
    )
    assert lines == [1, 1, 1], lines
