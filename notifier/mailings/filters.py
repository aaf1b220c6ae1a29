import django_filters
from django.db.models import QuerySet
from django.utils import timezone

from notifier.core.filters import StrictFilterSet
from notifier.mailings.models import Mailing, Message
from notifier.mailings.selectors import mailing_status_q


class MailingFilter(StrictFilterSet):
    status = django_filters.ChoiceFilter(choices=Mailing.Status.choices, method="filter_status")

    class Meta:
        model = Mailing
        fields = ["status"]

    def filter_status(self, queryset: QuerySet[Mailing], name: str, value: str) -> QuerySet:
        return queryset.filter(mailing_status_q(value, timezone.now()))


class MessageFilter(StrictFilterSet):
    status = django_filters.ChoiceFilter(choices=Message.Status.choices)

    class Meta:
        model = Message
        fields = ["status"]
