"""The OpenAPI schema beyond what drf-spectacular infers: the one error format on every
operation, and the operations endpoints (plain Django views, outside DRF)."""

from typing import Any

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["status", "code", "message", "fields"],
            "properties": {
                "status": {"type": "integer"},
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {
                    "type": "object",
                    "description": "Offending input fields (dotted paths) and why.",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
            },
        }
    },
}

DESCRIPTIONS = {
    "400": "Invalid input: `fields` names each offending field and why.",
    "401": "Missing or invalid `Authorization: Bearer <token>`.",
    "404": "No such object (or page).",
    "405": "Method not allowed.",
    "413": "The body is larger than 1 MiB.",
    "415": "The body must be `application/json`.",
    "503": "The database is unavailable: retry after `Retry-After` seconds.",
}
ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}}

TAGS = [
    {"name": "auth", "description": "Getting the token every other operation wants."},
    {"name": "clients", "description": "The directory of clients a mailing is sent to."},
    {"name": "mailings", "description": "Campaigns: what to send, to whom, when; cancelling."},
    {"name": "statistics", "description": "Message counts by status, per mailing and in all."},
    {"name": "messages", "description": "One message per client of a mailing, and its outcome."},
    {
        "name": "operations",
        "description": "Health and metrics for probes and monitoring (outside `/api/`).",
    },
]


def _error(code: str) -> dict[str, Any]:
    response: dict[str, Any] = {"description": DESCRIPTIONS[code], "content": ERROR_CONTENT}
    if code == "503":
        response["headers"] = RETRY_AFTER
    return response


def forbid_unknown_fields(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Every request body is strict (`notifier.api.fields.StrictInput`): the schema says so."""
    for name, component in result.get("components", {}).get("schemas", {}).items():
        if name.endswith("Request") and component.get("type") == "object":
            component["additionalProperties"] = False
    return result


def add_error_responses(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for path, operations in result.get("paths", {}).items():
        for operation in operations.values():
            codes = ["400", "503"]
            if operation.get("security") != [{}] and "security" in operation:
                codes.append("401")
            if "{" in path or any(p.get("name") == "page" for p in operation.get("parameters", [])):
                codes.append("404")
            if "requestBody" in operation:
                codes += ["413", "415"]
            for code in codes:
                operation["responses"].setdefault(code, _error(code))
    return result


_CHECK = {
    "type": "object",
    "required": ["ok", "ms"],
    "properties": {
        "ok": {"type": "boolean"},
        "ms": {"type": "number"},
        "error": {
            "type": "string",
            "description": "The kind of failure (e.g. `OperationalError`), never its detail.",
        },
    },
}
READINESS_SCHEMA = {
    "type": "object",
    "required": ["status", "checks"],
    "properties": {
        "status": {"type": "string", "enum": ["ok", "fail"]},
        "checks": {
            "type": "object",
            "required": ["database", "broker"],
            "properties": {"database": _CHECK, "broker": _CHECK},
        },
    },
}


def _ops_operation(summary: str, description: str, responses: dict[str, Any]) -> dict[str, Any]:
    return {
        "get": {
            "operationId": "ops_" + summary.lower().replace(" ", "_"),
            "tags": ["operations"],
            "summary": summary,
            "description": description,
            "security": [{}],
            "responses": {**responses, "405": _error("405")},
        }
    }


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


OPS_PATHS = {
    "/health/live": _ops_operation(
        "Liveness",
        "200 while the process serves requests; depends on nothing else (for restarts).",
        {"200": _json("Alive.", {"type": "object", "properties": {"status": {"enum": ["ok"]}}})},
    ),
    "/health/ready": _ops_operation(
        "Readiness",
        "200 when the database and the broker answer, else 503 naming the failed check, each "
        "within half a second (for routing traffic). Details of a failure go to the log.",
        {
            "200": _json("Ready.", READINESS_SCHEMA),
            "503": _json("A check failed or did not answer in time.", READINESS_SCHEMA),
        },
    ),
    "/metrics": _ops_operation(
        "Metrics",
        "Prometheus text format, adding up every process of the host. Wants "
        "`Authorization: Bearer <METRICS_TOKEN>` when that is set, else public.",
        {
            "200": {
                "description": "The metrics.",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            "401": {"description": DESCRIPTIONS["401"], "content": ERROR_CONTENT},
        },
    ),
}


def add_operations_endpoints(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """The health and metrics endpoints, and the tags every operation is grouped by."""
    result.setdefault("paths", {}).update(OPS_PATHS)
    result["tags"] = TAGS
    return result
