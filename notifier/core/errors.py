"""The one error shape of every HTTP answer, and the error type of business rules.

Every error body is `{"error": {"status", "code", "message", "fields"}}`, where `fields` maps
each offending input field (dotted path for nested ones, e.g. `filter.tags.0`) to its reasons.
"""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults


class DomainError(Exception):
    """A business rule refused the operation; becomes a 400 naming the field when one is given."""

    def __init__(self, message: str, *, field: str | None = None, code: str = "invalid") -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.code = code


def error_body(status_code: int, code: str, message: str, fields: dict[str, list[str]]) -> dict:
    return {"error": {"status": status_code, "code": code, "message": message, "fields": fields}}


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """A URL that matches no route: JSON under /api/, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        body = error_body(404, "not_found", "Not found.", {})
        return JsonResponse(body, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """A bug answers in the documented format too (and is logged with its traceback)."""
    if request.path.startswith("/api/"):
        body = error_body(500, "server_error", "Internal server error.", {})
        return JsonResponse(body, status=500)
    return defaults.server_error(request)
