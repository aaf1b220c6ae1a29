from django.db import models


class Report(models.Model):
    """The daily report of one calendar day of REPORT_TIMEZONE. The row is claimed (inserted,
    unique per date) before anything is sent, so that any number of beats, checks and
    reports processes send a day's report once; it then records how that went."""

    class Status(models.TextChoices):
        PENDING = "pending"  # claimed: being delivered, or waiting for its next attempt
        SENT = "sent"
        FAILED = "failed"  # every attempt failed; `reason` has the last error
        SKIPPED = "skipped"  # never sent; `reason` says why

    date = models.DateField(unique=True)
    status = models.CharField(max_length=16, choices=Status.choices)
    reason = models.CharField(max_length=500, blank=True, default="")
    due_at = models.DateTimeField()  # REPORT_SEND_AT on the next day, when it was claimed
    recipients = models.JSONField(default=list, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # While pending: when it may next be attempted, and until when an attempt under way is
    # its process's (after that the process is presumed dead and the check tries again).
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-date"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=["pending", "sent", "failed", "skipped"]),
                name="report_status_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(status="sent", sent_at__isnull=False) | ~models.Q(status="sent"),
                name="report_sent_has_time",
            ),
        ]
        indexes = [
            # The check's look-up of what is due.
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status="pending"),
                name="report_pending_idx",
            )
        ]

    def __str__(self) -> str:
        return f"Report of {self.date:%Y-%m-%d}: {self.status}"


class ReportClock(models.Model):
    """When the reports service first checked for due reports (one row): a report that fell
    due before that moment belongs to a time before the service and is never sent."""

    first_check_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"reports checked since {self.first_check_at:%Y-%m-%d %H:%M:%S}"
