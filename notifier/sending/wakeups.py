"""Wake-ups for the workers, published after the transaction that made them necessary commits,
from a background thread: a slow or dead broker never slows down or fails an API request.
Nothing depends on a wake-up arriving: the tick finds the same work within a second."""

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from celery import current_app
from django.db import transaction

from notifier.core import logging

log = logging.get_logger(__name__)
# Mailings starting this soon get a wake-up timed to their start; later ones, from the tick.
START_HORIZON = 3.0
_publisher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wakeups")


def wake_after_commit(task_name: str, *args: Any, eta: datetime | None = None) -> None:
    transaction.on_commit(lambda: _publisher.submit(_publish, task_name, args, eta))


def _publish(task_name: str, args: tuple[Any, ...], eta: datetime | None) -> None:
    try:
        # By name, through the app the process configured (config.celery): the engine does not
        # import the configuration above it.
        current_app.send_task(task_name, args=args, eta=eta, retry=False)
    except Exception as exc:  # the broker's errors are many and all mean the same here
        log.warning(
            "wake-up not published; the tick will catch up",
            task=task_name,
            args=args,
            error=f"{type(exc).__name__}: {exc}",
        )
