"""What the Tokens table shows: its search, filters, sort and pages (`TokenFilterForm`, read
from the query string), the sortable column headings (`sort_links`), its rows (`table_rows`,
with `with_relations`) and each row's markup (`row_html`, which `{% token_row %}` writes).

Other formatting (dates in dialogs, relative times) is in the template filters of
tokens/templatetags/tokens_extras.py; the rules (status, expiry state) are on the model.
"""

from __future__ import annotations

import datetime as dt
import html
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, cast
from urllib.parse import urlencode

from django import forms
from django.db import connection
from django.db.models import F, Max, Min, OuterRef, Q, Subquery, Value, Window
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from lib.templatetags.ui import when_html, wrappable_key
from tokens.models import (
    UNUSED_FILTER_DAYS,
    ExpiryState,
    Scope,
    Token,
    TokenQuerySet,
    TokenType,
    shared_scope,
    token_label,
)
from workspaces.models import App, Environment, Product, Workspace

if TYPE_CHECKING:
    from typing import TypedDict

    from django_stubs_ext import WithAnnotations

STATUS_FILTERS = [
    ("", "Any status"),
    ("active", "Active"),
    ("expiring", "Expiring soon"),
    ("expired", "Expired"),
    ("revoked", "Revoked"),
]
SORTS = {
    "key": ("key", F("key").asc()),
    "-key": ("key", F("key").desc()),
    "expiry": ("expiry", F("expires_at").asc(nulls_last=True)),
    "-expiry": ("expiry", F("expires_at").desc(nulls_last=True)),
    "last_used": ("last_used", F("last_used_at").desc(nulls_last=True)),
    "-last_used": ("last_used", F("last_used_at").asc(nulls_first=True)),
}
# The tokens of one key sit together whatever the sort: a key's rows are placed by the first of
# them in that order (the earliest expiry, the latest use...), then by key, then each by itself.
KEY_GROUP_SORTS = {
    "expiry": (Min("expires_at"), "asc", {"nulls_last": True}),
    "-expiry": (Max("expires_at"), "desc", {"nulls_last": True}),
    "last_used": (Max("last_used_at"), "desc", {"nulls_last": True}),
    "-last_used": (Min("last_used_at"), "asc", {"nulls_first": True}),
}
SORT_CHOICES = [
    ("", "Key (A–Z)"),
    ("-key", "Key (Z–A)"),
    ("expiry", "Expires first"),
    ("-expiry", "Expires last"),
    ("last_used", "Recently used"),
    ("-last_used", "Least recently used"),
]
PAGE_SIZES = (25, 50, 100)
SEARCH_MAX_LENGTH = 200
CHOOSE_FROM_LIST = "so it was not applied: choose one from the list."
# What the table says about a search or filter it could not apply. Sort and rows per page fall
# back to their defaults without a word: they never change which tokens are listed.
FILTER_PROBLEMS: dict[str | tuple[str, str | None], str] = {
    ("q", "max_length"): f"The search is longer than {SEARCH_MAX_LENGTH} characters, so it was "
    "not applied: shorten it.",
    ("q", "null_characters_not_allowed"): "The search contains a NUL character, so it was not "
    "applied: remove it.",
    "type": f"That type does not exist, {CHOOSE_FROM_LIST}",
    "status": f"That status does not exist, {CHOOSE_FROM_LIST}",
    "env": f"That environment is not in this workspace, {CHOOSE_FROM_LIST}",
    "unused": f"That period of disuse is not offered, {CHOOSE_FROM_LIST}",
    "product": f"That product is not in this workspace, {CHOOSE_FROM_LIST}",
    "app": f"That app is not in this workspace, {CHOOSE_FROM_LIST}",
}
# The filters that narrow the listing (the search box and the selects), as the URL names them.
NARROWING = ("q", "type", "status", "env", "product", "app", "unused")
# Those behind the Filters button on a phone (the search stays in sight), and Show revoked.
BEHIND_FILTERS = ("type", "status", "env", "product", "app", "unused", "revoked")


