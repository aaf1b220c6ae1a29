"""/metrics: what every process recorded (`notifier.core.metrics`), and the gauges read from
the database at the moment of the scrape."""

import logging
from collections.abc import Iterable

from django.db import DatabaseError
from django.utils import timezone
from prometheus_client import REGISTRY, CollectorRegistry, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from notifier.core.metrics import MULTIPROC_DIR
from notifier.ops import selectors

log = logging.getLogger(__name__)
# A scrape must never hang on a slow database (Prometheus' own scrape timeout is 10 s).
DB_TIMEOUT = 2.0


class DatabaseCollector(Collector):
    """The gauges read from the database, computed afresh at each scrape."""

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "notifier_metrics_database_up",
            "1 if the notifier_messages* and notifier_mailings gauges were read from the "
            "database for this scrape, 0 if the database failed to answer in time.",
        )
        try:
            snapshot = selectors.queue_snapshot(now=timezone.now(), timeout=DB_TIMEOUT)
        except DatabaseError as exc:
            log.warning("metrics: the database gauges could not be read: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield _gauge(
            "notifier_messages_pending",
            "Pending messages of live mailings: due now, or later (waiting out a backoff).",
            "due",
            snapshot.pending,
        )
        yield _gauge("notifier_messages", "Messages, by status.", "status", snapshot.messages)
        yield _gauge(
            "notifier_mailings",
            "Mailings, by status (scheduled, running, finished, cancelled).",
            "status",
            snapshot.mailings,
        )


def _gauge(name: str, documentation: str, label: str, counts: dict[str, int]) -> Metric:
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for value, count in counts.items():
        family.add_metric([value], count)
    return family


class _ThisProcess(Collector):
    """The default registry of this process, when processes do not share a folder."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def exposition(*, accept: str) -> tuple[bytes, str]:
    """The body and content type of a scrape, in the format the `Accept` header asks for."""
    registry = CollectorRegistry()
    if MULTIPROC_DIR:
        multiprocess.MultiProcessCollector(registry, path=MULTIPROC_DIR)
    else:
        registry.register(_ThisProcess())
    registry.register(DatabaseCollector())
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type
