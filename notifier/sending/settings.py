from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings

from notifier.mailings.windows import SendWindow, zone_named
from notifier.sending.policy import Schedule


@dataclass(frozen=True)
class EngineSettings:
    """The engine's knobs, from the environment (see `.env.example`)."""

    probe_url: str
    probe_token: str
    request_timeout: float  # seconds, for one request; also capped by the time left
    in_flight: int  # the most requests in flight at once per worker (the limit is found)
    rate_limit: float  # requests per second to the API, all workers together; 0: none
    broker_url: str  # where the workers share the rate limit and pauses (Redis), if there
    backoff_base: float  # first retry delay, seconds; doubles per attempt
    backoff_max: float  # longest retry delay, seconds
    start_window: float  # a claimed message not started within this is released unsent
    end_margin: float  # no request starts this close to a mailing's end (network transit)
    min_timeout: float  # ... nor with less time than this left for its answer
    lease_margin: float  # extra lease time beyond start window and request timeout
    auth_pause: float  # first pause after a 401/403, seconds; doubles up to backoff_max
    dispatch_budget: float  # seconds one dispatch task runs before handing over
    shutdown_timeout: float  # seconds a stopping worker keeps trying to write its outcomes

    @property
    def lease(self) -> float:
        """Long enough that a live worker always settles its claim before it runs out."""
        return self.start_window + self.request_timeout + self.lease_margin

    def schedule(
        self, *, end_at: datetime, window: SendWindow | None, zone: str | None
    ) -> Schedule:
        """When a message of a mailing ending at `end_at` may go, for a client in `zone`:
        no request starts within `end_margin + min_timeout` of the end."""
        return Schedule(
            last_start=end_at - timedelta(seconds=self.end_margin + self.min_timeout),
            window=window,
            zone=zone_named(zone) if window is not None and zone else None,
        )

    @classmethod
    def load(cls) -> "EngineSettings":
        knobs = {name.lower(): value for name, value in settings.SENDING.items()}
        return cls(**knobs, broker_url=settings.CELERY_BROKER_URL)