class TokenFilterForm(forms.Form):
    """The table's query string, validated: never an error page. A search or filter that is not
    valid is left out of the listing, and `problems` says so on the page."""

    q = forms.CharField(
        label="Search tokens",
        required=False,
        max_length=SEARCH_MAX_LENGTH,
        widget=forms.TextInput(
            attrs={
                "type": "search",
                "placeholder": "Key or description",
                "autocomplete": "off",
                "spellcheck": "false",
                "class": "form-control",
            }
        ),
    )
    type = forms.ChoiceField(
        label="Type",
        required=False,
        choices=[("", "All types"), *TokenType.choices],
        widget=forms.Select(attrs={"class": "form-select"}),
    )
    status = forms.ChoiceField(
        label="Status",
        required=False,
        choices=STATUS_FILTERS,
        widget=forms.Select(attrs={"class": "form-select"}),
    )
    env = forms.ChoiceField(
        label="Environment",
        required=False,
        widget=forms.Select(attrs={"class": "form-select"}),
    )
    unused = forms.TypedChoiceField(  # tokens nobody resolved lately (TokenQuerySet.unused_since)
        label="Last use",
        required=False,
        coerce=int,
        empty_value=None,
        choices=[("", "Any last use")]
        + [(str(days), f"Unused for {days} days") for days in UNUSED_FILTER_DAYS],
        widget=forms.Select(attrs={"class": "form-select"}),
    )
    # Product and app: the tokens that product or app may use, as the resolver decides it (scoped
    # to it, or to no product and no app at all: "All products & apps").
    product = forms.ChoiceField(
        label="Product",
        required=False,
        widget=forms.Select(attrs={"class": "form-select"}),
    )
    app = forms.ChoiceField(
        label="App",
        required=False,
        widget=forms.Select(attrs={"class": "form-select"}),
    )
    # Revoked tokens are final and only waiting to be deleted: hidden unless asked for (or the
    # Status filter asks for them alone).
    revoked = forms.BooleanField(
        label="Show revoked",
        required=False,
        widget=forms.CheckboxInput(attrs={"class": "form-check-input", "value": "1"}),
    )
    sort = forms.ChoiceField(
        label="Sort by",
        required=False,
        choices=SORT_CHOICES,
        widget=forms.Select(attrs={"class": "form-select"}),
    )
    per_page = forms.TypedChoiceField(
        label="Rows per page",
        required=False,
        coerce=int,
        # Django takes any empty value (here the default rows per page); the stub says a str.
        empty_value=PAGE_SIZES[0],  # type: ignore[arg-type]
        choices=[("", str(PAGE_SIZES[0])), *[(str(n), str(n)) for n in PAGE_SIZES[1:]]],
        widget=forms.Select(attrs={"class": "form-select form-select-sm"}),
    )

    def __init__(self, data: Mapping[str, Any] | None, *, workspace: Workspace) -> None:
        super().__init__(data, auto_id="filter_%s")
        catalog = catalog_choices(workspace)
        self.environments = catalog["env"]
        self.products = {item.slug: item for item in catalog["product"]}
        self.apps = {item.slug: item for item in catalog["app"]}
        for name, everything in (
            ("env", "All environments"),
            ("product", "All products"),
            ("app", "All apps"),
        ):
            cast(forms.ChoiceField, self.fields[name]).choices = [("", everything)] + [
                (item.slug, item.name) for item in catalog[name]
            ]

    @property
    def values(self) -> dict[str, Any]:
        """The valid, non-default filters (what the URL should carry)."""
        if not hasattr(self, "cleaned_data"):
            self.is_valid()
        valid = {
            name: value
            for name, value in self.cleaned_data.items()
            if name not in self.errors and value not in ("", None, False)
        }
        if valid.get("revoked"):
            valid["revoked"] = 1  # ?revoked=1, as the Show revoked box sends it
        if valid.get("per_page") == PAGE_SIZES[0]:
            del valid["per_page"]
        return valid

    @property
    def problems(self) -> list[str]:
        """One message per search or filter that was sent but could not be applied."""
        if not hasattr(self, "cleaned_data"):
            self.is_valid()
        messages: list[str] = []
        for name in NARROWING:
            if name not in self.errors:
                continue
            code = self.errors[name].as_data()[0].code
            messages.append(
                FILTER_PROBLEMS.get((name, code))
                or FILTER_PROBLEMS.get(name, "The search could not be applied: change it.")
            )
        return messages

    @property
    def sort_key(self) -> str:
        return self.values.get("sort", "key")

    @property
    def page_size(self) -> int:
        return self.values.get("per_page", PAGE_SIZES[0])

    @property
    def is_filtered(self) -> bool:
        return any(name in self.values for name in NARROWING)

    @property
    def filters_set(self) -> int:
        """How many filters behind the Filters button are set (the number it shows)."""
        return sum(name in self.values for name in BEHIND_FILTERS)

    @property
    def hides_revoked(self) -> bool:
        values = self.values
        return not values.get("revoked") and values.get("status") != "revoked"

    def apply(self, tokens: TokenQuerySet, now: dt.datetime | None = None) -> TokenQuerySet:
        values = self.values
        now = now or timezone.now()
        if q := values.get("q", "").strip():
            tokens = tokens.filter(Q(key__icontains=q) | Q(description__icontains=q))
        if token_type := values.get("type"):
            tokens = tokens.filter(type=token_type)
        status = values.get("status")
        if status == "active":
            tokens = tokens.active(now)
        elif status == "expiring":
            tokens = tokens.expiring(now)
        elif status == "expired":
            tokens = tokens.expired(now)
        elif status == "revoked":
            tokens = tokens.revoked()
        elif not values.get("revoked"):
            tokens = tokens.unrevoked()
        if env := values.get("env"):
            tokens = tokens.filter(environments__slug=env)
        if days := values.get("unused"):
            tokens = tokens.unused_since(now - dt.timedelta(days=days))
        product, app = values.get("product"), values.get("app")
        if product or app:
            tokens = tokens.in_scope_of(
                product=self.products[product].pk if product else None,
                app=self.apps[app].pk if app else None,
            )
        return in_key_groups(tokens, values.get("sort", "key"))


