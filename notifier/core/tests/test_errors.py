"""The error handlers Django calls outside the API answer in the one shape, except on the
admin's own pages, which people read in a browser."""

import json

import pytest
from django.core.exceptions import DisallowedHost, PermissionDenied, RequestDataTooBig
from django.test import RequestFactory

from notifier.core import errors


@pytest.mark.parametrize(
    ("handler", "exception", "status", "code"),
    [
        (errors.bad_request, DisallowedHost("evil"), 400, "bad_request"),
        (errors.bad_request, RequestDataTooBig("big"), 413, "request_too_large"),
        (errors.permission_denied, PermissionDenied(), 403, "permission_denied"),
        (errors.not_found, Exception("no route"), 404, "not_found"),
    ],
)
def test_handlers_answer_json_outside_the_admin(handler, exception, status, code):
    response = handler(RequestFactory().get("/metrics"), exception)

    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content)["error"]["code"] == code


def test_a_server_error_outside_the_admin_is_json():
    response = errors.server_error(RequestFactory().get("/health/ready"))

    assert response.status_code == 500
    assert json.loads(response.content)["error"] == {
        "status": 500,
        "code": "server_error",
        "message": "Internal server error.",
        "fields": {},
    }


@pytest.mark.parametrize(
    ("handler", "args"),
    [
        (errors.bad_request, (Exception(),)),
        (errors.permission_denied, (PermissionDenied(),)),
        (errors.not_found, (Exception(),)),
        (errors.server_error, ()),
    ],
)
def test_the_admin_keeps_djangos_pages(handler, args):
    response = handler(RequestFactory().get("/admin/clients/"), *args)

    assert response["Content-Type"].startswith("text/html")
