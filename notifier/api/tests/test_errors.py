"""Malformed requests get a 4xx in the one documented error format, never a 500."""

import pytest

from notifier.clients.models import Client

pytestmark = pytest.mark.django_db


def post_raw(api, body: bytes, content_type: str = "application/json"):
    return api.generic("POST", "/api/clients/", body, content_type=content_type)


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert (error["status"], error["code"]) == (status, code)
    assert error["message"]
    assert isinstance(error["fields"], dict)
    return error


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"not json",
        b'{"phone": "79161234567"',
        b"\xff\xfe\x00garbage",  # not UTF-8
        b'{"phone": "7916\xc3\x28"}',  # invalid UTF-8 inside a string
        b'{"phone": "79161234567", "tag": "\\ud800"}',  # a lone surrogate
        b"NaN",
    ],
)
def test_unparseable_body_is_a_400(api, body):
    assert_error(post_raw(api, body), 400, "parse_error")
    assert not Client.objects.exists()


@pytest.mark.parametrize("body", [b"[]", b'"79161234567"', b"null", b"42"])
def test_json_that_is_not_an_object_is_a_400(api, body):
    assert_error(post_raw(api, body), 400, "invalid")


def test_an_error_about_the_request_as_a_whole_says_what_it_is(api):
    """The message used to read "Invalid input: non_field_errors."."""
    error = assert_error(post_raw(api, b"[]"), 400, "invalid")

    assert error["message"] == "Invalid data. Expected a dictionary, but got list."
    assert error["fields"] == {"non_field_errors": [error["message"]]}


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_other_content_types_are_a_415(api, content_type):
    response = post_raw(api, b"phone=79161234567", content_type)

    assert_error(response, 415, "unsupported_media_type")


def test_null_character_in_text_is_a_400(api):
    response = api.post("/api/clients/", {"phone": "79161234567", "tag": "a\x00b"}, format="json")

    assert_error(response, 400, "invalid")
    assert list(response.json()["error"]["fields"]) == ["tag"]


def test_huge_string_is_a_400(api):
    response = api.post("/api/clients/", {"phone": "7" * 1_000_000}, format="json")

    assert_error(response, 400, "invalid")


def test_method_not_allowed_and_not_found_use_the_format(api):
    assert_error(api.put("/api/clients/", {}, format="json"), 405, "method_not_allowed")
    assert_error(api.get("/api/clients/999/"), 404, "not_found")


def test_several_bad_fields_are_all_named(api):
    response = api.post(
        "/api/mailings/",
        {"start_at": "soon", "end_at": None, "text": "", "filter": {"tags": [1]}},
        format="json",
    )

    assert_error(response, 400, "invalid")
    assert set(response.json()["error"]["fields"]) == {
        "start_at",
        "end_at",
        "text",
        "filter.tags.0",
    }


@pytest.mark.parametrize(
    "path",
    [
        "/api/nothing-here/",
        f"/api/clients/{'9' * 19}/",
        "/api/clients/-1/",
        "/api/mailings/stats.json",
        "/api/mailings/1/cancel.json",
    ],
)
def test_unknown_api_routes_are_a_json_404(api, path):
    assert_error(api.get(path), 404, "not_found")
    assert_error(api.post(path, {}, format="json"), 404, "not_found")


@pytest.mark.parametrize(
    "path",
    ["/nothing", "/nothing/", "/health/", "/health/ready/x", "/metrics/x", "/docs/x", "/static"],
)
def test_unknown_paths_outside_the_api_are_a_json_404_too(client, path):
    """They used to answer Django's HTML 404 page."""
    assert_error(client.get(path), 404, "not_found")
    assert_error(client.post(path, {}), 404, "not_found")


@pytest.mark.parametrize("path", ["/api/clients", "/api/mailings/1/stats", "/api/auth/token"])
def test_an_api_path_without_its_slash_is_a_404_saying_where_it_is(api, path):
    error = assert_error(api.get(path), 404, "not_found")

    assert error["message"] == f"Not found. Did you mean {path}/ (with a trailing slash)?"


def test_the_admin_keeps_its_own_pages(client):
    page = client.get("/admin/login/")

    assert page.status_code == 200
    assert page["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("debug", [False, True])
def test_unknown_paths_are_json_in_debug_mode_too(client, settings, debug):
    """`make run` runs in debug mode, where Django would show its own debug page."""
    settings.DEBUG = debug

    assert_error(client.get("/nothing"), 404, "not_found")
    assert_error(client.get("/api/nothing"), 404, "not_found")


@pytest.mark.parametrize(("path", "to"), [("/docs", "/docs/"), ("/admin", "/admin/")])
def test_pages_that_exist_with_a_slash_are_redirected_to_it(client, path, to):
    response = client.get(path)

    assert response.status_code == 301
    assert response["Location"] == to