def in_key_groups(tokens: TokenQuerySet, sort: str) -> TokenQuerySet:
    """`tokens` in the table's order: by `sort`, the tokens of one key together, and within a
    key by their first environment's name (Production before Sandbox)."""
    first_env = Subquery(
        Token.environments.through.objects.filter(token=OuterRef("pk"))
        .order_by("environment__name")
        .values("environment__name")[:1]
    )
    tokens = tokens.annotate(first_env=first_env)
    order = SORTS[sort][1]
    if sort not in KEY_GROUP_SORTS:  # by key: the key already keeps them together
        return tokens.order_by(order, "first_env", "pk")
    aggregate, direction, nulls = KEY_GROUP_SORTS[sort]
    tokens = tokens.annotate(key_group=Window(aggregate, partition_by=[F("key")]))
    group_order = getattr(F("key_group"), direction)(**nulls)
    return tokens.order_by(group_order, "key", order, "first_env", "pk")


class CatalogChoice(NamedTuple):
    pk: int
    slug: str
    name: str


def catalog_choices(workspace: Workspace) -> dict[str, list[CatalogChoice]]:
    """The workspace's environments, products and apps by name, for the filters: one query."""
    parts = [
        model.objects.filter(workspace=workspace)
        .annotate(kind=Value(kind))
        .values_list("kind", "pk", "slug", "name")
        .order_by()
        for kind, model in (("env", Environment), ("product", Product), ("app", App))
    ]
    rows = parts[0].union(*parts[1:], all=True).order_by("kind", "name", "pk")
    catalog: dict[str, list[CatalogChoice]] = {"env": [], "product": [], "app": []}
    for kind, pk, slug, name in rows:
        catalog[kind].append(CatalogChoice(pk, slug, name))
    return catalog


def list_url(workspace: Workspace, params: Mapping[str, object] | None = None) -> str:
    """The Tokens page of `workspace`, with `params` as its query string."""
    url = reverse("tokens:list", args=[workspace.slug])
    return f"{url}?{urlencode(params)}" if params else url


