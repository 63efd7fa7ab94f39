"""The floors of the house (STYLE.md, Layout; docs/architecture.md), read from the import
statements of the source.

Every `import` counts, wherever it is: at the top, inside a function or under TYPE_CHECKING.
An app imports only apps on floors below its own, never one beside or above it; and no files
import each other round in a circle. Names in strings (a foreign key to "workspaces.Workspace",
a migration's dependencies) are not imports: that is how a low floor names a model above it.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FEATURE_APPS = (
    "access",
    "accounts",
    "api",
    "audit",
    "backups",
    "identities",
    "imports",
    "keys",
    "notifications",
    "tokens",
    "workspaces",
)
PROJECT = (*FEATURE_APPS, "config", "lib")
# Bottom first. Apps on one floor do not import each other.
FLOORS = (
    ("lib",),  # plumbing: imports no app
    ("keys",),  # master keys, data keys, sealing
    ("audit",),
    ("workspaces",),
    ("tokens", "accounts"),
    ("access", "imports", "notifications", "backups"),
    ("identities",),  # uses access keys' context rules
    ("api",),
    ("config",),  # settings, urls, wsgi/asgi: mounts everything
)
FLOOR_OF = {app: number for number, apps in enumerate(FLOORS) for app in apps}
# Modules an app keeps to itself: its pages, its admin and its commands.
PRIVATE = ("views", "admin", "management")
# The decorators that signed_in_view stacks; a view asks for sign-in through it.
SIGN_IN = {"login_required"}


def imports_of(package: str) -> list[tuple[str, str, list[str]]]:
    """(file, module, names) for every import in `package`'s Python files."""
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        where = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text(), filename=where)):
            if isinstance(node, ast.Import):
                found += [(where, alias.name, []) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.append((where, node.module, [alias.name for alias in node.names]))
    return found


def top(module: str) -> str:
    return module.split(".")[0]


def offending(package: str, wrong: Callable[[str, list[str]], bool]) -> list[str]:
    """'file: module' for each import in `package` for which `wrong(module, names)` holds."""
    return [
        f"{file}: {module}" for file, module, names in imports_of(package) if wrong(module, names)
    ]


def outside(*allowed: str) -> Callable[[str, list[str]], bool]:
    """An import of a project package other than `allowed`."""
    return lambda module, _: top(module) in PROJECT and top(module) not in allowed


def test_lib_imports_nothing_of_the_project():
    assert not offending("lib", outside("lib"))


def test_every_app_has_a_floor():
    assert sorted(FLOOR_OF) == sorted(PROJECT)


# The audit app's pages (Activity, its export, the admin) stand one step above the workspaces
# app: they fetch the workspace through its access helper. The trail itself (the model, its
# signal, its wording) stays on audit's floor, below workspaces.
AUDIT_PAGES = ("audit/views.py", "audit/urls.py", "audit/admin.py")


def test_audits_pages_build_only_on_the_trail_workspaces_keys_and_lib():
    pages = [
        (file, module)
        for file, module, names in imports_of("audit")
        if file in AUDIT_PAGES and outside("audit", "workspaces", "keys", "lib")(module, names)
    ]
    assert not pages


@pytest.mark.parametrize("app", PROJECT)
def test_an_app_imports_only_apps_below_it(app):
    def not_below(module: str, _: list[str]) -> bool:
        other = top(module)
        return other in FLOOR_OF and other != app and FLOOR_OF[other] >= FLOOR_OF[app]

    assert not [
        found for found in offending(app, not_below) if found.split(":")[0] not in AUDIT_PAGES
    ]


def module_graph() -> dict[str, set[str]]:
    """Each project module (tokens.models, keys.crypto, ...) -> the project modules it imports."""
    files = {}
    for package in PROJECT:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        here = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    package = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join([*package, base] if base else package)
                targets |= {base, *(f"{base}.{alias.name}" for alias in node.names)}
        for target in targets:
            while target and target not in files:  # `from x import Name`: the module x
                target = target.rpartition(".")[0]
            if target and target != module:
                graph.setdefault(module, set()).add(target)
    return graph


def circles(graph: dict[str, set[str]]) -> Iterator[list[str]]:
    """The import circles: each set of modules that import each other round (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> Iterator[list[str]]:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in graph.get(module, ()):
            if target not in index:
                yield from visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            members = stack[stack.index(module) :]
            del stack[stack.index(module) :]
            if len(members) > 1:
                yield sorted(members)

    for module in sorted(graph):
        if module not in index:
            yield from visit(module)


def test_no_import_circle_between_files_of_different_apps():
    assert not [c for c in circles(module_graph()) if len({top(m) for m in c}) > 1]


def test_no_import_circle_between_files_of_one_app():
    """notifications' tasks, delivery and events used to import each other (issue 22)."""
    assert not list(circles(module_graph()))


def test_the_circle_check_sees_a_circle():
    assert list(circles({"a.x": {"b.y"}, "b.y": {"a.x"}, "a.z": {"a.x"}})) == [["a.x", "b.y"]]


def test_the_crypto_layer_knows_no_model_and_no_check():
    """keys/crypto.py used to import tokens.models and tokens.checks, which imported it back."""
    assert module_graph().get("keys.crypto", set()) == set()


@pytest.mark.parametrize("app", FEATURE_APPS)
def test_no_app_imports_another_apps_views_admin_or_commands(app):
    """Shared plumbing lives in lib/, not in the app that happened to need it first."""

    def private_to_another(module: str, _: list[str]) -> bool:
        app_of, _, rest = module.partition(".")
        return app_of in FEATURE_APPS and app_of != app and rest.split(".")[0] in PRIVATE

    assert not offending(app, private_to_another)


@pytest.mark.parametrize("app", FEATURE_APPS)
def test_views_ask_for_sign_in_through_signed_in_view(app):
    """One decorator stack for every signed-in page: login_required is applied in lib only."""

    def applies_sign_in(module: str, names: list[str]) -> bool:
        return module == "django.contrib.auth.decorators" and bool(SIGN_IN & set(names))

    assert not offending(app, applies_sign_in)


@pytest.mark.parametrize("package", [*FEATURE_APPS, "tests"])
def test_the_audit_trail_is_imported_from_the_audit_app(package):
    """tokens.models is no second address for AuditEvent and AuditAction."""
    found = [
        f"{file}: {module}"
        for file, module, names in imports_of(package)
        if module == "tokens.models" and {"AuditEvent", "AuditAction"} & set(names)
    ]
    assert not found


def test_the_reference_grammar_is_pure_python():
    """tokens/references/grammar.py imports nothing of Django or the project: its property
    tests need no settings and no database, and anything may parse a template."""
    allowed = {"__future__", "re", "collections", "dataclasses", "itertools", "operator"}
    grammar = "tokens/references/grammar.py"
    imported = [module for file, module, _ in imports_of("tokens") if file == grammar]
    assert imported, "grammar.py was not read"
    assert {top(module) for module in imported} <= allowed, imported
