import re
from typing import Any

from drf_spectacular.utils import OpenApiParameter
from rest_framework import pagination
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

MAX_PAGE_SIZE = 1000
# What the schema says of the two parameters is what `_positive_int_param` enforces.
PAGE_QUERY_PARAMETERS = {
    "page": "A page number, from 1; a page past the end is a 404.",
    "page_size": f"Results per page, default 50; more than {MAX_PAGE_SIZE} is cut to that.",
}
PAGE_SCHEMA = {"type": "integer", "minimum": 1}


def _positive_int_param(request: Request, name: str) -> None:
    # DRF silently falls back to a default on a malformed value; say so instead.
    raw = request.query_params.get(name)
    if raw is not None and not re.fullmatch(r"[1-9][0-9]*", raw):
        raise ValidationError({name: ["Must be a positive integer."]})


class PageNumberPagination(pagination.PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE
    last_page_strings = ()

    def paginate_queryset(self, queryset, request, view=None):
        _positive_int_param(request, self.page_query_param)
        _positive_int_param(request, self.page_size_query_param)
        return super().paginate_queryset(queryset, request, view)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": name,
                "required": False,
                "in": "query",
                "description": description,
                "schema": dict(PAGE_SCHEMA),
            }
            for name, description in PAGE_QUERY_PARAMETERS.items()
        ]


# The same two, for an action that paginates by itself (the statistics list).
PAGE_PARAMETERS = [
    OpenApiParameter(name, dict(PAGE_SCHEMA), description=description)
    for name, description in PAGE_QUERY_PARAMETERS.items()
]
