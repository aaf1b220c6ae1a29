from datetime import datetime

from django.db import models
from django.db.models.functions import Cast, Length, Now
from django.db.models.lookups import GreaterThan, LessThanOrEqual, Regex
from django.utils import timezone

from notifier.clients.models import Client
from notifier.mailings.windows import SendWindow

MAILING_TEXT_MAX_LENGTH = 1000
LAST_ERROR_MAX_LENGTH = 500
# The filter's two lists, as the database holds them: JSON text whose elements are separated
# by ", " (Python's json.dumps and PostgreSQL's jsonb output alike). Anything else (a bare
# string, a number, an object) would make fan-out match the wrong clients, so it is refused.
_JSON_STRING = r'"([^"\\]|\\.)*"'
OPERATOR_CODES_JSON = r'^\[("[0-9]{3}"(, ?"[0-9]{3}")*)?\]$'
TAGS_JSON = rf"^\[({_JSON_STRING}(, ?{_JSON_STRING})*)?\]$"


# The one rule for when a mailing may send: not cancelled, and its window open. Raw statements
# use the SQL twin, with the mailing table as `{m}` and the moment as the named parameter
# `%(now)s` (tested to agree with `MailingQuerySet.may_send` and `Mailing.may_send`).
MAY_SEND_SQL = "{m}.cancelled_at IS NULL AND {m}.start_at <= %(now)s AND {m}.end_at > %(now)s"


def may_send_q(now: datetime, prefix: str = "") -> models.Q:
    """The rule as a filter, on a mailing or (`prefix="mailing__"`) on its messages."""
    return models.Q(
        **{f"{prefix}cancelled_at__isnull": True, f"{prefix}start_at__lte": now},
        **{f"{prefix}end_at__gt": now},
    )


class MailingQuerySet(models.QuerySet["Mailing"]):
    def may_send(self, now: datetime) -> "MailingQuerySet":
        """The mailings whose messages may be sent at `now`."""
        return self.filter(may_send_q(now))


class Mailing(models.Model):
    """A campaign: one message to every client matching the filter, inside [start_at, end_at).

    The status is derived from the window and three facts the engine records, so it needs no
    message counts to compute and can be filtered in SQL (see `selectors.mailing_status_q`).
    """

    class Status(models.TextChoices):
        SCHEDULED = "scheduled"
        RUNNING = "running"
        FINISHED = "finished"
        CANCELLED = "cancelled"

    start_at = models.DateTimeField()
    end_at = models.DateTimeField()
    text = models.TextField(max_length=MAILING_TEXT_MAX_LENGTH)
    # The client filter: empty list = no restriction on that attribute.
    operator_codes = models.JSONField(default=list, blank=True)
    tags = models.JSONField(default=list, blank=True)
    # The send window, in each client's local time; both empty: any time of day.
    send_window_start = models.TimeField(null=True, blank=True)
    send_window_end = models.TimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Set by the engine: messages created / nothing left to send / stopped by an operator.
    fanned_out_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    objects = MailingQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(end_at__gt=models.F("start_at")), name="mailing_end_after_start"
            ),
            models.CheckConstraint(
                condition=GreaterThan(Length("text"), 0)
                & LessThanOrEqual(Length("text"), MAILING_TEXT_MAX_LENGTH),
                name="mailing_text_length",
            ),
            models.CheckConstraint(
                condition=Regex(Cast("operator_codes", models.TextField()), OPERATOR_CODES_JSON),
                name="mailing_operator_codes_list",
            ),
            models.CheckConstraint(
                condition=Regex(Cast("tags", models.TextField()), TAGS_JSON),
                name="mailing_tags_list",
            ),
            models.CheckConstraint(
                condition=models.Q(send_window_start__isnull=True, send_window_end__isnull=True)
                | (
                    models.Q(send_window_start__isnull=False, send_window_end__isnull=False)
                    & ~models.Q(send_window_start=models.F("send_window_end"))
                ),
                name="mailing_send_window",
            ),
        ]
        indexes = [models.Index(fields=["start_at"], name="mailing_start_idx")]

    def __str__(self) -> str:
        return f"Mailing {self.id}"

    @property
    def send_window(self) -> SendWindow | None:
        if self.send_window_start is None or self.send_window_end is None:
            return None
        return SendWindow(self.send_window_start, self.send_window_end)

    def may_send(self, now: datetime) -> bool:
        """Whether the mailing's messages may be sent at `now` (the rule, in Python)."""
        return self.cancelled_at is None and self.start_at <= now < self.end_at

    def status_at(self, now: datetime) -> "Mailing.Status":
        if self.cancelled_at is not None:
            return self.Status.CANCELLED
        if self.finished_at is not None or now >= self.end_at:
            return self.Status.FINISHED
        if self.may_send(now):
            return self.Status.RUNNING
        return self.Status.SCHEDULED

    @property
    def status(self) -> "Mailing.Status":
        return self.status_at(timezone.now())

    def has_started(self, now: datetime | None = None) -> bool:
        return self.fanned_out_at is not None or (now or timezone.now()) >= self.start_at


