from typing import Any

from rest_framework import viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from notifier.api.fields import StrictCharField, StrictModelSerializer
from notifier.api.filters import ClientListFilter
from notifier.api.lookups import ObjectById
from notifier.clients.models import Client
from notifier.clients.services import PHONE_TAKEN, client_create, client_update
from notifier.sending.services import client_delete


class ClientSerializer(StrictModelSerializer):
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
        extra_kwargs = {
            "phone": {"help_text": "7XXXXXXXXXX: 11 digits starting with 7."},
            "tag": {"help_text": "Free label, up to 64 characters; may be empty."},
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Keep the model's format validators, but answer a taken phone as a clean message
        # from the service rather than DRF's generic uniqueness check (which races anyway).
        model_fields = Client._meta
        self.fields["operator_code"].validators += model_fields.get_field(
            "operator_code"
        ).validators
        self.fields["timezone"].validators += model_fields.get_field("timezone").validators
        self.fields["phone"].validators = [
            v for v in self.fields["phone"].validators if not hasattr(v, "queryset")
        ]
        self.fields["phone"].error_messages["unique"] = PHONE_TAKEN


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
