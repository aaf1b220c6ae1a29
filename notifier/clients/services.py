from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from notifier.clients.models import Client, operator_code_from_phone
from notifier.clients.phones import phone_normalise
from notifier.core import logging
from notifier.core.errors import DomainError

log = logging.get_logger(__name__)
PHONE_TAKEN = "A client with this phone already exists."
# What a client's optional fields are when not given (the operator code: from the phone).
CLIENT_DEFAULTS: dict[str, Any] = {"operator_code": None, "tag": "", "timezone": "UTC"}


def client_create(
    *, phone: str, operator_code: str | None = None, tag: str = "", timezone: str = "UTC"
) -> Client:
    """Add a client. The phone may be written as people do (`+7 916 123-45-67`, `8916...`);
    the operator code defaults to the one encoded in it."""
    phone = _phone(phone)
    client = Client(
        phone=phone,
        operator_code=operator_code or operator_code_from_phone(phone),
        tag=tag,
        timezone=timezone,
    )
    _save(client)
    logging.bind(client_id=client.id)
    log.info("client created", operator_code=client.operator_code, tag=client.tag)
    return client


def client_update(*, client: Client, data: dict[str, Any], replace: bool = False) -> Client:
    """Change the given fields, or with `replace` all of them, the fields not given taking
    their defaults. A new phone without an operator code re-derives the code."""
    if replace:
        data = {**CLIENT_DEFAULTS, **data}
    if "phone" in data:
        data = {**data, "phone": _phone(data["phone"])}
    if ("phone" in data or "operator_code" in data) and not data.get("operator_code"):
        phone = data.get("phone", client.phone)
        data = {**data, "operator_code": operator_code_from_phone(phone)}
    logging.bind(client_id=client.id)
    changed = sorted(field for field, value in data.items() if getattr(client, field) != value)
    for field, value in data.items():
        setattr(client, field, value)
    _save(client)
    log.info("client changed", fields=changed)
    return client


def _phone(value: str) -> str:
    try:
        return phone_normalise(value)
    except ValidationError as exc:
        raise DomainError(exc.messages[0], field="phone") from exc


def _save(client: Client) -> None:
    try:
        with transaction.atomic():
            client.save()
    except IntegrityError as exc:
        # The unique index is the arbiter: a concurrent create can win after our check.
        if Client.objects.filter(phone=client.phone).exclude(pk=client.pk).exists():
            raise DomainError(PHONE_TAKEN, field="phone", code="unique") from exc
        raise
