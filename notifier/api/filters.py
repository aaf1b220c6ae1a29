"""Query-string filtering that says what it does: an unknown or repeated parameter is a 400,
not silently ignored (a typo like `?tags=vip` must not return every client), a value outside
a parameter's choices is a 400 listing them, and a parameter given empty means "equal to
empty" (`?tag=` is the clients without a tag), not "no filter"."""

from typing import Any

import django_filters
from django import forms
from django.db.models import QuerySet
from django.utils import timezone
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema_field
from rest_framework.exceptions import ValidationError

from notifier.api.fields import did_you_mean
from notifier.clients.models import TAG_MAX_LENGTH, Client, operator_code_validator
from notifier.clients.phones import PHONE_INPUT_MAX_LENGTH, PHONE_INPUT_PATTERN, PhoneFormField
from notifier.mailings.models import Mailing, Message
from notifier.mailings.selectors import mailing_status_q

PAGINATION_PARAMS = frozenset({"page", "page_size"})
MAX_ID = 2**63 - 1  # ids are int64; a larger one would overflow in the database driver


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


def _choices(filter_: django_filters.Filter) -> list[str]:
    return [str(value) for value, _ in filter_.extra["choices"]]


class StrictFilterBackend(DjangoFilterBackend):
    def get_filterset(self, request: Any, queryset: QuerySet, view: Any) -> Any:
        filterset = super().get_filterset(request, queryset, view)
        filters = filterset.filters if filterset is not None else {}
        params = request.query_params
        known = sorted(PAGINATION_PARAMS | set(filters))
        errors = {
            name: ["Unknown query parameter." + did_you_mean(name, known)]
            for name in sorted(set(params) - set(known))
        }
        for name in sorted(set(params) & set(filters)):
            if len(params.getlist(name)) > 1:
                errors[name] = ["Give this parameter once."]
            elif isinstance(filters[name], django_filters.ChoiceFilter) and params[name] not in (
                choices := _choices(filters[name])
            ):
                errors[name] = [f"Choose one of: {', '.join(choices)}."]
        if errors:
            raise ValidationError(errors)
        return filterset


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": MAX_ID})
class IdFilter(django_filters.Filter):
    """An id: a whole number (django-filter's NumberFilter would read `1.5` as 1)."""

    field_class = forms.IntegerField

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_value=1, max_value=MAX_ID, **kwargs)


@extend_schema_field(
    {"type": "string", "maxLength": PHONE_INPUT_MAX_LENGTH, "pattern": PHONE_INPUT_PATTERN}
)
class PhoneFilter(django_filters.CharFilter):
    """A phone in any form the directory accepts, compared in its stored form."""

    field_class = PhoneFormField


# Text without NUL, which Django's form fields refuse (no database could compare it).
NO_NUL = "^[^\\u0000]*$"


class ClientListFilter(StrictFilterSet):
    # Bounded like the fields they compare with, in the schema as in the check.
    tag = extend_schema_field({"type": "string", "maxLength": TAG_MAX_LENGTH, "pattern": NO_NUL})(
        django_filters.CharFilter(max_length=TAG_MAX_LENGTH)
    )
    operator_code = extend_schema_field({"type": "string", "pattern": "^([0-9]{3})?$"})(
        django_filters.CharFilter(validators=[operator_code_validator])
    )

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


class MailingMessageFilter(StrictFilterSet):
    """A mailing's messages: by status, by client, or by the phone they went to (which also
    finds those of a client deleted since)."""

    status = django_filters.ChoiceFilter(choices=Message.Status.choices)
    client_id = IdFilter(field_name="client_id", help_text="Only the messages to this client.")
    phone = PhoneFilter(help_text="Only the messages to this phone, in any accepted form.")

    class Meta:
        model = Message
        fields = ["status", "client_id", "phone"]


class ClientMessageFilter(StrictFilterSet):
    status = django_filters.ChoiceFilter(choices=Message.Status.choices)
    mailing_id = IdFilter(field_name="mailing_id", help_text="Only the messages of this mailing.")

    class Meta:
        model = Message
        fields = ["status", "mailing_id"]
