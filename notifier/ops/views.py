"""Operations endpoints: plain Django views, outside the API (no token, not in its schema)."""

import hmac
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from notifier.core.errors import error_body, error_response, mark_logged
from notifier.ops import health, metrics

View = Callable[[HttpRequest], HttpResponse]
SAFE_METHODS = ("GET", "HEAD")


def require_safe(view: View) -> View:
    """GET and HEAD only; any other method is a 405 in the error shape. No CSRF check: these
    views change nothing and read no cookie."""

    @csrf_exempt
    @wraps(view)
    def safe_only(request: HttpRequest) -> HttpResponse:
        if request.method not in SAFE_METHODS:
            response = error_response(
                405, "method_not_allowed", f'Method "{request.method}" not allowed.'
            )
            response["Allow"] = ", ".join(SAFE_METHODS)
            return response
        return view(request)

    return safe_only


@require_safe
@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus scrape; wants `Authorization: Bearer <METRICS_TOKEN>` when that is set."""
    token = settings.METRICS_TOKEN
    if token and not hmac.compare_digest(
        request.headers.get("Authorization", "").encode(), f"Bearer {token}".encode()
    ):
        response = JsonResponse(
            error_body(401, "not_authenticated", "Send Authorization: Bearer <METRICS_TOKEN>.", {}),
            status=401,
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    body, content_type = metrics.exposition(accept=request.headers.get("Accept", ""))
    return HttpResponse(body, content_type=content_type)


@require_safe
@never_cache
def health_live(request: HttpRequest) -> HttpResponse:
    """The process is up and serving requests; depends on nothing else."""
    return JsonResponse({"status": "ok"})


@require_safe
@never_cache
def health_ready(request: HttpRequest) -> HttpResponse:
    """200 when the database and the broker answer, else 503 naming the failed check."""
    report = health.readiness()
    response = JsonResponse(report, status=200 if report["status"] == "ok" else 503)
    # A failing check is logged by `health`, once; not again by Django on every probe.
    mark_logged(response)
    return response