def sort_links(workspace: Workspace, filters: TokenFilterForm) -> dict[str, dict[str, str]]:
    """For each sortable column: the URL that sorts by it (or flips it) and its aria-sort."""
    current = filters.sort_key
    links: dict[str, dict[str, str]] = {}
    for column in ("key", "expiry", "last_used"):
        ascending, descending = column, f"-{column}"
        active = current in (ascending, descending)
        target = descending if current == ascending else ascending
        params = {**filters.values, "sort": target}
        if target == "key":
            del params["sort"]
        params.pop("page", None)
        if column == "last_used":  # "Recently used" first is the natural way to sort it
            aria = "descending" if current == ascending else "ascending"
        else:
            aria = "ascending" if current == ascending else "descending"
        links[column] = {"url": list_url(workspace, params), "aria": aria if active else ""}
    return links


if TYPE_CHECKING:

    class RowRelations(TypedDict):
        """What with_relations puts on each token, as plain lists."""

        scope_products: list[Product]
        scope_apps: list[App]
        envs: list[Environment]

    type TableToken = WithAnnotations[Token, RowRelations]


def table_tokens(tokens: TokenQuerySet) -> TokenQuerySet:
    """What a row needs of the tokens' own table: everything but the ciphertext. Their
    products, apps and environments come next, from `with_relations`."""
    return tokens.defer("ciphertext")


# Each relation a row shows: its attribute on the token, the link table, the item's model.
RELATIONS: tuple[tuple[str, Any, type[Environment | Product | App]], ...] = (
    ("envs", Token.environments.through, Environment),
    ("scope_products", Token.products.through, Product),
    ("scope_apps", Token.apps.through, App),
)


def relations_sql(count: int) -> str:
    """The links of `count` tokens to their environments, products and apps, with each item's
    id, name and slug, by name: (attribute, token id, item id, name, slug) per row."""
    quote = connection.ops.quote_name
    marks = ", ".join(["%s"] * count)
    parts = []
    for attribute, through, model in RELATIONS:
        token_column = quote(through._meta.get_field("token").column)
        item_column = quote(through._meta.get_field(model._meta.model_name).column)
        parts.append(
            f"SELECT '{attribute}', link.{token_column}, item.id, item.name, item.slug "
            f"FROM {quote(through._meta.db_table)} link "
            f"JOIN {quote(model._meta.db_table)} item ON item.id = link.{item_column} "
            f"WHERE link.{token_column} IN ({marks})"
        )
    return " UNION ALL ".join(parts) + " ORDER BY 4, 1, 3"


def with_relations(tokens: Iterable[Token]) -> list[TableToken]:
    """`tokens` with their environments, products and apps as plain lists by name (`envs`,
    `scope_products`, `scope_apps`; each item with its id, name and slug): one query whatever
    their number, each environment, product or app made once. In SQL of its own: a prefetch
    per relation took three queries and made an object per link, and the same query through
    the ORM spent five times as long being built as being run."""
    tokens = list(tokens)
    if not tokens:
        return []
    pk = Token._meta.pk
    assert pk is not None
    ids = [pk.get_db_prep_value(token.pk, connection) for token in tokens]
    with connection.cursor() as cursor:
        cursor.execute(relations_sql(len(ids)), ids * len(RELATIONS))
        links = cursor.fetchall()
    lists: dict[uuid.UUID, dict[str, list[Any]]] = {
        token.pk: {attribute: [] for attribute, _, _ in RELATIONS} for token in tokens
    }
    models = {attribute: model for attribute, _, model in RELATIONS}
    items: dict[tuple[str, int], Any] = {}
    for attribute, token_id, item_id, name, slug in links:
        item = items.get((attribute, item_id))
        if item is None:
            item = items[attribute, item_id] = models[attribute].from_db(
                connection.alias, ["id", "name", "slug"], (item_id, name, slug)
            )
        lists[pk.to_python(token_id)][attribute].append(item)
    for token in tokens:
        for attribute, related in lists[token.pk].items():
            setattr(token, attribute, related)
    return cast("list[TableToken]", tokens)


