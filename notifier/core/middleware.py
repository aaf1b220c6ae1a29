import re
import time
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from notifier.core import logging, outage

log = logging.get_logger("notifier.request")
REQUEST_ID_HEADER = "X-Request-ID"
# A caller's id is kept only if it is a sane token: it ends up in every log line.
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class RequestContextMiddleware:
    """Gives each request an id (the caller's `X-Request-ID` if sane, else a new one), binds
    it to every log line of the request, returns it in the response, and writes one log line
    per request, after the view, so that it also carries the ids the view bound."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        given = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = given if _VALID_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        logging.clear()
        logging.bind(request_id=request_id)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response[REQUEST_ID_HEADER] = request_id
            log.info(
                "request",
                method=request.method,
                path=request.path,
                status=response.status_code,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )
            return response
        finally:
            logging.clear()


class DatabaseOutageMiddleware:
    """A view outside the API (the admin, /metrics) that cannot reach the database answers
    503 in the error shape too; the API's own handler does the same for its views."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, outage.DATABASE_DOWN_ERRORS):
            return None
        outage.database_unavailable(exception)
        return outage.unavailable_response()
