from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "notifier.ops"
    label = "ops"
