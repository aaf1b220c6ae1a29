"""Query-string filtering that says what it does: an unknown or repeated parameter is a 400,
not silently ignored (a typo like `?tags=vip` must not return every client), and a parameter
given empty means "equal to empty" (`?tag=` is the clients without a tag), not "no filter"."""

from typing import Any

import django_filters
from django.db.models import QuerySet
from django.utils import timezone
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.exceptions import ValidationError

from notifier.clients.models import Client
from notifier.mailings.models import Mailing, Message
from notifier.mailings.selectors import mailing_status_q

PAGINATION_PARAMS = frozenset({"page", "page_size"})


class StrictFilterSet(django_filters.FilterSet):
    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        for name, value in self.form.cleaned_data.items():
            if name not in self.data:
                continue
            if value == "":
                queryset = queryset.filter(**{self.filters[name].field_name: ""})
            else:
                queryset = self.filters[name].filter(queryset, value)
        return queryset


class StrictFilterBackend(DjangoFilterBackend):
    def get_filterset(self, request: Any, queryset: QuerySet, view: Any) -> Any:
        filterset = super().get_filterset(request, queryset, view)
        filters = filterset.filters if filterset is not None else {}
        params = request.query_params
        errors = {
            name: ["Unknown query parameter."]
            for name in sorted(set(params) - PAGINATION_PARAMS - set(filters))
        }
        for name in sorted(set(params) & set(filters)):
            if len(params.getlist(name)) > 1:
                errors[name] = ["Give this parameter once."]
            elif params[name] == "" and isinstance(filters[name], django_filters.ChoiceFilter):
                choices = ", ".join(str(value) for value, _ in filters[name].extra["choices"])
                errors[name] = [f"Choose one of: {choices}."]
        if errors:
            raise ValidationError(errors)
        return filterset


class ClientListFilter(StrictFilterSet):
    class Meta:
        model = Client
        fields = ["tag", "operator_code"]


class MailingListFilter(StrictFilterSet):
    status = django_filters.ChoiceFilter(choices=Mailing.Status.choices, method="filter_status")

    class Meta:
        model = Mailing
        fields = ["status"]

    def filter_status(self, queryset: QuerySet[Mailing], name: str, value: str) -> QuerySet:
        return queryset.filter(mailing_status_q(value, timezone.now()))


class MessageListFilter(StrictFilterSet):
    status = django_filters.ChoiceFilter(choices=Message.Status.choices)

    class Meta:
        model = Message
        fields = ["status"]
