"""The report's tasks travel on their own queue, which carries nothing else (a real file
broker: every published task is a file named after its queue)."""

import pytest
from celery import current_app

from notifier.reports import tasks
from notifier.testing.stack import published

pytestmark = pytest.mark.django_db


def test_report_tasks_go_to_the_reports_queue_and_engine_tasks_never_do(file_broker):
    """Both queues declared first, bound as the worker and the reports process bind them on
    start-up (on Redis the bindings are the broker's, shared by every process)."""
    with current_app.connection_for_write() as connection:
        for queue in current_app.amqp.queues.values():
            queue(connection.default_channel).declare()
    tasks.check.delay()
    tasks.send.delay("2026-05-01")
    current_app.send_task("sending.tick")
    current_app.send_task("sending.dispatch")

    assert sorted((t["task"], t["queue"]) for t in published(file_broker)) == [
        ("reports.check", "reports"),
        ("reports.send", "reports"),
        ("sending.dispatch", "celery"),
        ("sending.tick", "celery"),
    ]


def test_beat_sends_the_check_to_the_reports_queue():
    from django.conf import settings

    entry = settings.CELERY_BEAT_SCHEDULE["reports-check"]
    assert entry["task"] == "reports.check"
    route = current_app.amqp.router.route(entry.get("options", {}), entry["task"])
    assert route["queue"].name == "reports"
