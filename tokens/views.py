"""Tokens page views."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from tokens.models import Token
from workspaces.access import get_workspace_for


@login_required
def token_list(request: HttpRequest, slug: str) -> HttpResponse:
    workspace = get_workspace_for(request, slug)
    tokens = Token.objects.for_workspace(workspace).with_relations()
    return render(request, "tokens/tokens.html", {"nav": "tokens", "tokens": tokens})
