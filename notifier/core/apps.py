from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "notifier.core"
    label = "core"

    def ready(self) -> None:
        # Every process (web, worker, beat) chooses its metrics storage at start-up, before any
        # module records a value; see the module's docstring.
        from django.db.backends.signals import connection_created

        from notifier.core import metrics, outage

        metrics.register_process_exit()
        # The end of a database outage is the first connection that opens again.
        connection_created.connect(outage.database_reachable, dispatch_uid="outage-end")
