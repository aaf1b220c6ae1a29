import factory

from notifier.clients.models import Client


class ClientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Client

    phone = factory.Sequence(lambda n: f"7916{n:07d}")
    operator_code = factory.LazyAttribute(lambda c: c.phone[1:4])
    tag = ""
    timezone = "Europe/Moscow"