@dataclass(frozen=True, slots=True)
class TokenRow:
    """One row of the table: the token (fetched with `table_tokens`) and what the row works
    out once per request, so the template only prints."""

    token: TableToken
    urls: dict[str, str]  # edit, revoke, delete, detail (History), add (for another environment)
    status: str  # Active, Revoked, Expired
    expiry_state: ExpiryState
    highlighted: bool
    label: str = ""  # the key, and its environments when the key has other tokens
    same_key_as_previous: bool = False  # a second row of the key just above
    can_add_environment: bool = False  # an environment is still free for its key and scope

    @property
    def unscoped(self) -> bool:
        """No product and no app: every product and app of the workspace may use it."""
        return not self.token.scope_products and not self.token.scope_apps

    # A row shows this many scope chips; more collapse to the first few and a "+N" that opens
    # the rest (so a token scoped to a dozen apps does not stretch the table past its card).
    SCOPE_CHIPS_SHOWN = 4

    @property
    def scope_chips(self) -> list[tuple[str, str]]:
        """(kind, name) for each product, then each app, of the token's scope."""
        return [("product", p.name) for p in self.token.scope_products] + [
            ("app", a.name) for a in self.token.scope_apps
        ]

    @property
    def scope_split(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """The chips shown, and those behind "+N" (none when all fit)."""
        chips = self.scope_chips
        if len(chips) <= self.SCOPE_CHIPS_SHOWN:
            return chips, []
        return chips[: self.SCOPE_CHIPS_SHOWN - 1], chips[self.SCOPE_CHIPS_SHOWN - 1 :]


@dataclass
class KeyGroup:
    """Every token of one key (revoked ones too), fetched with `table_tokens`."""

    tokens: list[TableToken]

    @property
    def shared(self) -> bool:
        return len(self.tokens) > 1

    def taken_environments(self, scope: Scope) -> set[int]:
        """The environments where a token of this scope would overlap one of these: the
        Python side of `TokenQuerySet.overlapping` (shared_scope is proven equal to it)."""
        return {
            env.pk
            for token in self.tokens
            if not token.is_revoked and shared_scope(scope, scope_of(token)) is not None
            for env in token.envs
        }


def scope_of(token: TableToken) -> Scope:
    return Scope(frozenset(token.scope_products), frozenset(token.scope_apps))


def key_groups(workspace: Workspace, tokens: list[TableToken]) -> dict[str, KeyGroup]:
    """The page's tokens and every other token of their keys, by key: one query when no key
    of the page has a token off the page, two when some have, whatever their number."""
    others = table_tokens(
        Token.objects.for_workspace(workspace)
        .filter(key__in={token.key for token in tokens})
        .exclude(pk__in=[token.pk for token in tokens])
    )
    groups: dict[str, KeyGroup] = {}
    for token in [*tokens, *with_relations(others)]:
        groups.setdefault(token.key, KeyGroup([])).tokens.append(token)
    return groups


def table_rows(
    tokens: Iterable[Token],
    workspace: Workspace,
    now: dt.datetime,
    highlight: str = "",
    *,
    environment_ids: Iterable[int] = (),
) -> list[TokenRow]:
    """The page's tokens as rows. Each action URL is reversed once per page, not once per row:
    that keeps a 100-row page cheaper to render than the admin's changelist. The other tokens
    of the page's keys are read once (`key_groups`), to name each row by key and environments
    when its key has several tokens, and to offer "Add for another environment" where one of
    `environment_ids` (the workspace's) is still free for the row's key and scope."""
    tokens = with_relations(tokens)
    placeholder = str(uuid.UUID(int=0))
    actions = {
        name: reverse(f"tokens:{name}", args=[workspace.slug, placeholder])
        for name in ("edit", "revoke", "delete", "detail")
    }
    add_url = f"{reverse('tokens:create', args=[workspace.slug])}?from="
    groups = key_groups(workspace, tokens) if tokens else {}
    all_environments = set(environment_ids)
    rows = []
    previous_key = None
    for token in tokens:
        pk = str(token.pk)
        group = groups[token.key]
        free = all_environments - group.taken_environments(scope_of(token))
        urls = {name: url.replace(placeholder, pk) for name, url in actions.items()}
        urls["add"] = add_url + pk
        rows.append(
            TokenRow(
                token=token,
                urls=urls,
                status=token.status_label(now),
                expiry_state=token.expiry_state(now),
                highlighted=pk == highlight,
                label=token_label(token.key, token.envs, group.shared),
                same_key_as_previous=token.key == previous_key,
                can_add_environment=not token.is_revoked and bool(free),
            )
        )
        previous_key = token.key
    return rows


# --- the rows' markup ------------------------------------------------------------------------
# A row is written here in Python, as the admin writes its changelist's cells
# (`items_for_result`): in the template, its ninety-odd tags took three quarters of a 100-row
# page's time. Every text from the database goes through `text` (escaped); the rest is markup.


def text(value: object) -> str:
    """`value` escaped for HTML text or a quoted attribute: the same as Django's `escape`,
    without its wrapper for lazy strings (a 100-row page escapes a few thousand values)."""
    return html.escape(str(value))


class Reminder(Protocol):
    """The next expiry reminder of a token (notifications' `NextReminder`, which the template
    hands over: the notifications app sits on a floor above this one)."""

    @property
    def on(self) -> dt.date: ...

    @property
    def label(self) -> str: ...


def scope_chip_html(kind: str, name: str) -> str:
    """One product or app of a token's scope (`kind`: "product" or "app")."""
    icon = "bi-box" if kind == "product" else "bi-window"
    return (
        f'<span class="chip chip-{kind}"><i aria-hidden="true" class="bi {icon}"></i> '
        f"{text(name)}</span>"
    )


def scope_html(row: TokenRow) -> str:
    """The scope's chips: the first few, the rest behind "+N" (a native disclosure, so keyboard
    and screen readers open it without script; its title lists them on hover), or "All
    products & apps" for a token scoped to none."""
    shown, rest = row.scope_split
    more = ""
    if rest:
        more = (
            '<details class="chips-more">\n'
            f'<summary class="chip chip-more" title="{text(", ".join(n for _, n in rest))}">'
            f'+{len(rest)}<span class="visually-hidden"> more: show all '
            f"{len(shown) + len(rest)} products and apps</span></summary>\n"
            f'<div class="chips">{"".join(scope_chip_html(k, n) for k, n in rest)}</div>\n'
            "</details>"
        )
    everything = (
        '<span class="chip chip-all">All products &amp; apps</span>' if row.unscoped else ""
    )
    chips = "".join(scope_chip_html(kind, name) for kind, name in shown)
    return f'<div class="chips">\n{chips}\n{more}\n{everything}\n</div>'


EXPIRY_BADGES = {
    ExpiryState.EXPIRED: '<span class="badge badge-expired">Expired</span>',
    ExpiryState.SOON: '<span class="badge badge-soon"><i aria-hidden="true" '
    'class="bi bi-hourglass-split"></i> Expires soon</span>',
    ExpiryState.NONE: "",
}
NEVER = '<span class="text-body-secondary">Never</span>'
# Each type's label, as get_type_display gives it (which builds this dict again for each call).
TYPE_LABELS: dict[str, str] = dict(TokenType.choices)


def expiry_html(row: TokenRow, now: dt.datetime, reminder: Reminder | None) -> str:
    """The expiry's date, its badge (expired, expiring soon) and the next reminder if any."""
    expires_at = row.token.expires_at
    if not expires_at:
        return NEVER
    note = ""
    if reminder:
        note = (
            '<span class="next-reminder small text-body-secondary"><i aria-hidden="true" '
            f'class="bi bi-bell"></i> Reminder {when_html(reminder.on, now)} '
            f"({text(reminder.label)})</span>"
        )
    return (
        f'<div class="expiry">\n<span class="expiry-date">{when_html(expires_at, now)}</span>\n'
        f"{EXPIRY_BADGES[row.expiry_state]}\n{note}\n</div>"
    )


# The row's actions: (name, label, icon, extra class); History for everyone, the others for
# those who may manage tokens (Edit and Revoke while the token is not revoked).
ACTIONS = (
    ("edit", "Edit", "bi-pencil", ""),
    ("revoke", "Revoke", "bi-slash-circle", ""),
    ("delete", "Delete", "bi-trash3", " btn-danger-subtle"),
)


def actions_html(row: TokenRow, label: str, can_manage: bool) -> str:
    """`label` is the row's label, escaped."""
    links = [
        f'<a class="btn btn-sm btn-light" href="{row.urls["detail"]}" aria-label="History of '
        f'{label}" title="History and usage"><i aria-hidden="true" class="bi bi-clock-history">'
        '</i><span class="action-text">History</span></a>'
    ]
    if can_manage:
        for name, action, icon, extra in ACTIONS[2:] if row.token.is_revoked else ACTIONS:
            url = row.urls[name]
            links.append(
                f'<a class="btn btn-sm btn-light{extra}" href="{url}" hx-get="{url}" '
                f'aria-label="{action} {label}" title="{action}"><i aria-hidden="true" '
                f'class="bi {icon}"></i><span class="action-text">{action}</span></a>'
            )
    return '<div class="row-actions">\n' + "\n".join(links) + "\n</div>"


def row_html(
    row: TokenRow, *, can_manage: bool, now: dt.datetime, reminder: Reminder | None = None
) -> SafeString:
    """One row of the Tokens table (`<tr>`), for a person who may manage tokens or only read
    them; `reminder` is the token's next expiry reminder, shown when given. The action URLs are
    the page's own (`table_rows`, from a UUID), so they need no escaping."""
    token = row.token
    pk = token.pk
    label = text(row.label or token.key)
    status = row.status
    classes = f"token-row token-{status.lower()}"
    if row.same_key_as_previous:
        classes += " token-row-same-key"
    if row.highlighted:
        classes += " row-highlight"
    select = ""
    if can_manage:  # the row's box joins the bulk bar's form (form="token-bulk")
        select = (
            f'<td class="col-select"><input class="form-check-input" type="checkbox" '
            f'name="tokens" value="{pk}" form="token-bulk" id="select-{pk}" data-bulk-item '
            f'aria-label="Select {label}"></td>\n'
        )
    key, reference = text(token.key), text(token.reference)
    type_label = text(TYPE_LABELS.get(token.type, token.type))
    hint = ""
    if token.value_hint:
        hint = (
            '<span class="token-hint" title="The value\'s last four characters">'
            f"{text(token.hint)}</span>"
        )
    if description := token.description:
        focusable = ' tabindex="0"' if len(description) > 40 else ""
        description = text(description)
        description = (
            f'<span class="description" title="{description}"{focusable}>{description}</span>'
        )
    else:
        description = '<span class="text-body-tertiary">—</span>'
    environments = "".join(
        f'<span class="chip chip-env chip-env-{text(env.slug)}">{text(env.name)}</span>'
        for env in token.envs
    )
    if can_manage and row.can_add_environment:
        add = row.urls["add"]
        environments += (
            f'<a class="chip chip-add" href="{add}" hx-get="{add}" aria-label="Add {label} for '
            'another environment" title="Add for another environment"><i aria-hidden="true" '
            'class="bi bi-plus-lg"></i></a>'
        )
    last_used = when_html(token.last_used_at, now) if token.last_used_at else NEVER
    return mark_safe(
        f'<tr data-token-id="{pk}" class="{classes}">\n{select}'
        '<td class="col-key" data-label="Key">\n<div class="key-line">\n'
        # {% token_key %}'s markup (lib/templatetags/ui.py), written here for the row's speed
        f'<span class="token-key" title="{key}">{wrappable_key(token.key)}</span>\n'
        f'<button type="button" class="copy-ref" data-copy="{reference}" aria-label="Copy '
        f'{reference}" title="Copy {reference}"><i aria-hidden="true" class="bi bi-copy"></i>'
        "</button>\n</div>\n</td>\n"
        '<td class="col-type" data-label="Type">\n'
        f'<div><span class="type-label">{type_label}</span>{hint}</div>\n'
        "</td>\n"
        f'<td class="col-description" data-label="Description">{description}</td>\n'
        f'<td class="col-scope" data-label="Scope">\n{scope_html(row)}\n</td>\n'
        '<td class="col-envs" data-label="Environments">\n'
        f'<div class="chips">{environments}</div>\n</td>\n'
        f'<td class="col-expiry" data-label="Expiry">\n{expiry_html(row, now, reminder)}\n</td>\n'
        f'<td class="col-status" data-label="Status"><span class="status status-{status.lower()}">'
        f"{text(status)}</span></td>\n"
        f'<td class="col-used" data-label="Last used">{last_used}</td>\n'
        f'<td class="col-actions" data-label="Actions">\n{actions_html(row, label, can_manage)}\n'
        "</td>\n</tr>"
    )
