from django.apps import AppConfig


class MailingsConfig(AppConfig):
    name = "notifier.mailings"
    label = "mailings"
