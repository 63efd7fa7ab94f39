"""Every URL of the project, how to address it, and who may use it: the security suite's map.

`project_url_names()` walks the project's URL resolver, so a new view appears here on its own;
`ROUTES` says, for each URL name, how to build its arguments from a workspace's objects and
which role each method needs. The isolation test fails when a URL exists that `ROUTES` does not
describe, so whoever adds a view must say here who may use it.

`World` is the cast: workspace A ("acme") with an owner, an editor and a viewer, and workspace B
("globex") whose owner is the outsider. Each workspace has a product, an app, an extra
environment, members, a token with a random value and an access key (the leak scan looks for
those values and the key).
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from accounts.models import Invitation
from imports.models import PendingImport
from tests.factories import (
    AppFactory,
    EnvironmentFactory,
    MembershipFactory,
    ProductFactory,
    TokenFactory,
    UserFactory,
    WorkspaceFactory,
    make_access_key,
    make_delivery,
    make_webhook,
    make_workload_identity,
)
from tokens.models import Token
from workspaces.models import Membership, Role, Workspace

# URL prefixes with their own tests (the admin: staff only; accounts: Django's sign-in views).
SEPARATELY_TESTED_PREFIXES = ("admin/", "accounts/")


class Access(enum.IntEnum):
    """Who may use a method of a URL. Workspace URLs need a membership of at least that role."""

    SIGNED_IN = 0  # any signed-in user; not tied to a workspace
    VIEWER = 1
    EDITOR = 2
    OWNER = 3


ROLE_ACCESS = {Role.VIEWER: Access.VIEWER, Role.EDITOR: Access.EDITOR, Role.OWNER: Access.OWNER}


@dataclass
class Objects:
    """One workspace's objects, as URL arguments take them."""

    workspace: Workspace
    product: object
    app: object
    environment: object
    token: Token
    member: Membership  # a member other than the acting users' own memberships
    values: list[str] = field(default_factory=list)
    access_key: object = None  # an access key bound to the workspace's production
    access_key_secret: str = ""  # the whole key (the leak scan looks for it)
    webhook: object = None  # a webhook with one delivery
    webhook_secret: str = ""  # its signing secret (the leak scan looks for it)
    delivery: object = None
    pending_import: object = None  # a .env file between its preview and its import, made by
    # the acting editor in A (Route.only_for) and by B's owner in B
    invitation: object = None  # a pending invitation to the workspace
    invitation_key: str = ""  # its key (the leak scan looks for it)
    workload_identity: object = None  # a GitHub Actions identity bound to the staging


Kwargs = Callable[[Objects], dict]


@dataclass(frozen=True)
class Route:
    """How to reach one URL name (one variant of its arguments) and who may use each method.

    `get`/`post` is None when the URL refuses that method (405). `only_for` names the one
    acting user (e.g. "editor") whose object the URL addresses: any other member with the role
    gets 404, as for an object that does not exist (a pending import is its maker's alone).
    """

    name: str
    kwargs: Kwargs
    get: Access | None
    post: Access | None
    label: str = ""
    only_for: str = ""
    query: Callable[[Objects], dict] | None = None  # a query string the URL is reached with

    def in_workspace(self, objects: Objects) -> bool:
        return "slug" in self.kwargs(objects)

    @property
    def id(self) -> str:
        return f"{self.name}[{self.label}]" if self.label else self.name

    def url(self, objects: Objects, slug: str | None = None) -> str:
        kwargs = self.kwargs(objects)
        if slug is not None and "slug" in kwargs:
            kwargs["slug"] = slug
        path = reverse(self.name, kwargs=kwargs)
        return f"{path}?{urlencode(self.query(objects))}" if self.query else path

    def has_object_arguments(self, objects: Objects) -> bool:
        return bool(set(self.kwargs(objects)) - {"slug", "kind"})


def _slug(o: Objects) -> dict:
    return {"slug": o.workspace.slug}


def _catalog(kind: str, attr: str | None) -> Kwargs:
    def build(o: Objects) -> dict:
        kwargs = {"slug": o.workspace.slug, "kind": kind}
        if attr:
            kwargs["pk"] = getattr(o, attr).pk
        return kwargs

    return build


