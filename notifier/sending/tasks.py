"""Celery tasks: thin wake-ups that load state from the database and call the engine."""

import threading
from datetime import datetime

from celery import shared_task
from celery.signals import worker_shutting_down
from django.conf import settings
from django.utils import timezone

from notifier.core import logging, metrics
from notifier.mailings.models import Mailing, Message
from notifier.sending import queries
from notifier.sending import tick as engine_tick
from notifier.sending.dispatcher import DATABASE_ERRORS, Dispatcher, poke, shutting_down
from notifier.sending.settings import EngineSettings
from notifier.sending.wakeups import START_HORIZON

log = logging.get_logger(__name__)

# One send loop per worker process: it already keeps `in_flight` requests going.
_dispatching = threading.Lock()
_tick_failing = False  # the last tick met a database outage


@shared_task(name="sending.tick", ignore_result=True)
def tick() -> None:
    """Once a second (beat): start due mailings, close over ones, requeue dead claims."""
    global _tick_failing
    try:
        report = engine_tick.run(
            now=timezone.now(), horizon=START_HORIZON, lease=EngineSettings.load().lease
        )
    except DATABASE_ERRORS as exc:
        # Every second while the database is down: said once, not a traceback a second.
        if not _tick_failing:
            log.warning("tick skipped: the database is unavailable", error=str(exc).strip())
        _tick_failing = True
        return
    if _tick_failing:
        log.warning("the database answers again: ticking")
    _tick_failing = False
    for mailing_id in report.to_start:
        start_mailing.delay(mailing_id)
    for mailing_id, start_at in report.starting_soon:
        start_mailing.apply_async((mailing_id,), eta=start_at, expires=START_HORIZON + 60)
    for mailing_id, count in report.expired.items():
        log.info("mailing expired", mailing_id=mailing_id, messages_expired=count)
    for mailing_id in report.finished:
        log.info("mailing finished", mailing_id=mailing_id)
    if report.reclaimed:
        log.warning("requeued messages whose worker stopped", messages=report.reclaimed)
    if report.due:
        wake_send_loops()


@shared_task(name="sending.start_mailing", ignore_result=True)
def start_mailing(mailing_id: int) -> None:
    """Create a mailing's messages when its window opens, then get them sent."""
    logging.bind(mailing_id=mailing_id)
    now, engine = timezone.now(), EngineSettings.load()

    def first_attempt(mailing: Mailing, zone: str) -> datetime | None:
        schedule = engine.schedule(end_at=mailing.end_at, window=mailing.send_window, zone=zone)
        return schedule.next_attempt_at(now)

    fan_out = queries.mailing_fan_out(mailing_id=mailing_id, now=now, first_attempt=first_attempt)
    if fan_out is None:
        return
    log.info("mailing started", messages=fan_out.created)
    if fan_out.expired:
        metrics.record_final(Message.Status.EXPIRED, fan_out.expired)
        log.info(
            "messages expired at the start: their send window does not open before the end",
            messages=fan_out.expired,
        )
    wake_send_loops()


@shared_task(name="sending.dispatch", ignore_result=True)
def dispatch() -> None:
    """Send due messages until none are left or the budget is spent."""
    if not _dispatching.acquire(blocking=False):
        poke()  # the running loop takes it from here
        return
    try:
        config = EngineSettings.load()
        more = Dispatcher(config).run(budget=config.dispatch_budget)
    finally:
        _dispatching.release()
    if more:
        wake_send_loops()


def wake_send_loops() -> None:
    """Wake one worker's send loop through the task queue, which holds the wake-up until a
    worker takes it, and, where the broker has a fan-out exchange (Redis), every worker's at
    once. The fan-out is best effort: PUB/SUB reaches whoever listens at that moment, so
    sending never depends on it alone."""
    dispatch.delay()
    if settings.SENDING_BROADCAST is not None:
        # Declared by the publisher: kombu's Redis transport takes an exchange it has not
        # seen declared for a direct one and drops the message (celery/celery#2638).
        dispatch.apply_async(  # type: ignore[call-arg] # options pass through; the stubs omit it
            queue="dispatch", declare=[settings.SENDING_BROADCAST]
        )


@worker_shutting_down.connect
def _stop_sending(**kwargs: object) -> None:
    """A warm shutdown waits for the running dispatch: make it hand over now, with every
    outcome it holds written (see `Dispatcher`)."""
    shutting_down.set()
