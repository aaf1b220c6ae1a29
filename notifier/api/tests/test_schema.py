"""The OpenAPI document: grouped and described for a reader, bounded for a fuzzer, and with
examples that work as given."""

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import transaction

from notifier.clients.tests.factories import ClientFactory
from notifier.mailings.tests.factories import MailingFactory

pytestmark = pytest.mark.django_db

TAGS = ["auth", "clients", "mailings", "statistics", "messages", "operations"]


@pytest.fixture
def openapi(anon) -> dict[str, Any]:
    return anon.get("/api/schema/", HTTP_ACCEPT="application/json").json()


def operations(openapi: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in openapi["paths"].items():
        for method, operation in methods.items():
            yield method, path, operation


def test_operations_are_grouped_by_tag_and_each_has_a_summary_and_a_description(openapi):
    """All 17 operations used to be under one "api" tag, without summaries."""
    assert [tag["name"] for tag in openapi["tags"]] == TAGS
    seen = set()
    for method, path, operation in operations(openapi):
        assert len(operation["tags"]) == 1, (method, path)
        assert operation["tags"][0] in TAGS, (method, path)
        assert operation["summary"], (method, path)
        assert operation["description"], (method, path)
        seen.add(operation["tags"][0])
    assert seen == set(TAGS)
    summaries = [op["summary"] for _, _, op in operations(openapi)]
    assert len(summaries) == len(set(summaries))


def request_schemas(openapi: dict[str, Any]) -> dict[str, Any]:
    return {n: s for n, s in openapi["components"]["schemas"].items() if n.endswith("Request")}


def unbounded(schema: dict[str, Any], path: str) -> Iterator[str]:
    if schema.get("type") == "object":
        for name, child in schema.get("properties", {}).items():
            yield from unbounded(child, f"{path}.{name}")
    elif schema.get("type") == "array":
        if "maxItems" not in schema:
            yield path
        yield from unbounded(schema["items"], f"{path}.0")
    elif schema.get("type") == "string" and not {"maxLength", "enum", "format"} & set(schema):
        yield path


def test_request_bodies_state_their_bounds_and_refuse_unknown_fields(openapi):
    for name, schema in request_schemas(openapi).items():
        assert schema["additionalProperties"] is False, name
        assert list(unbounded(schema, name)) == []
    page_parameters = [
        parameter
        for _, _, operation in operations(openapi)
        for parameter in operation.get("parameters", [])
        if parameter["name"] in ("page", "page_size")
    ]
    assert page_parameters
    assert all(p["schema"]["minimum"] == 1 for p in page_parameters)


def test_every_operation_documents_the_outage_answer(openapi):
    for method, path, operation in operations(openapi):
        if path.startswith("/api/"):
            assert "Retry-After" in operation["responses"]["503"]["headers"], (method, path)


def request_examples(openapi: dict[str, Any]) -> Iterator[tuple[str, str, str, Any]]:
    for method, path, operation in operations(openapi):
        content = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
        for name, example in content.get("examples", {}).items():
            yield method, path, name, example["value"]


def test_every_request_example_works_as_given(api, user, openapi):
    """The example mailing used to have `start_at == end_at`, so "Try it out" failed."""
    user.set_password("change-me")  # the token example's
    user.save()
    examples = list(request_examples(openapi))
    assert {(method, path) for method, path, _, _ in examples} >= {
        ("post", "/api/auth/token/"),
        ("post", "/api/clients/"),
        ("put", "/api/clients/{id}/"),
        ("post", "/api/mailings/"),
        ("put", "/api/mailings/{id}/"),
        ("patch", "/api/mailings/{id}/"),
    }
    for method, path, name, value in examples:
        with transaction.atomic():
            owner = ClientFactory() if path.startswith("/api/clients/") else MailingFactory()
            url = path.replace("{id}", str(owner.id))
            response = getattr(api, method)(url, value, format="json")
            assert response.status_code in (200, 201), (method, path, name, response.content)
            transaction.set_rollback(True)


def test_every_operation_that_reads_a_body_refuses_an_unknown_key(api, openapi):
    """One mechanism for every serializer: a key no field expects is named, never dropped."""
    bodies = [(m, p) for m, p, op in operations(openapi) if "requestBody" in op]
    bodies.append(("post", "/api/mailings/{id}/cancel/"))  # reads none, so refuses any
    assert len(bodies) >= 8
    for method, path in bodies:
        owner = ClientFactory() if path.startswith("/api/clients/") else MailingFactory()
        url = path.replace("{id}", str(owner.id))

        response = getattr(api, method)(url, {"no_such_field": 1}, format="json")

        assert response.status_code == 400, (method, path)
        assert response.json()["error"]["fields"]["no_such_field"] == ["Unknown field."]