def _token(o: Objects) -> dict:
    return {"slug": o.workspace.slug, "pk": o.token.pk}


def _member(o: Objects) -> dict:
    return {"slug": o.workspace.slug, "pk": o.member.pk}


def _access_key(o: Objects) -> dict:
    return {"slug": o.workspace.slug, "pk": o.access_key.pk}


def _identity(o: Objects) -> dict:
    return {"slug": o.workspace.slug, "pk": o.workload_identity.pk}


def _pending_import(o: Objects) -> dict:
    return {"slug": o.workspace.slug, "pk": o.pending_import.pk}


def _webhook(o: Objects) -> dict:
    return {"slug": o.workspace.slug, "pk": o.webhook.pk}


def _invitation(o: Objects) -> dict:
    return {"slug": o.workspace.slug, "pk": o.invitation.pk}


def _delivery(o: Objects) -> dict:
    return {"slug": o.workspace.slug, "pk": o.webhook.pk, "delivery": o.delivery.pk}


VIEW, EDIT, OWN, ANY = Access.VIEWER, Access.EDITOR, Access.OWNER, Access.SIGNED_IN
CATALOG_KINDS = (("products", "product"), ("apps", "app"), ("environments", "environment"))

ROUTES: list[Route | ApiRoute | PublicRoute] = [
    Route("home", lambda o: {}, get=ANY, post=None),
    Route("workspace_create", lambda o: {}, get=ANY, post=ANY),
    Route("products", _slug, get=VIEW, post=None),
    Route("environments", _slug, get=VIEW, post=None),
    *[
        Route("catalog_add", _catalog(k, None), get=OWN, post=OWN, label=k)
        for k, _ in CATALOG_KINDS
    ],
    *[Route("catalog_edit", _catalog(k, a), get=OWN, post=OWN, label=k) for k, a in CATALOG_KINDS],
    *[
        Route("catalog_delete", _catalog(k, a), get=OWN, post=OWN, label=k)
        for k, a in CATALOG_KINDS
    ],
    Route("members", _slug, get=VIEW, post=None),
    Route("invitation_create", _slug, get=OWN, post=OWN),
    Route("invitation_resend", _invitation, get=OWN, post=OWN),
    Route("invitation_revoke", _invitation, get=OWN, post=OWN),
    Route("two_factor", _slug, get=OWN, post=OWN),
    Route("sso_requirement", _slug, get=OWN, post=OWN),
    Route("workspace_leave", _slug, get=VIEW, post=VIEW),
    Route("account", lambda o: {}, get=ANY, post=None),
    Route("member_edit", _member, get=OWN, post=OWN),
    Route("member_remove", _member, get=OWN, post=OWN),
    Route("tokens:list", _slug, get=VIEW, post=None),
    Route("audit:activity", _slug, get=VIEW, post=None),
    Route("audit:export", _slug, get=VIEW, post=None),
    Route("tokens:compare", _slug, get=VIEW, post=None),
    Route("tokens:check", _slug, get=VIEW, post=VIEW),
    Route(
        "tokens:compare",
        _slug,
        get=VIEW,
        post=None,
        label="missing",
        query=lambda o: {"missing": "on"},
    ),
    Route("tokens:create", _slug, get=EDIT, post=EDIT),
    Route("tokens:key_hint", _slug, get=EDIT, post=None, query=lambda o: {"key": o.token.key}),
    Route(
        "tokens:create",
        _slug,
        get=EDIT,
        post=EDIT,
        label="add for another environment",
        query=lambda o: {"from": o.token.pk},
    ),
    Route("tokens:edit", _token, get=EDIT, post=EDIT),
    Route("tokens:revoke", _token, get=EDIT, post=EDIT),
    Route("tokens:delete", _token, get=EDIT, post=EDIT),
    Route("tokens:detail", _token, get=VIEW, post=None),
    Route("tokens:restore", _token, get=EDIT, post=EDIT),
    Route("tokens:destroy_version", _token, get=EDIT, post=EDIT),
    Route("tokens:bulk", _slug, get=None, post=EDIT),
    Route("imports:start", _slug, get=EDIT, post=EDIT),
    Route("imports:preview", _pending_import, get=EDIT, post=EDIT, only_for="editor"),
    Route("access:list", _slug, get=VIEW, post=None),
    Route("access:create", _slug, get=OWN, post=OWN),
    Route("access:revoke", _access_key, get=OWN, post=OWN),
    Route("access:delete", _access_key, get=OWN, post=OWN),
    Route("identities:list", _slug, get=VIEW, post=None),
    Route("identities:create", _slug, get=OWN, post=OWN),
    Route("identities:delete", _identity, get=OWN, post=OWN),
    Route("notifications:webhooks", _slug, get=OWN, post=None),
    Route("notifications:webhook_create", _slug, get=OWN, post=OWN),
    Route("notifications:deliveries", _webhook, get=OWN, post=None),
    Route("notifications:webhook_edit", _webhook, get=OWN, post=OWN),
    Route("notifications:webhook_rotate", _webhook, get=OWN, post=OWN),
    Route("notifications:webhook_delete", _webhook, get=OWN, post=OWN),
    Route("notifications:redeliver", _delivery, get=None, post=OWN),
    Route("notifications:reminders", _slug, get=VIEW, post=EDIT),
    Route("notifications:workspace_reminders", _slug, get=None, post=OWN),
]


