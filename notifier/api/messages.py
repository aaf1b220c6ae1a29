"""Messages, listed by what they belong to: a mailing's, or those to a client."""

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers

from notifier.api.filters import ClientMessageFilter, MailingMessageFilter
from notifier.clients.models import Client
from notifier.core import logging
from notifier.mailings.models import Mailing, Message
from notifier.mailings.selectors import message_list


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


class OwnedMessageList(generics.ListAPIView):
    """The messages of one owner named in the URL (404 when there is no such owner)."""

    serializer_class = MessageSerializer
    owner_model: type[Mailing] | type[Client]
    owner_name: str  # the URL's `<owner_name>_id`, the log's id, the selector's argument

    def get_queryset(self) -> QuerySet[Message]:
        if getattr(self, "swagger_fake_view", False):
            return Message.objects.none()
        owner: Any = get_object_or_404(self.owner_model, pk=self.kwargs[f"{self.owner_name}_id"])
        logging.bind(**{f"{self.owner_name}_id": owner.pk})
        return message_list(**{self.owner_name: owner})


@extend_schema(
    tags=["messages"],
    summary="List a mailing's messages",
    description="One message per client the mailing reached, in the order they were created, "
    "with its status, attempts and last error; by status, client or phone (the phone also "
    "finds the messages of a client deleted since).",
)
class MailingMessageListView(OwnedMessageList):
    owner_model = Mailing
    owner_name = "mailing"
    filterset_class = MailingMessageFilter


@extend_schema(
    tags=["messages"],
    summary="List a client's messages",
    description="Every message to the client, of every mailing, in the order they were "
    "created; by status or mailing.",
)
class ClientMessageListView(OwnedMessageList):
    owner_model = Client
    owner_name = "client"
    filterset_class = ClientMessageFilter
