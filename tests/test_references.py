"""`$Secret{KEY}` parsing (property tests against a plain oracle) and `resolve_text`."""

from __future__ import annotations

import datetime as dt
import json
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import assume, given
from hypothesis import strategies as st

from audit.models import AuditAction, AuditEvent
from keys import crypto
from tests.api_helpers import audit_insert_fails
from tests.factories import AppFactory, ProductFactory, TokenFactory, WorkspaceFactory
from tokens.models import NOT_AVAILABLE, Token, UseContext
from tokens.references import grammar
from tokens.references import resolve as references
from tokens.references.grammar import (
    _BINARY,
    _TEXT,
    ResolveError,
    Template,
    _parse_slowly,
    _split_well_formed,
    check_report,
    substitute,
)
from tokens.references.resolve import check_text, resolve_text

KEY_START = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
KEY_CHARS = KEY_START | set("0123456789")

keys = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,20}\Z")
# Text made of the pieces that matter to the grammar, plus anything at all.
fragments = st.sampled_from(
    ["$", "$$", "$Secret{", "$$Secret{", "Secret{", "{", "}", "A", "_9", "x y", "\n", "\r\n", "é"]
)
tricky_text = st.lists(st.one_of(fragments, st.text(max_size=5)), max_size=30).map("".join)
any_text = st.one_of(st.text(), tricky_text)
# Values are any text a token may hold, including ones that look like references or escapes.
values_text = st.one_of(
    st.text(min_size=1),
    st.sampled_from(["$Secret{OTHER}", "$$Secret{X}", r"\1", r"\g<0>", "$", "{", "}", "$0"]),
)


def oracle(text: str, values: dict[str, str]) -> str | None:
    """A character-by-character reading of the grammar; None when any reference is bad."""
    out, i, bad = [], 0, False
    while i < len(text):
        if text.startswith("$$Secret{", i):
            out.append("$Secret{")
            i += len("$$Secret{")
        elif text.startswith("$Secret{", i):
            j = i + len("$Secret{")
            k = j
            while k < len(text) and text[k] in KEY_CHARS:
                k += 1
            key = text[j:k]
            if key and key[0] in KEY_START and len(key) <= 128 and text[k : k + 1] == "}":
                if key in values:
                    out.append(values[key])
                else:
                    bad = True
                i = k + 1
            else:
                bad = True
                i = j
        else:
            out.append(text[i])
            i += 1
    return None if bad else "".join(out)


# --- the parser, without a database ------------------------------------------------------------


@given(any_text.filter(lambda text: "$Secret{" not in text))
def test_text_without_a_reference_passes_through_unchanged(text):
    assert substitute(text, {}) == text


@given(any_text)
def test_escaping_every_opener_round_trips(text):
    assert substitute(text.replace("$Secret{", "$$Secret{"), {}) == text


@given(any_text, st.dictionaries(keys, values_text, max_size=5))
def test_arbitrary_input_resolves_as_the_grammar_says_or_raises_resolve_error(text, values):
    expected = oracle(text, values)
    try:
        result = substitute(text, values)
    except ResolveError as error:
        assert expected is None
        assert error.problems
    else:
        assert result == expected


@given(
    st.lists(st.tuples(st.text().map(lambda s: s.replace("$", "")), keys), max_size=20),
    st.text().map(lambda s: s.replace("$", "")),
    st.dictionaries(keys, values_text),
)
def test_each_reference_is_replaced_by_its_value_verbatim_in_one_pass(pieces, tail, values):
    for _, key in pieces:
        values.setdefault(key, f"<{key}>")
    text = "".join(f"{literal}$Secret{{{key}}}" for literal, key in pieces) + tail
    expected = "".join(literal + values[key] for literal, key in pieces) + tail
    assert substitute(text, values) == expected


@given(any_text)
def test_slow_and_fast_parsers_agree(text):
    for syntax, data in ((_TEXT, text), (_BINARY, text.encode("utf-8", "surrogatepass"))):
        fast = _split_well_formed(data, syntax)
        slow, malformed = _parse_slowly(data, syntax)
        if fast is not None and malformed == 0:
            assert fast == slow
        assert Template(data).malformed_count == malformed


