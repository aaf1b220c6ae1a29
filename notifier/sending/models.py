from django.db import models


class TickClock(models.Model):
    """When the tick last ran (one row): a tick that finds a long gap since knows that leases
    ran out while nobody was watching (the database or beat was down), not because workers
    died; see `tick.renew_leases_after_a_gap`."""

    ran_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"tick at {self.ran_at:%Y-%m-%d %H:%M:%S}"
