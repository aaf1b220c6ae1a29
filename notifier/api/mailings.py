from collections.abc import Sequence
from typing import Any

from drf_spectacular.utils import (
    OpenApiExample,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from notifier.api.fields import AwareDateTimeField, StrictCharField, StrictSerializer
from notifier.api.filters import MailingListFilter
from notifier.api.lookups import ObjectById
from notifier.api.pagination import PAGE_PARAMETERS
from notifier.clients.models import TAG_MAX_LENGTH, operator_code_validator
from notifier.mailings.models import MAILING_TEXT_MAX_LENGTH, Mailing
from notifier.mailings.selectors import (
    MessageCounts,
    mailing_audiences,
    message_counts_by_mailing,
    message_counts_total,
)
from notifier.mailings.windows import SendWindow
from notifier.sending.services import (
    mailing_cancel,
    mailing_create,
    mailing_delete,
    mailing_update,
)

FILTER_MAX_ITEMS = 1000
FILTER_REQUIRED = (
    'Say who receives the mailing: {"operator_codes": [...], "tags": [...]}, '
    "or {} for every client."
)
# DRF formats its error messages with `str.format`.
_FILTER_REQUIRED_TEMPLATE = FILTER_REQUIRED.replace("{", "{{").replace("}", "}}")


class AudienceSerializer(StrictSerializer):
    """Who receives a mailing: the clients whose code and tag are listed (a list empty or
    absent: any)."""

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


class SendWindowSerializer(StrictSerializer):
    """Local times of day between which a client may receive the mailing."""

    start = serializers.TimeField(
        format="%H:%M", input_formats=["%H:%M"], help_text="Opens at this local time, HH:MM."
    )
    end = serializers.TimeField(
        format="%H:%M",
        input_formats=["%H:%M"],
        help_text="Closes at this local time, HH:MM; before `start`: across midnight.",
    )

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        # A window is replaced whole, by a PATCH too, where DRF would skip a missing half.
        missing = [name for name in ("start", "end") if name not in data]
        if missing:
            raise serializers.ValidationError(
                {name: ["This field is required."] for name in missing}
            )
        if data["start"] == data["end"]:
            raise serializers.ValidationError(
                "The window's start and end must differ (a window open all day is no window:"
                " leave `send_window` out or null)."
            )
        return data


class MailingInputSerializer(StrictSerializer):
    """A mailing as it is created or changed."""

    read_only_names = ("id", "status", "created_at", "started_at", "finished_at", "audience")

    start_at = AwareDateTimeField(help_text="In the past: start now.")
    end_at = AwareDateTimeField(help_text="Nothing is delivered at or after this time.")
    text = StrictCharField(max_length=MAILING_TEXT_MAX_LENGTH)
    # Required, and `{}` for everyone: a mailing to every client is said, never defaulted to.
    filter = AudienceSerializer(
        error_messages={"required": _FILTER_REQUIRED_TEMPLATE},
        help_text="Who receives it: `{}` is every client.",
    )
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
    started_at = serializers.DateTimeField(
        source="fanned_out_at",
        read_only=True,
        allow_null=True,
        help_text="When its messages were created and sending began; null before.",
    )
    finished_at = serializers.DateTimeField(
        read_only=True,
        allow_null=True,
        help_text="When nothing of it was left to send; null before.",
    )
    audience = serializers.SerializerMethodField(
        help_text="How many clients it was sent to (one message each), from its start; null before."
    )

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
            "started_at",
            "finished_at",
            "audience",
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

    @extend_schema_field(serializers.IntegerField(allow_null=True, min_value=0))
    def get_audience(self, mailing: Mailing) -> int | None:
        return self.context["audiences"][mailing.id]


def mailing_data(mailings: Mailing | Sequence[Mailing]) -> Any:
    """The representation of one mailing or of a page, the audiences read in one query."""
    many = not isinstance(mailings, Mailing)
    listed = mailings if isinstance(mailings, Sequence) else [mailings]
    context = {"audiences": mailing_audiences(mailings=listed)}
    return MailingSerializer(mailings, many=many, context=context).data


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
    mailings = serializers.IntegerField(help_text="The mailings listed, over all pages.")
    messages = MessageCountsSerializer(help_text="Their messages, over all pages.")


class MailingStatsPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    totals = StatsTotalsSerializer()
    results = MailingStatsSerializer(many=True)


def _stats(mailing: Mailing, counts: MessageCounts) -> dict[str, Any]:
    return {
        "id": mailing.id,
        "status": mailing.status,
        "start_at": mailing.start_at,
        "end_at": mailing.end_at,
        "messages": counts,
    }


# A window in the future, so that "Try it out" creates a mailing that waits (and can be
# cancelled) instead of sending at once, and that stays valid for decades.
MAILING_EXAMPLES = [
    OpenApiExample(
        "VIP clients of one operator",
        value={
            "start_at": "2099-06-01T09:00:00+03:00",
            "end_at": "2099-06-01T21:00:00+03:00",
            "text": "Hello from the notifier",
            "filter": {"operator_codes": ["916"], "tags": ["vip"]},
        },
        request_only=True,
    ),
    OpenApiExample(
        "Every client",
        value={
            "start_at": "2099-06-02T09:00:00Z",
            "end_at": "2099-06-02T18:00:00Z",
            "text": "Our offices are closed on Monday.",
            "filter": {},
        },
        request_only=True,
    ),
]
FROZEN_NOTE = (
    " Once the mailing has started (finished included), only `end_at` may change; once "
    "cancelled, nothing: a refused change is a 400 naming the fields and saying why."
)


@extend_schema_view(
    list=extend_schema(
        summary="List mailings",
        description="Every mailing, paginated, optionally only those with one status.",
    ),
    retrieve=extend_schema(
        summary="Get a mailing",
        description="With its derived status, when it started and finished, and how many "
        "clients it reached (`audience`, from its start).",
    ),
    destroy=extend_schema(
        summary="Delete a mailing",
        description="Stops it, then removes it with all its messages and their statistics. "
        "To stop it and keep its history, cancel it instead.",
    ),
)
@extend_schema(tags=["mailings"])
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

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        assert page is not None
        return self.get_paginated_response(mailing_data(page))

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(mailing_data(self.get_object()))

    @extend_schema(
        summary="Create a mailing",
        description="Sending starts by itself when the window opens (at once if `start_at` "
        "is past). `filter` is required: `{}` sends to every client. The end must be in the "
        "future and after the start.",
        request=MailingInputSerializer,
        responses={201: MailingSerializer},
        examples=MAILING_EXAMPLES,
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = MailingInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        mailing = mailing_create(**serializer.to_service_kwargs())
        return Response(mailing_data(mailing), status=201)

    @extend_schema(
        summary="Replace a mailing",
        description="Every field as given, `filter` included." + FROZEN_NOTE,
        request=MailingInputSerializer,
        responses={200: MailingSerializer},
        examples=MAILING_EXAMPLES,
    )
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        partial = kwargs.pop("partial", False)
        serializer = MailingInputSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        mailing = mailing_update(
            mailing=self.get_object(), data=serializer.to_service_kwargs(), replace=not partial
        )
        return Response(mailing_data(mailing))

    @extend_schema(
        summary="Change a mailing",
        description="Only the fields given; a `filter` given replaces the whole filter."
        + FROZEN_NOTE,
        request=MailingInputSerializer,
        responses={200: MailingSerializer},
        examples=[
            OpenApiExample(
                "A later end", value={"end_at": "2099-06-01T23:00:00+03:00"}, request_only=True
            )
        ],
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.update(request, *args, partial=True, **kwargs)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        mailing_delete(mailing=self.get_object())
        return Response(status=204)

    @extend_schema(
        summary="Cancel a mailing",
        description="Stops it for good and keeps its history: pending messages become "
        "`cancelled`, the counts stay readable, and it can no longer be changed. No body.",
        request=None,
        responses={200: MailingSerializer},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        """Stop the mailing for good; unsent messages become `cancelled`, history stays."""
        # No body is expected, so none is ignored either: any key in one is a 400.
        StrictSerializer(data=request.data).is_valid(raise_exception=True)
        mailing = mailing_cancel(mailing=self.get_object())
        return Response(mailing_data(mailing))

    @extend_schema(
        operation_id="api_mailings_stats_list",
        tags=["statistics"],
        summary="Statistics of mailings",
        description="Each mailing listed with its message counts by status (all six, zeros "
        "included), and `totals` over every mailing the query selects, on every page: "
        "`?status=running` totals the running mailings only.",
        responses={200: MailingStatsPageSerializer},
        filters=True,
        parameters=PAGE_PARAMETERS,
    )
    @action(detail=False, methods=["get"], url_path="stats")
    def stats_list(self, request: Request) -> Response:
        """Every mailing with its message counts by status, and totals over those listed."""
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        assert page is not None
        counts = message_counts_by_mailing(mailing_ids=[m.id for m in page])
        response = self.get_paginated_response([_stats(m, counts[m.id]) for m in page])
        results = response.data.pop("results")
        response.data["totals"] = {
            "mailings": response.data["count"],
            "messages": message_counts_total(mailings=queryset),
        }
        response.data["results"] = results
        return response

    @extend_schema(
        tags=["statistics"],
        summary="Statistics of one mailing",
        description="Its message counts by status, all six present, zeros included.",
        responses={200: MailingStatsSerializer},
    )
    @action(detail=True, methods=["get"])
    def stats(self, request: Request, pk: str) -> Response:
        """One mailing's message counts by status."""
        mailing = self.get_object()
        counts = message_counts_by_mailing(mailing_ids=[mailing.id])[mailing.id]
        return Response(_stats(mailing, counts))
