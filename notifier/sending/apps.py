from django.apps import AppConfig


class SendingConfig(AppConfig):
    name = "notifier.sending"
    label = "sending"
