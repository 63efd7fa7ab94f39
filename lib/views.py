"""View decorators every signed-in page shares.

`signed_in_view` is the one decorator stack of a signed-in page; security markers that differ
from view to view (`sensitive_post_parameters`, `recent_auth_required`) stay visible at the
view, next to it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Concatenate

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.template.loader import render_to_string
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods
from django.views.decorators.vary import vary_on_headers

logger = logging.getLogger("coffer.crypto")


def signed_in_view[V: Callable[..., HttpResponseBase]](
    *methods: str, fragment: bool = False
) -> Callable[[V], V]:
    """A page for signed-in users only: anyone else is sent to sign in; the response is never
    cached; only `methods` are allowed (405 otherwise). `fragment=True` for a URL that answers
    htmx with a fragment and a plain request with the whole page: `Vary: HX-Request`, so no
    cache hands one the other's answer.
    """

    def decorate(view: V) -> V:
        wrapped = require_http_methods(list(methods))(view)
        if fragment:
            wrapped = vary_on_headers("HX-Request")(wrapped)
        return login_required(never_cache(wrapped))

    return decorate


def answers_crypto_errors[R: HttpRequest, **P](
    *errors: type[Exception],
) -> Callable[
    [Callable[Concatenate[R, P], HttpResponse]], Callable[Concatenate[R, P], HttpResponse]
]:
    """A wrong or missing master key while reading or saving a value: a styled 503 page saying
    so, one log line naming the workspace and master key id (the messages carry no value).

    The view names the errors (`@answers_crypto_errors(CryptoError)`): they belong to the
    crypto module, which this plumbing must not import.
    """

    def decorate(
        view: Callable[Concatenate[R, P], HttpResponse],
    ) -> Callable[Concatenate[R, P], HttpResponse]:
        @functools.wraps(view)
        def wrapper(request: R, *args: P.args, **kwargs: P.kwargs) -> HttpResponse:
            try:
                return view(request, *args, **kwargs)
            except errors as error:
                logger.error("%s %s refused: %s", request.method, request.path, error)
                response = HttpResponse(render_to_string("master_key_error.html"), status=503)
                response["Cache-Control"] = "no-store"
                return response

        return wrapper

    return decorate