@dataclass(frozen=True)
class PublicRoute:
    """A page anyone may open, signed in or not: the invitation link and the page it leads to.
    The session walks skip it (anonymous users are not sent to sign in); the isolation test
    checks it answers everyone without an error and shows no workspace's data."""

    name: str
    kwargs: Kwargs
    methods: tuple[str, ...] = ("GET",)

    @property
    def id(self) -> str:
        return self.name

    def url(self, objects: Objects) -> str:
        return reverse(self.name, kwargs=self.kwargs(objects))


ROUTES += [
    PublicRoute("invitation_open", lambda o: {"key": o.invitation_key}),
    PublicRoute("invitation_accept", lambda o: {}, methods=("GET", "POST")),
]


@dataclass(frozen=True)
class ApiRoute:
    """An HTTP API URL: authenticated by an access key (`Authorization: Bearer`), never by a
    session, so the session-based walks skip it and tests/test_api_isolation.py walks it
    instead. `public` URLs (health, schema) take no key and reveal no workspace data."""

    name: str
    method: str
    public: bool = False
    body: bytes = b""
    status: int = 200  # what a public URL answers the walk's request
    args: tuple[str, ...] = ()  # the URL's arguments (api:value: a Token Key of workspace A)
    template: str = ""  # its path as the OpenAPI document writes it, when it has arguments

    @property
    def id(self) -> str:
        return f"{self.name}[HEAD]" if self.method == "HEAD" else self.name

    def url(self) -> str:
        return reverse(self.name, args=self.args)

    def documented_path(self) -> str:
        return self.template or self.url()


ROUTES += [
    ApiRoute("api:resolve", "POST", body=b"$Secret{ACME_TOKEN_0}"),
    ApiRoute("api:values", "GET"),
    ApiRoute("api:values", "HEAD"),  # the change feed's "did it change?", no value read
    ApiRoute("api:value", "GET", args=("ACME_TOKEN_0",), template="/api/v1/values/{name}"),
    ApiRoute("api:openapi", "GET", public=True),
    # The OIDC exchange takes a CI job's token instead of a key: one no issuer signed is a 401.
    ApiRoute(
        "api:oidc_exchange",
        "POST",
        public=True,
        body=b'{"identity": "acme/acme-ci", "token": "x.y.z"}',
        status=401,
    ),
    ApiRoute("healthz", "GET", public=True),
]


def walk_patterns(
    patterns=None, prefix: str = "", namespace: str = ""
) -> Iterator[tuple[str, str]]:
    """(full URL name, route text) for every named pattern under the project's URL resolver."""
    if patterns is None:
        patterns = get_resolver().url_patterns
    for entry in patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            ns = namespace
            if entry.namespace:
                ns = f"{namespace}{entry.namespace}:"
            yield from walk_patterns(entry.url_patterns, route, ns)
        elif isinstance(entry, URLPattern):
            yield (f"{namespace}{entry.name}" if entry.name else f"<unnamed {route}>", route)