class MessageStatus(models.TextChoices):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class Message(models.Model):
    """One message of a mailing to one client; its id is also the id sent to the external API."""

    Status = MessageStatus
    ACTIVE_STATUSES = (Status.PENDING, Status.SENDING)
    FINAL_STATUSES = (Status.SENT, Status.FAILED, Status.EXPIRED, Status.CANCELLED)

    # No index of its own: the composite indexes below all start with it. One more would
    # tempt PostgreSQL, when a new mailing is not yet in its statistics, to claim through it
    # and sort every pending message of the mailing on every claim.
    mailing = models.ForeignKey(
        Mailing, on_delete=models.CASCADE, related_name="messages", db_index=False
    )
    # The history outlives the client: the link is cleared, the address stays.
    client = models.ForeignKey(
        Client, on_delete=models.SET_NULL, null=True, blank=True, related_name="messages"
    )
    phone = models.CharField(max_length=11)
    # Database defaults, so that fan-out can insert rows with one set-based statement.
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PENDING, db_default=Status.PENDING
    )
    created_at = models.DateTimeField(default=timezone.now, db_default=Now())
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0, db_default=0)
    last_error = models.CharField(
        max_length=LAST_ERROR_MAX_LENGTH, blank=True, default="", db_default=""
    )
    # When the engine may next try to send it; a claim takes the longest-waiting first.
    next_attempt_at = models.DateTimeField(default=timezone.now, db_default=Now())
    # While `sending`: the claim is the worker's until then; after that it is presumed dead.
    lease_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["mailing", "client"], name="message_one_per_client"),
            models.CheckConstraint(
                condition=models.Q(status__in=MessageStatus.values),
                name="message_status_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(status="sent", sent_at__isnull=False) | ~models.Q(status="sent"),
                name="message_sent_has_time",
            ),
        ]
        indexes = [
            # Statistics count by (mailing, status).
            models.Index(fields=["mailing", "status"], name="message_mailing_status_idx"),
            # The engine claims due messages of one mailing, longest-waiting first...
            models.Index(
                fields=["mailing", "next_attempt_at"],
                condition=models.Q(status="pending"),
                name="message_due_idx",
            ),
            # ...and looks for claims whose worker died.
            models.Index(
                fields=["lease_until"],
                condition=models.Q(status="sending"),
                name="message_lease_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"Message {self.id}"


class MessageCount(models.Model):
    """How many messages each mailing has in each status, kept by database triggers on the
    message table (migration 0002), so that statistics read a few rows per mailing instead of
    counting millions of messages, and no code path can forget to update them.

    A count is the sum of its rows: one `base` row per (mailing, status) and, on PostgreSQL,
    delta rows that triggers append. Appending takes no lock that another writer needs, so
    concurrent claims and settlements never wait on a shared counter; the engine's tick folds
    the deltas into the base rows (`sending.queries.rollups_compact`). SQLite, one writer at a time,
    updates the base rows directly."""

    mailing_id = models.BigIntegerField()  # no foreign key: rows outlive a deleted mailing at 0
    status = models.CharField(max_length=16, choices=MessageStatus.choices)
    number = models.BigIntegerField(default=0)
    base = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["mailing_id", "status"],
                condition=models.Q(base=True),
                name="message_count_base",
            )
        ]
        indexes = [models.Index(fields=["mailing_id", "status"], name="message_count_idx")]

    def __str__(self) -> str:
        return f"Mailing {self.mailing_id}: {self.number:+} {self.status}"


class MessageMinute(models.Model):
    """How many messages of each mailing reached each final status in each minute: the time
    series of the console and the daily report, kept by database triggers as messages
    settle (migration 0006), so that no page scans the message table.

    Like `MessageCount`: on PostgreSQL triggers append delta rows that the tick folds into
    one `base` row per (mailing, minute, status); SQLite updates the base rows directly."""

    mailing_id = models.BigIntegerField()  # no foreign key: the history outlives a mailing
    minute = models.DateTimeField()  # the start of the minute (UTC) the status was reached in
    status = models.CharField(max_length=16, choices=MessageStatus.choices)
    number = models.BigIntegerField(default=0)
    base = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["mailing_id", "minute", "status"],
                condition=models.Q(base=True),
                name="message_minute_base",
            )
        ]
        indexes = [
            models.Index(fields=["minute", "mailing_id"], name="message_minute_idx"),
            models.Index(fields=["mailing_id", "minute"], name="message_minute_mailing_idx"),
        ]

    def __str__(self) -> str:
        return f"Mailing {self.mailing_id} at {self.minute:%H:%M}: {self.number:+} {self.status}"


class MessageErrorMinute(models.Model):
    """How many messages of each mailing ended `failed` or `expired` with each error in each
    minute: the "most frequent errors" of the daily report, kept by database triggers as
    messages settle (migration 0007), so that the report reads no message.

    Like `MessageMinute` (delta rows on PostgreSQL, folded by the tick; base rows on SQLite).
    An error is the message's `last_error` as the engine wrote it: the answer of the API
    (`HTTP 400: ...`), or why it expired and the last error before that."""

    ERROR_STATUSES = (MessageStatus.FAILED, MessageStatus.EXPIRED)

    mailing_id = models.BigIntegerField()  # no foreign key: the history outlives a mailing
    minute = models.DateTimeField()  # the start of the minute (UTC) the status was reached in
    status = models.CharField(max_length=16, choices=MessageStatus.choices)
    error = models.CharField(max_length=LAST_ERROR_MAX_LENGTH)
    number = models.BigIntegerField(default=0)
    base = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["mailing_id", "minute", "status", "error"],
                condition=models.Q(base=True),
                name="message_error_minute_base",
            )
        ]
        indexes = [models.Index(fields=["minute"], name="message_error_minute_idx")]

    def __str__(self) -> str:
        return f"Mailing {self.mailing_id} at {self.minute:%H:%M}: {self.number:+} {self.error}"
