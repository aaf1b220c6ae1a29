from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "notifier.core"
    label = "core"

    def ready(self) -> None:
        # Every process (web, worker, beat) chooses its metrics storage at start-up, before any
        # module records a value; see the module's docstring.
        from notifier.core import metrics

        metrics.register_process_exit()
