"""What the management commands that take a use context share: `--workspace`, `--environment`,
`--product` and `--app` turned into a `UseContext`, or a usage error (exit status 2) naming
what was not found and what there is."""

from __future__ import annotations

from lib.commands import usage_error
from tokens.models import UseContext
from workspaces.models import App, Environment, Product, Workspace


def use_context(
    workspace_slug: str, environment: str, product: str | None, app: str | None
) -> UseContext:
    workspace = Workspace.objects.filter(slug=workspace_slug).first()
    if workspace is None:
        raise usage_error(f'Workspace "{workspace_slug}" not found.')
    found = catalog_item(workspace, "environment", environment)
    assert isinstance(found, Environment)  # a slug was given, so an item or a usage error
    return UseContext(
        environment=found,
        product=catalog_item(workspace, "product", product),  # type: ignore[arg-type]
        app=catalog_item(workspace, "app", app),  # type: ignore[arg-type]
    )


def every_environment(
    workspace_slug: str, product: str | None, app: str | None
) -> list[UseContext]:
    """A use context per environment of the workspace (by name), with the product and app."""
    workspace = Workspace.objects.filter(slug=workspace_slug).first()
    if workspace is None:
        raise usage_error(f'Workspace "{workspace_slug}" not found.')
    found_product = catalog_item(workspace, "product", product)
    found_app = catalog_item(workspace, "app", app)
    return [
        UseContext(environment, product=found_product, app=found_app)  # type: ignore[arg-type]
        for environment in workspace.environments.all()
    ]


def catalog_item(
    workspace: Workspace, kind: str, slug: str | None
) -> Environment | Product | App | None:
    """The workspace's environment, product or app (`kind`) with this slug; None for no slug."""
    if slug is None:
        return None
    items = {item.slug: item for item in getattr(workspace, f"{kind}s").all()}
    if slug in items:
        return items[slug]
    known = ", ".join(sorted(items)) or "none"
    raise usage_error(
        f'{kind.capitalize()} "{slug}" not found in workspace {workspace.slug} '
        f"(its {kind}s: {known})."
    )
