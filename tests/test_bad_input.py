"""Bad input: hypothesis throws hostile data at every form and at the resolver.

Each form's fields are read from its rendered HTML (tests/html_forms.py), so a field added later
is attacked too. Each field gets a mix of valid choices and hostile values: empty, NUL bytes,
oversized (100 KB, and a 3 MB body), HTML and script, SQL, template syntax, right-to-left
overrides, negative and enormous numbers, past and impossible dates, another workspace's object
ids, made-up ids and a 5,000-item multi-select; and whole bodies of invalid UTF-8.

For every example: never a 500; a rejected request (the form again, or 400) explains itself and
leaves the database exactly as it was; an accepted one shows any markup it stored escaped.
The resolver gets arbitrary text (and bytes that are not UTF-8) and arbitrary arguments: it
resolves, or fails with exit status 1 or 2, a message and no output at all.

Examples are derandomized, so CI runs the same ones every time.
"""

from __future__ import annotations

import datetime as dt
import io
from collections import Counter
from urllib.parse import quote_from_bytes

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.db import transaction
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.models import AuditEvent
from tests.helpers import HTMX
from tests.html_forms import Form, FormField, main_form
from tests.url_table import World, build_world
from tokens.models import Token

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

EXAMPLES = Counter()
MARKERS = ("<script>coffer-xss</script>", '"><b data-x=coffer-xss>')
YESTERDAY = (dt.date.today() - dt.timedelta(days=1)).isoformat()
HOSTILE = [
    "",
    " ",
    "\x00",
    "KEY\x00NUL",
    "A" * 100_000,
    *MARKERS,
    "'; DROP TABLE tokens_token; --",
    "{{ settings.SECRET_KEY }}",
    "{% debug %}",
    "$Secret{ACME_TOKEN_0}",
    "../../etc/passwd",
    "\u202egnp.exe",
    "😀" * 60,
    "-1",
    "-30",
    "0",
    "99999999999999999999999",
    "1e308",
    "NaN",
    YESTERDAY,
    "1999-01-01",
    "2000-02-30",
    "0001-01-01",
    "9999-12-31",
    "owner",
    "superuser",
    "true",
    "[]",
]
TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=200)
SETTINGS = {
    "derandomize": True,
    "deadline": None,
    "database": None,
    "suppress_health_check": list(HealthCheck),
}


def snapshot() -> list:
    """Every row of Coffer's own tables (users, workspaces, catalog, tokens, m2m, audit)."""
    rows = []
    for model in apps.get_models(include_auto_created=True):
        if model._meta.app_label in {"auth", "workspaces", "tokens"}:
            rows.append(list(model.objects.order_by("pk").values_list()))
    return rows


def explained(response) -> bool:
    html = response.content.decode(errors="replace")
    if response.status_code == 400:
        return "This request could not be understood" in html
    return (
        "invalid-feedback" in html
        or "alert-block alert-danger" in html
        or '<div class="alert alert-danger" role="alert">' in html
    )


def field_strategy(field: FormField, foreign_ids: list[str]) -> st.SearchStrategy:
    choices = [option for option in field.options if option]
    options: list[st.SearchStrategy] = [st.sampled_from(HOSTILE), TEXT]
    if choices:
        options += [st.sampled_from(choices), st.lists(st.sampled_from(choices), max_size=4)]
    if field.multiple or field.kind == "select":
        options += [
            st.lists(st.sampled_from(foreign_ids), min_size=1, max_size=3),
            st.lists(st.integers(-5, 10**12).map(str), min_size=1, max_size=5),
            st.just([str(n) for n in range(5000)]),  # a huge multi-select
            st.just([str(n) for n in range(300)]),
        ]
    if field.kind in {"date", "number"} or "date" in field.name or "period" in field.name:
        options += [st.sampled_from([YESTERDAY, "-1", "-365", "0", "3651", "10**9"])]
    if field.kind == "password" or field.name in {"value", "new_value"}:
        options += [st.just("v" * (64 * 1024 + 1)), st.just("x" * 3_000_000)]
    return st.one_of(*options)


def form_data_strategy(form: Form, foreign_ids: list[str]) -> st.SearchStrategy:
    fields = {
        name: st.one_of(st.none(), field_strategy(field, foreign_ids))
        for name, field in form.fields.items()
        if name != "csrfmiddlewaretoken" and field.kind not in {"submit", "button"}
    }
    return st.fixed_dictionaries(fields).map(
        lambda data: {key: value for key, value in data.items() if value is not None}
    )


