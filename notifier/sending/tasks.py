"""Celery tasks: thin wake-ups that load state from the database and call the engine."""

import threading

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from notifier.core import logging
from notifier.sending import queries
from notifier.sending import tick as engine_tick
from notifier.sending.dispatcher import Dispatcher, poke
from notifier.sending.settings import EngineSettings
from notifier.sending.wakeups import START_HORIZON

log = logging.get_logger(__name__)

# One send loop per worker process: it already keeps `in_flight` requests going.
_dispatching = threading.Lock()


@shared_task(name="sending.tick", ignore_result=True)
def tick() -> None:
    """Once a second (beat): start due mailings, close over ones, requeue dead claims."""
    report = engine_tick.run(now=timezone.now(), horizon=START_HORIZON)
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
    created = queries.mailing_fan_out(mailing_id=mailing_id, now=timezone.now())
    if created is not None:
        log.info("mailing started", messages=created)
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
