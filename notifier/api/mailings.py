from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import generics, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from notifier.api.fields import AwareDateTimeField, StrictCharField
from notifier.api.filters import MailingListFilter, MessageListFilter
from notifier.api.lookups import ObjectById
from notifier.clients.models import TAG_MAX_LENGTH, operator_code_validator
from notifier.core import logging
from notifier.mailings.models import MAILING_TEXT_MAX_LENGTH, Mailing, Message
from notifier.mailings.selectors import (
    MessageCounts,
    message_counts_by_mailing,
    message_counts_total,
    message_list,
)
from notifier.mailings.windows import SendWindow
from notifier.sending.services import (
    mailing_cancel,
    mailing_create,
    mailing_delete,
    mailing_update,
)

FILTER_MAX_ITEMS = 1000


class AudienceSerializer(serializers.Serializer):
    operator_codes = serializers.ListField(
        child=StrictCharField(max_length=3, validators=[operator_code_validator]),
        max_length=FILTER_MAX_ITEMS,
        required=False,
        help_text="Operator codes to include; empty or absent: any code.",
    )
    tags = serializers.ListField(
        child=StrictCharField(max_length=TAG_MAX_LENGTH, allow_blank=True),
        max_length=FILTER_MAX_ITEMS,
        required=False,
        help_text="Tags to include; empty or absent: any tag.",
    )


class SendWindowSerializer(serializers.Serializer):
    start = serializers.TimeField(
        format="%H:%M", input_formats=["%H:%M"], help_text="Opens at this local time, HH:MM."
    )
    end = serializers.TimeField(
        format="%H:%M",
        input_formats=["%H:%M"],
        help_text="Closes at this local time, HH:MM; before `start`: across midnight.",
    )

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if data["start"] == data["end"]:
            raise serializers.ValidationError(
                "The window's start and end must differ (a window open all day is no window:"
                " leave `send_window` out or null)."
            )
        return data


class MailingInputSerializer(serializers.Serializer):
    start_at = AwareDateTimeField()
    end_at = AwareDateTimeField(help_text="Nothing is delivered at or after this time.")
    text = StrictCharField(max_length=MAILING_TEXT_MAX_LENGTH)
    filter = AudienceSerializer(required=False)
    send_window = SendWindowSerializer(
        required=False,
        allow_null=True,
        help_text="Messages go out only while each client's local time (its `timezone`) is"
        " inside this window; absent or null: at any time of day.",
    )

    def to_service_kwargs(self) -> dict[str, Any]:
        """Validated data in the services' terms: the filter object is replaced as a whole,
        and so is the send window."""
        data = dict(self.validated_data)
        if "filter" in data:
            client_filter = data.pop("filter") or {}
            data["operator_codes"] = client_filter.get("operator_codes", [])
            data["tags"] = client_filter.get("tags", [])
        if "send_window" in data:
            window = data.pop("send_window")
            data["send_window"] = None if window is None else SendWindow(**window)
        return data


class MailingSerializer(serializers.ModelSerializer[Mailing]):
    filter = serializers.SerializerMethodField()
    send_window = serializers.SerializerMethodField()
    status = serializers.ChoiceField(choices=Mailing.Status.choices, read_only=True)

    class Meta:
        model = Mailing
        fields = [
            "id",
            "start_at",
            "end_at",
            "text",
            "filter",
            "send_window",
            "status",
            "created_at",
        ]

    @extend_schema_field(AudienceSerializer)
    def get_filter(self, mailing: Mailing) -> dict[str, list[str]]:
        return {"operator_codes": mailing.operator_codes, "tags": mailing.tags}

    @extend_schema_field(SendWindowSerializer(allow_null=True))
    def get_send_window(self, mailing: Mailing) -> dict[str, str] | None:
        window = mailing.send_window
        if window is None:
            return None
        return {"start": f"{window.start:%H:%M}", "end": f"{window.end:%H:%M}"}


class StatusCountsSerializer(serializers.Serializer):
    pending = serializers.IntegerField()
    sending = serializers.IntegerField()
    sent = serializers.IntegerField()
    failed = serializers.IntegerField()
    expired = serializers.IntegerField()
    cancelled = serializers.IntegerField()


class MessageCountsSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    by_status = StatusCountsSerializer()


class MailingStatsSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=Mailing.Status.choices)
    start_at = serializers.DateTimeField()
    end_at = serializers.DateTimeField()
    messages = MessageCountsSerializer()


class StatsTotalsSerializer(serializers.Serializer):
    mailings = serializers.IntegerField()
    messages = MessageCountsSerializer()


class MailingStatsPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    totals = StatsTotalsSerializer()
    results = MailingStatsSerializer(many=True)


class MessageSerializer(serializers.ModelSerializer[Message]):
    mailing_id = serializers.IntegerField()
    client_id = serializers.IntegerField(
        allow_null=True, help_text="Null once the client is deleted."
    )

    class Meta:
        model = Message
        fields = [
            "id",
            "mailing_id",
            "client_id",
            "phone",
            "status",
            "created_at",
            "sent_at",
            "attempts",
            "last_error",
        ]


def _stats(mailing: Mailing, counts: MessageCounts) -> dict[str, Any]:
    return {
        "id": mailing.id,
        "status": mailing.status,
        "start_at": mailing.start_at,
        "end_at": mailing.end_at,
        "messages": counts,
    }


class MailingViewSet(ObjectById, viewsets.ModelViewSet):
    """Mailings: create, inspect, change, cancel, delete; their delivery statistics."""

    queryset = Mailing.objects.all()
    serializer_class = MailingSerializer
    log_id_name = "mailing_id"
    filterset_class = MailingListFilter

    def get_serializer_class(self) -> type[serializers.BaseSerializer]:
        if self.action in ("create", "update", "partial_update"):
            return MailingInputSerializer
        return super().get_serializer_class()

    @extend_schema(request=MailingInputSerializer, responses={201: MailingSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = MailingInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        mailing = mailing_create(**serializer.to_service_kwargs())
        return Response(MailingSerializer(mailing).data, status=201)

    @extend_schema(request=MailingInputSerializer, responses={200: MailingSerializer})
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        partial = kwargs.pop("partial", False)
        serializer = MailingInputSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        mailing = mailing_update(
            mailing=self.get_object(), data=serializer.to_service_kwargs(), replace=not partial
        )
        return Response(MailingSerializer(mailing).data)

    @extend_schema(request=MailingInputSerializer, responses={200: MailingSerializer})
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.update(request, *args, partial=True, **kwargs)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        mailing_delete(mailing=self.get_object())
        return Response(status=204)

    @extend_schema(request=None, responses={200: MailingSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        """Stop the mailing for good; unsent messages become `cancelled`, history stays."""
        mailing = mailing_cancel(mailing=self.get_object())
        return Response(MailingSerializer(mailing).data)

    @extend_schema(
        operation_id="api_mailings_stats_list",
        responses={200: MailingStatsPageSerializer},
        filters=True,
        parameters=[
            OpenApiParameter("page", int, description="A page number within the results."),
            OpenApiParameter("page_size", int, description="Results per page (at most 1000)."),
        ],
    )
    @action(detail=False, methods=["get"], url_path="stats")
    def stats_list(self, request: Request) -> Response:
        """Every mailing with its message counts by status, and totals over all mailings."""
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        assert page is not None
        counts = message_counts_by_mailing(mailing_ids=[m.id for m in page])
        response = self.get_paginated_response([_stats(m, counts[m.id]) for m in page])
        results = response.data.pop("results")
        response.data["totals"] = {
            "mailings": Mailing.objects.count(),
            "messages": message_counts_total(),
        }
        response.data["results"] = results
        return response

    @extend_schema(responses={200: MailingStatsSerializer})
    @action(detail=True, methods=["get"])
    def stats(self, request: Request, pk: str) -> Response:
        """One mailing's message counts by status."""
        mailing = self.get_object()
        counts = message_counts_by_mailing(mailing_ids=[mailing.id])[mailing.id]
        return Response(_stats(mailing, counts))


class MailingMessageListView(generics.ListAPIView):
    """A mailing's messages, optionally only those with a given status."""

    serializer_class = MessageSerializer
    filterset_class = MessageListFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Message.objects.none()
        mailing = get_object_or_404(Mailing, pk=self.kwargs["mailing_id"])
        logging.bind(mailing_id=mailing.id)
        return message_list(mailing=mailing)
