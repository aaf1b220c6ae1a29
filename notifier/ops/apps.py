from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "notifier.ops"
    label = "ops"

    def ready(self) -> None:
        # Every process (web, worker, beat) chooses its metrics storage at start-up, before any
        # engine module records a value; see the module's docstring.
        from notifier.ops import metrics

        metrics.register_process_exit()