def invalid_utf8_body(form: Form) -> st.SearchStrategy:
    """An urlencoded body whose values are bytes that are not UTF-8 (raw and %-encoded)."""
    names = [name for name in form.fields if name != "csrfmiddlewaretoken"]
    junk = st.binary(min_size=1, max_size=40).filter(lambda b: not _is_utf8(b))
    pair = st.tuples(st.sampled_from(names), junk, st.booleans())
    return st.lists(pair, min_size=1, max_size=6).map(
        lambda pairs: b"&".join(
            name.encode() + b"=" + (quote_from_bytes(raw).encode() if encoded else raw)
            for name, raw, encoded in pairs
        )
    )


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def listing_pages(world: World) -> list[str]:
    slug = world.a.workspace.slug
    return [
        reverse(name, args=[slug])
        for name in ("tokens:list", "audit:activity", "products", "environments", "members")
    ]


def attack(world: World, who: str, url: str, examples: int, label: str) -> None:
    """Post `examples` hostile bodies to the form at `url` as `who`, checking each outcome."""
    client = world.client(who)
    form = main_form(client.get(url, headers=HTMX).text)
    assert form is not None and form.fields, f"no form at {url}"
    foreign = [str(obj.pk) for obj in (world.b.product, world.b.app, world.b.environment)]
    foreign.append(str(world.b.member.pk))
    pages = listing_pages(world)

    def check(response, data_text: str, before: list) -> None:
        EXAMPLES[label] += 1
        assert response.status_code in {200, 204, 302, 400}, response.status_code
        if response.status_code in {200, 400}:
            assert explained(response), f"{label}: a rejection with no message"
            assert snapshot() == before, f"{label}: a rejected request changed the database"
            return
        for marker in MARKERS:
            if marker in data_text:
                for page in pages:
                    html = client.get(page).text
                    assert marker not in html, f"{label}: unescaped markup on {page}"

    @settings(max_examples=examples, **SETTINGS)
    @given(data=form_data_strategy(form, foreign), htmx=st.booleans())
    def posts(data, htmx):
        with transaction.atomic():
            before = snapshot()
            headers = HTMX if htmx else {}
            response = client.post(url, data, headers=headers)
            check(response, repr(data), before)
            transaction.set_rollback(True)

    @settings(max_examples=max(10, examples // 8), **SETTINGS)
    @given(body=invalid_utf8_body(form))
    def raw_posts(body):
        with transaction.atomic():
            before = snapshot()
            response = client.post(url, body, content_type="application/x-www-form-urlencoded")
            check(response, "", before)
            transaction.set_rollback(True)

    posts()
    raw_posts()


FORMS = [
    # (label, who, URL name, arguments from the world, examples)
    ("workspace create", "viewer", "workspace_create", lambda w: [], 90),
    ("product add", "owner", "catalog_add", lambda w: ["acme", "products"], 60),
    ("app add", "owner", "catalog_add", lambda w: ["acme", "apps"], 50),
    ("environment add", "owner", "catalog_add", lambda w: ["acme", "environments"], 50),
    ("product edit", "owner", "catalog_edit", lambda w: ["acme", "products", w.a.product.pk], 50),
    ("invite member", "owner", "invitation_create", lambda w: ["acme"], 70),
    ("member role", "owner", "member_edit", lambda w: ["acme", w.a.member.pk], 50),
    ("token create", "editor", "tokens:create", lambda w: ["acme"], 220),
    ("token edit", "editor", "tokens:edit", lambda w: ["acme", w.a.token.pk], 140),
    ("token delete", "editor", "tokens:delete", lambda w: ["acme", w.a.token.pk], 30),
]


@pytest.mark.parametrize(
    ("label", "who", "name", "args", "examples"), FORMS, ids=[form[0] for form in FORMS]
)
def test_hostile_form_posts_never_break_anything(label, who, name, args, examples):
    world = build_world(tokens_per_workspace=1)
    attack(world, who, reverse(name, args=args(world)), examples, label)
    assert EXAMPLES[label] >= examples
    print(f"\nbad input: {label}: {EXAMPLES[label]} examples; total {sum(EXAMPLES.values())}")


# --- the resolver --------------------------------------------------------------------------

REFERENCE_PARTS = st.sampled_from(
    [
        "$Secret{ACME_TOKEN_0}",
        "$Secret{GLOBEX_TOKEN_0}",
        "$Secret{NOPE}",
        "$Secret{}",
        "$Secret{9X}",
        "$Secret{bad key}",
        "$Secret{" + "K" * 129 + "}",
        "$Secret{UNCLOSED",
        "$$Secret{ESCAPED}",
        "$$$Secret{ACME_TOKEN_0}",
        "$Secret",
        "$",
        "{",
        "}",
        "\\",
        "\r\n",
        "\n",
        "\x00",
    ]
)
TEMPLATE_BYTES = st.one_of(
    st.lists(st.one_of(REFERENCE_PARTS, TEXT), max_size=12).map(lambda p: "".join(p).encode()),
    st.binary(max_size=200),
    st.lists(st.one_of(REFERENCE_PARTS.map(str.encode), st.binary(max_size=20)), max_size=8).map(
        b"".join
    ),
)
SLUGS = st.one_of(
    st.sampled_from(["acme", "globex", "production", "staging", "checkout", "payments"]),
    # (no NUL: a command-line argument cannot carry one)
    st.sampled_from(["", "ACME", "acme ", "../acme", "acme\n", "x" * 500]),
    st.text(
        alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=20
    ),
)


def test_hostile_resolver_input_fails_closed(tmp_path):
    world = build_world(tokens_per_workspace=1)
    Token.objects.filter(key="ACME_TOKEN_0").update(last_used_at=None)
    template = tmp_path / "template"
    value = world.a.values[0]

    @settings(max_examples=160, **SETTINGS)
    @given(
        text=TEMPLATE_BYTES,
        workspace=st.one_of(st.just("acme"), SLUGS),
        environment=st.one_of(st.just("production"), SLUGS),
        app=st.one_of(st.none(), SLUGS),
    )
    def resolves_or_refuses(text, workspace, environment, app):
        EXAMPLES["resolve"] += 1
        template.write_bytes(text)
        args = [str(template), "--workspace", workspace, "--environment", environment]
        if app is not None:
            args += ["--app", app]
        out, err = io.BytesIO(), io.StringIO()
        with transaction.atomic():
            events = AuditEvent.objects.count()
            try:
                call_command("resolve", *args, stdout=out, stderr=err)
            except CommandError as error:
                assert error.returncode in {1, 2}, error.returncode
                assert str(error).strip(), "a failure says why"
                assert out.getvalue() == b"", "fail closed: nothing written"
                assert AuditEvent.objects.count() == events
                assert value not in str(error) + err.getvalue()
            else:
                if b"$Secret{" not in text and b"$$Secret{" not in text:
                    assert out.getvalue() == text, "text without references passes unchanged"
                assert AuditEvent.objects.count() <= events + 1
            transaction.set_rollback(True)

    resolves_or_refuses()
    assert EXAMPLES["resolve"] >= 160
    print(f"\nbad input: resolve: {EXAMPLES['resolve']} examples; total {sum(EXAMPLES.values())}")


# --- the table's query string ----------------------------------------------------------------

QUERY_VALUE = st.one_of(st.sampled_from(HOSTILE[:4] + HOSTILE[5:]), TEXT, st.integers().map(str))


def test_hostile_query_strings_on_list_pages_never_break_anything():
    world = build_world(tokens_per_workspace=1)
    client = world.client("viewer")
    pages = listing_pages(world)
    params = st.sampled_from(
        ["q", "status", "type", "environment", "env", "sort", "page", "per_page", "highlight"]
    )

    @settings(max_examples=120, **SETTINGS)
    @given(
        page=st.sampled_from(pages),
        query=st.dictionaries(params, st.one_of(QUERY_VALUE, st.lists(QUERY_VALUE, max_size=3))),
        htmx=st.booleans(),
    )
    def lists(page, query, htmx):
        EXAMPLES["list query"] += 1
        response = client.get(page, query, headers=HTMX if htmx else {})
        assert response.status_code in {200, 400}
        for marker in MARKERS:
            assert marker not in response.text, "the query is shown escaped"

    lists()
    print(f"\nbad input: list query: {EXAMPLES['list query']}; total {sum(EXAMPLES.values())}")