def project_url_names() -> dict[str, str]:
    """URL name -> route, for every URL outside the separately tested prefixes."""
    return {
        name: route
        for name, route in walk_patterns()
        if not route.startswith(SEPARATELY_TESTED_PREFIXES)
    }


def routes_in_project() -> list[Route]:
    """The session-authenticated routes (pages and fragments)."""
    names = project_url_names()
    return [route for route in ROUTES if isinstance(route, Route) and route.name in names]


def public_routes_in_project() -> list[PublicRoute]:
    names = project_url_names()
    return [route for route in ROUTES if isinstance(route, PublicRoute) and route.name in names]


def api_routes_in_project() -> list[ApiRoute]:
    names = project_url_names()
    return [route for route in ROUTES if isinstance(route, ApiRoute) and route.name in names]


# --- the cast -----------------------------------------------------------------------------


def distinctive_value() -> str:
    """A random token value no page, log or file could contain by chance."""
    return f"cofferleak{secrets.token_hex(16)}"


def _objects(workspace: Workspace, prefix: str, tokens: int, importer) -> Objects:
    product = ProductFactory(workspace=workspace, name=f"{prefix} Payments", slug="payments")
    app = AppFactory(workspace=workspace, name=f"{prefix} Checkout", slug="checkout")
    environment = EnvironmentFactory(workspace=workspace, name=f"{prefix} Staging", slug="staging")
    member = MembershipFactory(
        workspace=workspace,
        user=UserFactory(username=f"{prefix.lower()}-member", password=None),
        role=Role.VIEWER,
    )
    values = [distinctive_value() for _ in range(tokens)]
    created = [
        TokenFactory(
            workspace=workspace,
            key=f"{prefix.upper()}_TOKEN_{n}",
            value=value,
            description=f"{prefix} token {n}",
            products=[product],
            apps=[app],
        )
        for n, value in enumerate(values)
    ]
    access_key, secret = make_access_key(
        workspace, name=f"{prefix.lower()}-deploy", environment=environment
    )
    webhook, webhook_secret = make_webhook(
        workspace, url=f"https://hooks.example.com/{prefix.lower()}"
    )
    delivery = make_delivery(webhook, body='{"type":"token.revoked"}')
    pending_import = PendingImport.seal(
        workspace, f"{prefix.upper()}_IMPORTED={values[0]}\n", by=importer
    )
    invitation, invitation_key = Invitation.create(
        workspace, email=f"invited@{prefix.lower()}.example", role=Role.EDITOR, by=None
    )
    identity = make_workload_identity(
        workspace,
        name=f"{prefix.lower()}-ci",
        issuer="https://token.actions.githubusercontent.com",
        environment=environment,
        conditions=[{"claim": "repository", "pattern": f"{prefix.lower()}/app"}],
    )
    return Objects(
        workspace,
        product,
        app,
        environment,
        created[0],
        member,
        values,
        access_key,
        secret,
        webhook,
        webhook_secret,
        delivery,
        pending_import,
        invitation,
        invitation_key,
        identity,
    )


@dataclass
class World:
    a: Objects
    b: Objects
    users: dict[str, object]

    def client(self, who: str) -> Client:
        """A signed-in client: "owner", "editor", "viewer" (of A), "outsider" (B's owner)."""
        client = Client()
        if who != "anonymous":
            client.force_login(self.users[who])
        return client

    @property
    def values(self) -> list[str]:
        return self.a.values + self.b.values


def build_world(tokens_per_workspace: int = 2) -> World:
    acme = WorkspaceFactory(name="Acme", slug="acme")
    globex = WorkspaceFactory(name="Globex", slug="globex")
    users = {}
    for who, workspace, role in (
        ("owner", acme, Role.OWNER),
        ("editor", acme, Role.EDITOR),
        ("viewer", acme, Role.VIEWER),
        ("outsider", globex, Role.OWNER),
    ):
        users[who] = UserFactory(username=f"{who}-user", password=None)  # fast: no hashing
        MembershipFactory(workspace=workspace, user=users[who], role=role)
    return World(
        a=_objects(acme, "Acme", tokens_per_workspace, importer=users["editor"]),
        b=_objects(globex, "Globex", tokens_per_workspace, importer=users["outsider"]),
        users=users,
    )
