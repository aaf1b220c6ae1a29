"""The Celery application: tasks are wake-ups, the database holds every fact."""

import os
from pathlib import Path

from celery import Celery
from celery.signals import task_prerun, worker_process_init
from kombu.transport import TRANSPORT_ALIASES

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# `filesystem://` (the embedded default) gets kombu's transport with atomic writes.
TRANSPORT_ALIASES["filesystem"] = "notifier.core.filebroker:Transport"

app = Celery("notifier")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Every installed app's `tasks` module, so that a new app's tasks are never silently missed.
app.autodiscover_tasks()


@app.on_after_configure.connect
def _make_broker_folders(sender: Celery, **kwargs: object) -> None:
    # The embedded file-system broker needs its folders before anyone publishes or consumes.
    options = sender.conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        if key in options:
            Path(options[key]).mkdir(parents=True, exist_ok=True)


@task_prerun.connect
def _bind_task_context(task_id: str, task: object, **kwargs: object) -> None:
    # Each task starts with a clean log context (worker threads are reused).
    from notifier.core import logging

    logging.clear()
    logging.bind(task=getattr(task, "name", ""), task_id=task_id)


@worker_process_init.connect
def _leave_the_process_group(**kwargs: object) -> None:
    # A prefork child (the reports process has one) leaves its parent's process group: a
    # supervisor that signals the whole group (honcho on Ctrl-C) would otherwise kill it in
    # the middle of a delivery, where the parent's warm shutdown lets it finish. It still
    # exits when the parent does (its pipe from the parent closes).
    os.setpgrp()
