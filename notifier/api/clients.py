from typing import Any

from django.core.validators import MaxLengthValidator
from django.db import models
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from notifier.api.fields import PhoneField, StrictCharField, StrictModelSerializer
from notifier.api.filters import ClientListFilter
from notifier.api.lookups import ObjectById
from notifier.clients.models import Client
from notifier.clients.services import client_create, client_update
from notifier.sending.services import client_delete


class ClientSerializer(StrictModelSerializer):
    """A client of the directory."""

    phone = PhoneField(
        help_text=(
            "A mobile number, stored and answered as 7XXXXXXXXXX; given also as +7 916 123-45-67, "
            "8 (916) 123-45-67 or 89161234567."
        )
    )
    operator_code = StrictCharField(
        max_length=3,
        required=False,
        help_text="3 digits; defaults to digits 2-4 of the phone.",
    )
    timezone = StrictCharField(
        max_length=64, required=False, help_text="IANA timezone name, default UTC."
    )

    class Meta:
        model = Client
        fields = ["id", "phone", "operator_code", "tag", "timezone"]
        extra_kwargs = {"tag": {"help_text": "Free label, up to 64 characters; may be empty."}}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The model's format validators (its length is the field's own); a taken phone is the
        # service's to say (the unique index decides, and a check here would race anyway).
        for name in ("operator_code", "timezone"):
            model_field = Client._meta.get_field(name)
            assert isinstance(model_field, models.Field)
            self.fields[name].validators += [
                v for v in model_field.validators if not isinstance(v, MaxLengthValidator)
            ]


CLIENT_EXAMPLE = OpenApiExample(
    "A client",
    value={"phone": "+7 916 123-45-67", "tag": "vip", "timezone": "Europe/Moscow"},
    request_only=True,
)


@extend_schema_view(
    list=extend_schema(
        summary="List clients",
        description="The directory, paginated, optionally only one tag or operator code. "
        "`?tag=` (empty) lists the clients without a tag.",
    ),
    create=extend_schema(
        summary="Add a client",
        description="The phone may be written as people do; it is stored as 7XXXXXXXXXX. "
        "Without an operator code, the one in the phone is taken. A taken phone is a 400.",
        examples=[CLIENT_EXAMPLE],
    ),
    retrieve=extend_schema(summary="Get a client", description="One client by id."),
    update=extend_schema(
        summary="Replace a client",
        description="Every field as given; optional ones not given go back to their defaults "
        "(the operator code to the phone's).",
        examples=[CLIENT_EXAMPLE],
    ),
    partial_update=extend_schema(
        summary="Change a client",
        description="Only the fields given change; a new phone without an operator code "
        "re-derives it.",
    ),
    destroy=extend_schema(
        summary="Remove a client",
        description="Its unsent messages are cancelled; sent ones stay in the statistics with "
        "the phone they went to and `client_id: null`.",
    ),
)
@extend_schema(tags=["clients"])
class ClientViewSet(ObjectById, viewsets.ModelViewSet):
    """The client directory."""

    queryset = Client.objects.all()
    serializer_class = ClientSerializer
    log_id_name = "client_id"
    filterset_class = ClientListFilter

    def perform_create(self, serializer: ClientSerializer) -> None:  # type: ignore[override]
        serializer.instance = client_create(**serializer.validated_data)

    def perform_update(self, serializer: ClientSerializer) -> None:  # type: ignore[override]
        serializer.instance = client_update(
            client=self.get_object(),
            data=dict(serializer.validated_data),
            replace=not serializer.partial,
        )

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        client_delete(client=self.get_object())
        return Response(status=204)
