"""Rows in the states the engine's tests start from."""

from datetime import datetime, timedelta
from typing import Any, cast

from django.utils import timezone

from notifier.mailings.models import Mailing, Message
from notifier.mailings.tests.factories import MailingFactory, MessageFactory

S = Message.Status
HOUR = timedelta(hours=1)


def live_mailing(**kwargs: Any) -> Mailing:
    """A mailing whose window is open and whose messages exist (fanned out)."""
    now = timezone.now()
    fields = {
        "start_at": now - timedelta(minutes=5),
        "end_at": now + HOUR,
        "fanned_out_at": now - timedelta(minutes=5),
        **kwargs,
    }
    return cast(Mailing, MailingFactory(**fields))


def statuses(mailing: Mailing) -> dict[int, str]:
    return dict(Message.objects.filter(mailing=mailing).values_list("id", "status"))


def sending(mailing: Mailing, *, lease_until: datetime, **kwargs: Any) -> Message:
    """A message claimed by a worker whose lease runs until `lease_until`."""
    return cast(
        Message,
        MessageFactory(
            mailing=mailing, status=S.SENDING, attempts=1, lease_until=lease_until, **kwargs
        ),
    )