@given(any_text, st.dictionaries(keys, values_text))
def test_bytes_parsed_in_small_segments_match_the_text_parsed_whole(text, values):
    """A file's bytes, parsed a few characters at a time, give the same references (lines and
    columns in characters) and the same output as the decoded text parsed whole."""
    assume(not any("\ud800" <= character <= "\udfff" for character in text))
    whole = Template(text)
    with mock.patch.object(grammar, "SEGMENT_SIZE", 3):
        segmented = Template(bytearray(text.encode()), keep=False)
        assert [(r.key, r.line, r.column) for r in segmented.references()] == [
            (r.key, r.line, r.column) for r in whole.references()
        ]
        assert segmented.malformed_count == whole.malformed_count
        assert segmented.distinct_keys() == whole.distinct_keys()
        if not whole.malformed_count:
            values = {key: values.get(key, f"<{key}>") for key in whole.distinct_keys()}
            assert b"".join(segmented.pieces(values)) == whole.render(values).encode()


# Texts of references to a few keys, escaped or not, among lines and wide characters.
reports_text = st.lists(
    st.one_of(
        st.sampled_from(["$Secret{A}", "$$Secret{A}", "$$$Secret{B}", "$Secret{B}", "$Secret{C}"]),
        st.sampled_from(["\n", "\r\n", "é", "✓", "$", "x", "{A}", "Secret{A}"]),
        any_text,
    ),
    max_size=40,
).map("".join)


@pytest.mark.parametrize("find_each_key", [0, 1, grammar.FIND_EACH_KEY])
@given(
    text=reports_text,
    reasons=st.dictionaries(
        st.sampled_from(["A", "B", "C"]), st.sampled_from([None, "token revoked", ""])
    ),
)
def test_the_check_report_is_the_one_a_walk_of_every_occurrence_gives(text, reasons, find_each_key):
    """The report finds each key's first occurrence without walking every occurrence (searched
    for, or walked to, in the segment where the parse first saw it); it must say what a walk of
    every occurrence says: the same statuses (lines, columns, counts, reasons) and problems,
    for the text parsed whole and for its bytes in segments of a few characters."""
    assume(not any("\ud800" <= character <= "\udfff" for character in text))
    with (
        mock.patch.object(grammar, "SEGMENT_SIZE", 3),
        mock.patch.object(grammar, "FIND_EACH_KEY", find_each_key),
    ):
        for template in (Template(text), Template(bytearray(text.encode()), keep=False)):
            walked = grammar._check_report_by_occurrence(template, reasons, source="t")
            assert check_report(template, reasons, source="t") == walked


def test_value_that_looks_like_a_reference_stays_literal():
    text = "a=$Secret{A} b=$Secret{B}"
    values = {"A": "$Secret{B}", "B": "$$Secret{A}"}
    assert substitute(text, values) == "a=$Secret{B} b=$$Secret{A}"


@pytest.mark.parametrize("value", [r"\1", r"\g<0>", "$", "${x}", "{", "}", "\\", "$0", "a\nb"])
def test_special_characters_in_values_are_inserted_verbatim(value):
    assert substitute("[$Secret{K}]", {"K": value}) == f"[{value}]"


def test_escape_outputs_a_literal_reference_and_is_not_resolved():
    assert substitute("x $$Secret{NOPE} y", {}) == "x $Secret{NOPE} y"
    assert substitute("$$$Secret{NOPE}", {}) == "$$Secret{NOPE}"
    assert substitute("$$$Secret{K}", {"K": "v"}) == "$$Secret{K}"
    assert substitute("$$Secret{", {}) == "$Secret{"


def test_key_of_128_characters_resolves():
    key = "K" * 128
    assert substitute(f"$Secret{{{key}}}", {key: "v"}) == "v"


