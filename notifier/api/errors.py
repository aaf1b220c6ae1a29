"""The API's exception handler: every DRF error, every `DomainError`, a body over the size
limit and a database outage, in the one shape."""

from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from notifier.core import outage
from notifier.core.errors import (
    DomainError,
    error_body,
    mark_logged,
    request_too_large_message,
)

NON_FIELD = "non_field_errors"


class RequestTooLarge(exceptions.APIException):
    status_code = 413
    default_code = "request_too_large"


def flatten_errors(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """Turn DRF's nested error detail into `{"a.b.0": ["reason", ...]}`."""
    if isinstance(detail, dict):
        flat: dict[str, list[str]] = {}
        for key, value in detail.items():
            # Errors about an object as a whole belong to the object's own path.
            path = prefix if key == NON_FIELD else f"{prefix}.{key}" if prefix else str(key)
            flat.update(flatten_errors(value, path))
        return flat
    if isinstance(detail, list) and detail and all(not isinstance(d, dict | list) for d in detail):
        return {prefix or NON_FIELD: [str(d) for d in detail]}
    if isinstance(detail, list):
        flat = {}
        for index, value in enumerate(detail):
            if value:
                flat.update(flatten_errors(value, f"{prefix}.{index}" if prefix else str(index)))
        return flat
    return {prefix or NON_FIELD: [str(detail)]}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, outage.DATABASE_DOWN_ERRORS):
        return _database_unavailable(exc)
    # A rule about the request as a whole says which one with its own code.
    whole_request_code = exc.code if isinstance(exc, DomainError) and not exc.fields else None
    if isinstance(exc, DomainError):
        exc = exceptions.ValidationError(
            {field: [exc.message] for field in exc.fields} or {NON_FIELD: [exc.message]}, exc.code
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        exc = RequestTooLarge(request_too_large_message())

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    assert isinstance(exc, exceptions.APIException)
    if isinstance(exc, exceptions.ValidationError):
        fields = flatten_errors(exc.detail)
        code, message = _validation_summary(fields)
        code = whole_request_code or code
    else:
        fields = {}
        code = exc.default_code
        if isinstance(exc.detail, exceptions.ErrorDetail) and exc.detail.code:
            code = exc.detail.code
        message = str(exc.detail)
    response.data = error_body(response.status_code, str(code), message, fields)
    return response


def _validation_summary(fields: dict[str, list[str]]) -> tuple[str, str]:
    """The code and message of a 400: the fields it names, or when it is about the request
    as a whole (a wrong password, a cancelled mailing), the reason itself."""
    if list(fields) != [NON_FIELD]:
        return "invalid", "Invalid input: " + ", ".join(sorted(fields)) + "."
    return "invalid", " ".join(fields[NON_FIELD])


def _database_unavailable(exc: Exception) -> Response:
    set_rollback()
    outage.database_unavailable(exc)
    response = Response(
        outage.unavailable_body(),
        status=outage.UNAVAILABLE_STATUS,
        headers=outage.RETRY_AFTER_HEADERS,
    )
    mark_logged(response)
    return response
