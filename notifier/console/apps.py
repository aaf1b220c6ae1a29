from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "notifier.console"
    label = "console"