@pytest.mark.parametrize(
    ("text", "snippet"),
    [
        ("$Secret{}", "$Secret{}"),
        ("$Secret{bad key}", "$Secret{bad key}"),
        ("$Secret{9X}", "$Secret{9X}"),
        ("$Secret{FOO", "$Secret{FOO"),
        ("$Secret{FOO\nBAR}", "$Secret{FOO"),
        ("$Secret{FOO-BAR}", "$Secret{FOO-BAR}"),
        ("$Secret{ÉTÉ}", "$Secret{ÉTÉ}"),
        ("$Secret{" + "K" * 129 + "}", "$Secret{" + "K" * 40 + "..."),
    ],
)
def test_malformed_reference_is_an_error_with_its_text(text, snippet):
    with pytest.raises(ResolveError) as raised:
        substitute(text, {"FOO": "v", "K" * 129: "v"}, source="app.tmpl")
    assert [str(problem) for problem in raised.value.problems] == [
        f"app.tmpl:1:1: {snippet}: malformed reference"
    ]


def test_lines_and_columns_are_one_based_and_count_characters():
    text = "first\r\nsé $Secret{A} ünï $Secret{bad!}\n\n  $Secret{B}"
    with pytest.raises(ResolveError) as raised:
        substitute(text, {}, source="s")
    assert [str(problem) for problem in raised.value.problems] == [
        "s:2:4: $Secret{A}: unknown token",
        "s:2:19: $Secret{bad!}: malformed reference",
        "s:4:3: $Secret{B}: unknown token",
    ]


def test_every_occurrence_of_every_problem_is_listed_in_text_order():
    text = "$Secret{X}\n$Secret{}\n$Secret{OK}\n$Secret{X}"
    with pytest.raises(ResolveError) as raised:
        substitute(text, {"OK": "value-never-shown"})
    problems = raised.value.problems
    assert [(p.line, p.column, p.key, p.reason) for p in problems] == [
        (1, 1, "X", "unknown token"),
        (2, 1, None, "malformed reference"),
        (4, 1, "X", "unknown token"),
    ]
    assert "value-never-shown" not in str(raised.value)


def test_reference_inside_a_malformed_one_is_still_found():
    with pytest.raises(ResolveError) as raised:
        substitute("$Secret{$Secret{A}}", {})
    assert [(p.column, p.reason) for p in raised.value.problems] == [
        (1, "malformed reference"),
        (9, "unknown token"),
    ]


def test_lowercase_or_spaced_lookalikes_are_plain_text():
    text = "$secret{A} $ Secret{A} $SECRET{A} Secret{A}"
    assert substitute(text, {}) == text


# --- against the database ----------------------------------------------------------------------


@pytest.fixture
def production(workspace):
    return workspace.environments.get(slug="production")


@pytest.fixture
def sandbox(workspace):
    return workspace.environments.get(slug="sandbox")


def test_resolves_a_usable_token(workspace, production):
    TokenFactory(workspace=workspace, key="DB_PASSWORD", value="hunter2-hunter2-hunter2")
    text = "password: $Secret{DB_PASSWORD}\n"
    assert resolve_text(text, UseContext(production)) == "password: hunter2-hunter2-hunter2\n"


def test_token_of_another_workspace_is_unknown(workspace, production, other_workspace):
    TokenFactory(workspace=other_workspace, key="DB_PASSWORD")
    with pytest.raises(ResolveError) as raised:
        resolve_text("$Secret{DB_PASSWORD}", UseContext(production))
    assert [p.reason for p in raised.value.problems] == [NOT_AVAILABLE]


def test_revoked_token_does_not_resolve(workspace, production):
    TokenFactory(workspace=workspace, key="OLD").revoke()
    with pytest.raises(ResolveError) as raised:
        resolve_text("$Secret{OLD}", UseContext(production))
    assert [p.reason for p in raised.value.problems] == ["token revoked"]


