import re

from rest_framework import pagination
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request


def _positive_int_param(request: Request, name: str) -> None:
    # DRF silently falls back to a default on a malformed value; say so instead.
    raw = request.query_params.get(name)
    if raw is not None and not re.fullmatch(r"[1-9][0-9]*", raw):
        raise ValidationError({name: ["Must be a positive integer."]})


class PageNumberPagination(pagination.PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 1000
    last_page_strings = ()

    def paginate_queryset(self, queryset, request, view=None):
        _positive_int_param(request, self.page_query_param)
        _positive_int_param(request, self.page_size_query_param)
        return super().paginate_queryset(queryset, request, view)
