from datetime import timedelta

import factory
from django.utils import timezone

from notifier.clients.tests.factories import ClientFactory
from notifier.mailings.models import Mailing, Message


class MailingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Mailing

    start_at = factory.LazyFunction(lambda: timezone.now() + timedelta(hours=1))
    end_at = factory.LazyAttribute(lambda m: m.start_at + timedelta(hours=2))
    text = "Hello!"
    operator_codes = factory.LazyFunction(list)
    tags = factory.LazyFunction(list)


class MessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Message

    mailing = factory.SubFactory(MailingFactory)
    client = factory.SubFactory(ClientFactory)
    phone = factory.LazyAttribute(lambda m: m.client.phone)