def test_expired_token_does_not_resolve_and_says_when_in_utc(workspace, production):
    token = TokenFactory(workspace=workspace, key="EXPIRED")
    moment = dt.datetime(2025, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
    Token.objects.filter(pk=token.pk).update(expires_at=moment)
    with pytest.raises(ResolveError) as raised:
        resolve_text("$Secret{EXPIRED}", UseContext(production))
    assert [p.reason for p in raised.value.problems] == ["token expired on 2025-03-04 05:06:07 UTC"]


def test_token_expires_at_its_moment(workspace, production):
    token = TokenFactory(workspace=workspace, key="SOON", period_days=1)
    just_before = token.expires_at - dt.timedelta(seconds=1)
    assert resolve_text("$Secret{SOON}", UseContext(production), at=just_before)
    with pytest.raises(ResolveError):
        resolve_text("$Secret{SOON}", UseContext(production), at=token.expires_at)


def test_token_not_valid_in_the_environment(workspace, production, sandbox):
    TokenFactory(workspace=workspace, key="PROD_ONLY", environments=[production])
    with pytest.raises(ResolveError) as raised:
        resolve_text("$Secret{PROD_ONLY}", UseContext(sandbox))
    assert [p.reason for p in raised.value.problems] == [NOT_AVAILABLE]


def test_scoped_token_resolves_for_its_product_or_its_app(workspace, production):
    checkout = ProductFactory(workspace=workspace, slug="checkout")
    web = AppFactory(workspace=workspace, slug="web")
    TokenFactory(workspace=workspace, key="SCOPED", value="v" * 20, products=[checkout], apps=[web])
    assert resolve_text("$Secret{SCOPED}", UseContext(production, product=checkout)) == "v" * 20
    assert resolve_text("$Secret{SCOPED}", UseContext(production, app=web)) == "v" * 20


def test_scoped_token_names_the_context_it_is_not_in_scope_for(workspace, production):
    checkout = ProductFactory(workspace=workspace, slug="checkout")
    billing = ProductFactory(workspace=workspace, slug="billing")
    mobile = AppFactory(workspace=workspace, slug="mobile")
    TokenFactory(workspace=workspace, key="SCOPED", products=[checkout])
    cases = [
        (UseContext(production, product=billing), "not in scope for billing"),
        (UseContext(production, product=billing, app=mobile), "not in scope for billing, mobile"),
        (UseContext(production), "not in scope: no product or app given"),
    ]
    for context, reason in cases:
        with pytest.raises(ResolveError) as raised:
            resolve_text("$Secret{SCOPED}", context)
        assert [p.reason for p in raised.value.problems] == [reason]


def test_unscoped_token_resolves_with_or_without_product_and_app(workspace, production):
    TokenFactory(workspace=workspace, key="ANY", value="a" * 20)
    product = ProductFactory(workspace=workspace)
    assert resolve_text("$Secret{ANY}", UseContext(production)) == "a" * 20
    assert resolve_text("$Secret{ANY}", UseContext(production, product=product)) == "a" * 20


def test_all_problems_are_listed_and_nothing_is_marked_used_or_audited(workspace, production):
    good = TokenFactory(workspace=workspace, key="GOOD")
    TokenFactory(workspace=workspace, key="OLD").revoke()
    before = AuditEvent.objects.count()
    with pytest.raises(ResolveError) as raised:
        resolve_text("$Secret{GOOD} $Secret{OLD} $Secret{NOPE} $Secret{}", UseContext(production))
    assert [p.reason for p in raised.value.problems] == [
        "token revoked",
        "unknown token, or not available in this context",
        "malformed reference",
    ]
    good.refresh_from_db()
    assert good.last_used_at is None
    assert AuditEvent.objects.count() == before


def test_success_marks_the_used_tokens_and_writes_one_audit_event(workspace, production):
    app = AppFactory(workspace=workspace, slug="checkout")
    used = TokenFactory(workspace=workspace, key="USED", value="used-value-1234567890")
    other = TokenFactory(workspace=workspace, key="OTHER", value="other-value-1234567890")
    moment = timezone.now()
    resolve_text(
        "$Secret{USED} and $Secret{USED}",
        UseContext(production, app=app),
        source="app.yaml.tmpl",
        actor="deploy-bot",
        at=moment,
    )
    used.refresh_from_db()
    other.refresh_from_db()
    assert used.last_used_at == moment
    assert other.last_used_at is None
    event = AuditEvent.objects.get(action=AuditAction.RESOLVED)
    assert event.workspace == workspace
    assert event.actor_name == "deploy-bot"
    assert event.detail == {
        "keys": ["USED"],
        "references": 2,
        "environment": "production",
        "product": None,
        "app": "checkout",
        "source": "app.yaml.tmpl",
    }
    stored = json.dumps([event.actor_name, event.token_key, event.detail, str(event)])
    assert "used-value" not in stored


def test_audit_event_names_a_user_actor(workspace, production, owner_client):
    TokenFactory(workspace=workspace, key="K")
    resolve_text("$Secret{K}", UseContext(production), actor=owner_client.user)
    event = AuditEvent.objects.get(action=AuditAction.RESOLVED)
    assert (event.actor, event.actor_name) == (owner_client.user, "olivia")


def test_audit_failure_fails_the_resolve_and_marks_nothing_used(workspace, production):
    token = TokenFactory(workspace=workspace, key="K", value="never-returned-value-123")
    with (
        audit_insert_fails("disk full"),
        pytest.raises(ResolveError) as raised,
    ):
        resolve_text("$Secret{K}", UseContext(production))
    assert "audit event could not be written" in str(raised.value)
    assert "never-returned-value" not in str(raised.value)
    token.refresh_from_db()
    assert token.last_used_at is None


def test_text_without_references_is_not_audited(workspace, production):
    assert resolve_text("plain $$Secret{X}", UseContext(production)) == "plain $Secret{X}"
    assert not AuditEvent.objects.filter(action=AuditAction.RESOLVED).exists()


def test_each_distinct_token_is_decrypted_once(workspace, production):
    for key in ("A", "B", "C"):
        TokenFactory(workspace=workspace, key=key)
    text = "$Secret{A} $Secret{B} $Secret{C}\n" * 50
    with (
        mock.patch.object(crypto, "decrypt", wraps=crypto.decrypt) as decrypt,
        mock.patch.object(crypto, "unwrap_data_key", wraps=crypto.unwrap_data_key) as unwrap,
    ):
        resolve_text(text, UseContext(production))
    assert decrypt.call_count == 3
    assert unwrap.call_count == 1


def _count_queries(text, context) -> int:
    with CaptureQueriesContext(connection) as queries:
        resolve_text(text, context)
    return len(queries)


def test_query_count_is_constant_whatever_the_number_of_references(
    reads_only, workspace, production, django_assert_max_num_queries
):
    product = ProductFactory(workspace=workspace)
    for n in range(200):
        TokenFactory(workspace=workspace, key=f"K{n}", products=[product])
    context = UseContext(production, product=product)
    one = "$Secret{K0}\n"
    many = "".join(f"x: $Secret{{K{n}}}\n" for n in range(200)) * 3
    # In the resolve's savepoint (two statements in the test's transaction): the usable tokens
    # with their data key, the last-used UPDATE and the usage upsert (one statement on
    # PostgreSQL), the audit INSERT.
    writes = 2 if connection.vendor == "postgresql" else 3
    with django_assert_max_num_queries(1 + 2 + writes):
        resolve_text(one, context)
    with django_assert_max_num_queries(1 + 2 + writes):
        resolve_text(many, context)
    assert _count_queries(one, context) == _count_queries(many, context)


def test_query_count_is_constant_when_references_fail(
    workspace, production, django_assert_max_num_queries
):
    for n in range(200):
        TokenFactory(workspace=workspace, key=f"K{n}", environments=[production])
    sandbox = UseContext(workspace.environments.get(slug="sandbox"))
    one = "$Secret{K0} $Secret{NOPE}"
    many = "".join(f"$Secret{{K{n}}} $Secret{{NOPE{n}}}\n" for n in range(200))
    # The usable tokens, then the others with their products, apps and environments; and the
    # resolve's savepoint in the test's transaction (two statements).
    for text in (one, many):
        with django_assert_max_num_queries(5 + 2), pytest.raises(ResolveError):
            resolve_text(text, sandbox)


def test_check_reports_each_distinct_reference_without_decrypting_or_auditing(
    workspace, production
):
    token = TokenFactory(workspace=workspace, key="GOOD")
    TokenFactory(workspace=workspace, key="OLD").revoke()
    text = "$Secret{GOOD}\n$Secret{OLD} $Secret{GOOD}\n$Secret{9}"
    with mock.patch.object(crypto, "decrypt") as decrypt:
        report = check_text(text, UseContext(production), source="t")
    decrypt.assert_not_called()
    assert not report.ok
    assert [
        (s.reference, s.line, s.column, s.occurrences, s.reason) for s in report.references
    ] == [
        ("$Secret{GOOD}", 1, 1, 2, None),
        ("$Secret{OLD}", 2, 1, 1, "token revoked"),
        ("$Secret{9}", 3, 1, 1, "malformed reference"),
    ]
    token.refresh_from_db()
    assert token.last_used_at is None
    assert not AuditEvent.objects.filter(action=AuditAction.RESOLVED).exists()


def test_product_of_another_workspace_is_refused(workspace, production):
    elsewhere = ProductFactory(workspace=WorkspaceFactory())
    with pytest.raises(ValueError, match="not in workspace acme"):
        resolve_text("$Secret{K}", UseContext(production, product=elsewhere))


def test_database_rules_agree_with_the_model_rules(workspace, production, sandbox):
    """`Token.objects.usable_in` (the resolver's fast path) lets through exactly the tokens
    `Token.unusable_reason` allows, for every mix of status, expiry, environments and scope."""
    p1, p2 = ProductFactory(workspace=workspace), ProductFactory(workspace=workspace)
    a1, a2 = AppFactory(workspace=workspace), AppFactory(workspace=workspace)
    now = timezone.now()
    expiries = {"none": None, "past": now - dt.timedelta(hours=1), "future": now + dt.timedelta(1)}
    n = 0
    for revoked in (False, True):
        for expiry in expiries.values():
            for envs in ([production], [sandbox], [production, sandbox]):
                for products in ([], [p1], [p1, p2]):
                    for apps in ([], [a1]):
                        n += 1
                        token = TokenFactory(
                            workspace=workspace,
                            key=f"T{n}",
                            environments=envs,
                            products=products,
                            apps=apps,
                        )
                        Token.objects.filter(pk=token.pk).update(expires_at=expiry)
                        if revoked:
                            token.revoke()
    elsewhere = ProductFactory(workspace=WorkspaceFactory())
    tokens = list(Token.objects.for_workspace(workspace).with_relations())
    contexts = [
        UseContext(env, product=product, app=app)
        for env in (production, sandbox)
        for product in (None, p1, p2, elsewhere)
        for app in (None, a1, a2)
    ]
    usable_somewhere = set()
    every_key = {t.key for t in tokens} | {"UNKNOWN"}
    for context in contexts:
        by_database = set(Token.objects.usable_in(context, now).values_list("key", flat=True))
        by_model = {t.key for t in tokens if t.unusable_reason(context, now) is None}
        assert by_database == by_model, context
        # The resolver's plain SQL, with the keys listed and (above the limit) unlisted.
        if context.product is elsewhere:
            continue  # refused before any query (test_product_of_another_workspace_is_refused)
        for limit in (len(every_key), 1):
            with mock.patch.object(references, "KEY_LOOKUP_LIMIT", limit):
                rows = references._usable_rows(every_key, context, now, lock=False)
            assert {row[1] for row in rows} == by_model, (context, limit)
        usable_somewhere |= by_model
    assert len(usable_somewhere) == 2 * 3 * 3 * 2  # every active, unexpired token, somewhere


def test_many_distinct_keys_load_the_workspace_tokens_instead_of_a_long_key_list(
    workspace, production, monkeypatch
):
    monkeypatch.setattr("tokens.references.resolve.KEY_LOOKUP_LIMIT", 1)
    TokenFactory(workspace=workspace, key="A", value="a" * 20)
    TokenFactory(workspace=workspace, key="B", value="b" * 20)
    TokenFactory(workspace=workspace, key="C").revoke()
    assert resolve_text("$Secret{A}$Secret{B}", UseContext(production)) == "a" * 20 + "b" * 20
    with pytest.raises(ResolveError) as raised:
        resolve_text("$Secret{A}$Secret{C}$Secret{D}", UseContext(production))
    assert [p.reason for p in raised.value.problems] == ["token revoked", NOT_AVAILABLE]


def test_an_error_keeps_the_first_1000_problems_and_counts_them_all():
    with pytest.raises(ResolveError) as raised:
        substitute("$Secret{}\n" * 1_500 + "$Secret{X}", {})
    error = raised.value
    assert error.problem_count == 1_501
    assert len(error.problems) == 1_000
    assert (error.problems[-1].line, error.problems[-1].reason) == (1_000, "malformed reference")
    assert str(error.args[0]) == "1501 references cannot be resolved; nothing was output."
