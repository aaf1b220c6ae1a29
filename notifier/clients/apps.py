from django.apps import AppConfig


class ClientsConfig(AppConfig):
    name = "notifier.clients"
    label = "clients"
