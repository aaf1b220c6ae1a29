from notifier.clients.models import Client
from notifier.core.filters import StrictFilterSet


class ClientFilter(StrictFilterSet):
    class Meta:
        model = Client
        fields = ["tag", "operator_code"]
