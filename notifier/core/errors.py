"""The one error shape of every HTTP answer, and the error type of business rules.

Every error body is `{"error": {"status", "code", "message", "fields"}}`, where `fields` maps
each offending input field (dotted path for nested ones, e.g. `filter.tags.0`) to its reasons.
Only the admin's own pages keep Django's HTML: they are read by people in a browser.
"""

from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponsePermanentRedirect,
    JsonResponse,
)
from django.urls import Resolver404, resolve
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt

# The name of the route that catches every unknown URL under a prefix (e.g. /api/): a path
# that resolves only to it does not exist.
CATCH_ALL_ROUTE = "not-found"


class DomainError(Exception):
    """A business rule refused the operation; becomes a 400 naming the fields when given."""

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        fields: Iterable[str] = (),
        code: str = "invalid",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.fields = tuple(fields) or ((field,) if field else ())
        self.code = code


def error_body(status_code: int, code: str, message: str, fields: dict[str, list[str]]) -> dict:
    return {"error": {"status": status_code, "code": code, "message": message, "fields": fields}}


def error_response(status_code: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(status_code, code, message, {}), status=status_code)


def mark_logged(response: HttpResponse) -> None:
    """For a 5xx answer that has its own log line: Django would log every one again
    (`django.request`, at error level)."""
    response._has_been_logged = True  # type: ignore[attr-defined]


def _admin_page(request: HttpRequest) -> bool:
    return request.path.startswith("/admin/")


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """A request Django itself refuses (a body over the size limit, a `Host` not allowed)."""
    if _admin_page(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        return error_response(413, "request_too_large", request_too_large_message())
    return error_response(400, "bad_request", "Bad request.")


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _admin_page(request):
        return defaults.permission_denied(request, exception)
    return error_response(403, "permission_denied", "You do not have permission to do this.")


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """A URL that matches no route; when the same path with a slash exists, says so."""
    if _admin_page(request):
        return defaults.page_not_found(request, exception)
    message = "Not found."
    if not request.path.endswith("/") and _exists(request.path + "/"):
        message = f"Not found. Did you mean {request.path}/ (with a trailing slash)?"
    return error_response(404, "not_found", message)


@csrf_exempt  # any method: a POST to no route is a 404 too, not a CSRF failure
def unknown_path(request: HttpRequest) -> HttpResponse:
    """The last route: a JSON 404 for a path nothing else matched, in debug mode too (where
    Django would show its debug page instead of `not_found`). What Django's APPEND_SLASH
    does still happens: a GET for `/docs` is sent to `/docs/`."""
    if request.method in ("GET", "HEAD") and _exists(request.path + "/"):
        return HttpResponsePermanentRedirect(request.get_full_path(force_append_slash=True))
    return not_found(request, Http404())


def _exists(path: str) -> bool:
    try:
        return resolve(path).url_name != CATCH_ALL_ROUTE
    except Resolver404:
        return False


def server_error(request: HttpRequest) -> HttpResponse:
    """A bug answers in the documented format too (and is logged with its traceback)."""
    if _admin_page(request):
        return defaults.server_error(request)
    return error_response(500, "server_error", "Internal server error.")


def request_too_large_message() -> str:
    return f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."
