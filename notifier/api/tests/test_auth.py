import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from rest_framework.authtoken.models import Token

pytestmark = pytest.mark.django_db

PROTECTED = [
    ("get", "/api/clients/"),
    ("post", "/api/clients/"),
    ("get", "/api/clients/1/"),
    ("put", "/api/clients/1/"),
    ("patch", "/api/clients/1/"),
    ("delete", "/api/clients/1/"),
    ("get", "/api/mailings/"),
    ("post", "/api/mailings/"),
    ("get", "/api/mailings/1/"),
    ("put", "/api/mailings/1/"),
    ("patch", "/api/mailings/1/"),
    ("delete", "/api/mailings/1/"),
    ("post", "/api/mailings/1/cancel/"),
    ("get", "/api/mailings/stats/"),
    ("get", "/api/mailings/1/stats/"),
    ("get", "/api/mailings/1/messages/"),
    ("get", "/api/clients/1/messages/"),
]


def test_token_for_username_and_password(anon, user):
    response = anon.post(
        "/api/auth/token/", {"username": "operator", "password": "s3cret-Pass!"}, format="json"
    )

    assert response.status_code == 200
    assert response.json() == {"token": Token.objects.get(user=user).key}


@pytest.mark.parametrize(
    "credentials",
    [{"username": "operator", "password": "wrong"}, {"username": "nobody", "password": "x"}],
)
def test_wrong_credentials_are_said_to_be_wrong_without_saying_which(anon, user, credentials):
    """The message says what happened (it used to read "Invalid input: non_field_errors.")
    and is the same for a wrong name and a wrong password."""
    response = anon.post("/api/auth/token/", credentials, format="json")

    assert response.status_code == 400
    assert response.json()["error"] == {
        "status": 400,
        "code": "invalid_credentials",
        "message": "Wrong username or password.",
        "fields": {"non_field_errors": ["Wrong username or password."]},
    }


def test_token_request_refuses_unknown_fields_and_bounds_its_own(anon, user):
    response = anon.post(
        "/api/auth/token/",
        {"username": "operator", "password": "s3cret-Pass!", "pasword": "x"},
        format="json",
    )
    too_long = anon.post(
        "/api/auth/token/", {"username": "u" * 151, "password": "p" * 1025}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "pasword": ["Unknown field. Did you mean 'password'?"]
    }
    assert set(too_long.json()["error"]["fields"]) == {"username", "password"}


def test_token_needs_both_fields(anon):
    response = anon.post("/api/auth/token/", {}, format="json")

    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"username", "password"}


@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize(
    "header", [None, "Bearer", "Bearer nope", "Token {key}", "Basic b3BlcmF0b3I6eA=="]
)
def test_every_endpoint_needs_a_valid_bearer_token(anon, user, method, path, header):
    if header:
        key = Token.objects.create(user=user).key
        anon.credentials(HTTP_AUTHORIZATION=header.format(key=key))

    response = getattr(anon, method)(path, {}, format="json")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert response.json()["error"]["status"] == 401


@pytest.mark.parametrize("scheme", ["Token", "Basic", "bearer-ish", "Digest"])
def test_a_wrong_scheme_is_named_as_such(anon, user, scheme):
    """`Token <key>` used to answer "Authentication credentials were not provided.", which
    sends the caller looking for a header that is there."""
    key = Token.objects.create(user=user).key
    anon.credentials(HTTP_AUTHORIZATION=f"{scheme} {key}")

    error = anon.get("/api/clients/").json()["error"]

    assert (error["status"], error["code"]) == (401, "wrong_scheme")
    assert error["message"] == (
        f"Wrong authentication scheme ({scheme}): send Authorization: Bearer <token>."
    )


def test_a_scheme_that_is_not_a_word_is_not_echoed(anon):
    anon.credentials(HTTP_AUTHORIZATION="<script>alert(1)</script> x")

    error = anon.get("/api/clients/").json()["error"]

    assert error["code"] == "wrong_scheme"
    assert "<script>" not in error["message"]
    assert "(another scheme)" in error["message"]


def test_a_deactivated_user_token_is_refused(api, user):
    user.is_active = False
    user.save()

    assert api.get("/api/clients/").status_code == 401


def test_docs_and_schema_are_public(anon):
    docs = anon.get("/docs/")
    schema = anon.get("/api/schema/", HTTP_ACCEPT="application/json")

    assert docs.status_code == 200
    assert b"swagger" in docs.content.lower()
    assert schema.status_code == 200
    assert schema.json()["components"]["securitySchemes"] == {
        "bearerAuth": {"type": "http", "scheme": "bearer"}
    }


def test_createsuperuser_noinput_from_the_environment(monkeypatch, anon):
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "admin")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "an-admin-Pass-1")
    monkeypatch.setenv("DJANGO_SUPERUSER_EMAIL", "admin@example.com")

    call_command("createsuperuser", "--noinput", verbosity=0)

    assert get_user_model().objects.get(username="admin").is_superuser
    response = anon.post(
        "/api/auth/token/", {"username": "admin", "password": "an-admin-Pass-1"}, format="json"
    )
    assert response.status_code == 200
