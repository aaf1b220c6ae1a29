"""How the API reads input: strictly. A key it does not know, a number where text belongs, a
naive datetime are errors naming the field, never guessed at or silently dropped: a typo in a
filter must not turn into "every client"."""

import difflib
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from django.utils import timezone
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from rest_framework import serializers

from notifier.clients.models import PHONE_PATTERN
from notifier.clients.phones import PHONE_INPUT_MAX_LENGTH, PHONE_INPUT_PATTERN, phone_normalise

UNKNOWN_FIELD = "Unknown field."
READ_ONLY_FIELD = "Read-only field: the service sets it."


def did_you_mean(
    name: str, known: Mapping[str, str] | Iterable[str], *, cutoff: float = 0.7
) -> str:
    """`" Did you mean 'tags'?"` for the closest known name (a near spelling, or one the name
    starts with: `phone_number`), or `""`. `known` may map the names compared to the ones
    suggested (`{"tags": "filter.tags"}`)."""
    candidates = known if isinstance(known, Mapping) else {k: k for k in known}
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=cutoff) or [
        k for k in candidates if len(k) >= 3 and name.startswith(k)
    ]
    return f" Did you mean '{candidates[close[0]]}'?" if close else ""


class StrictInput:
    """A serializer mixin: every key of the input object must be a field the operation
    accepts. Nested serializers are strict as well, with dotted paths (`filter.tag`), and the
    errors come together with those of the known fields."""

    fields: Any
    # Names the answer shows but a request cannot set (a serializer for input only does not
    # have them as fields): refused as read-only rather than unknown.
    read_only_names: tuple[str, ...] = ()

    def to_internal_value(self, data: Any) -> Any:
        unknown = self._unknown_keys(data) if isinstance(data, Mapping) else {}
        try:
            value = super().to_internal_value(data)  # type: ignore[misc]
        except serializers.ValidationError as exc:
            if unknown and isinstance(exc.detail, dict):
                raise serializers.ValidationError({**exc.detail, **unknown}) from exc
            raise
        if unknown:
            raise serializers.ValidationError(unknown)
        return value

    def _unknown_keys(self, data: Mapping[str, Any]) -> dict[str, list[str]]:
        errors = {}
        for key in data:
            field = self.fields.get(key)
            if (field is not None and field.read_only) or key in self.read_only_names:
                errors[key] = [READ_ONLY_FIELD]
            elif field is None:
                errors[key] = [UNKNOWN_FIELD + self._suggestion(str(key))]
        return errors

    def _suggestion(self, key: str) -> str:
        """The closest writable name; or one of a nested object, under its path and only if
        very close: a `tags` given at the top of a mailing is the filter's."""
        own = [name for name, field in self.fields.items() if not field.read_only]
        nested = {
            child: f"{name}.{child}"
            for name, field in self.fields.items()
            if isinstance(field, serializers.Serializer)
            for child, child_field in field.fields.items()
            if not child_field.read_only
        }
        return did_you_mean(key, own) or did_you_mean(key, nested, cutoff=0.8)


class StrictSerializer(StrictInput, serializers.Serializer):
    pass


class AwareDateTimeField(serializers.DateTimeField):
    """An ISO 8601 datetime that must carry its offset: a naive time is ambiguous across the
    clients' timezones, so it is refused rather than guessed."""

    default_error_messages = {
        "naive": "Give the datetime with an offset, e.g. 2026-01-01T09:00:00+03:00.",
    }

    def enforce_timezone(self, value: datetime) -> datetime:
        if timezone.is_naive(value):
            self.fail("naive")
        return super().enforce_timezone(value)


class StrictCharField(serializers.CharField):
    """Text must arrive as a JSON string: a number where text belongs is the client's bug,
    and silently accepting `916` for `"916"` would hide it."""

    default_error_messages = {"not_a_string": "Must be a string."}

    def to_internal_value(self, data: object) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string")
        # Too long is the one reason: no format check runs on (or reports) such a value.
        if self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return super().to_internal_value(data)


class PhoneField(StrictCharField):
    """A phone as people write it (`+7 916 123-45-67`, `89161234567`), read as `7XXXXXXXXXX`
    by the one normalisation of the directory, with its one reason when it is not a phone."""

    def __init__(self, **kwargs: Any) -> None:
        # The bound on what is read; the normalised value is 11 characters.
        super().__init__(max_length=PHONE_INPUT_MAX_LENGTH, **kwargs)

    def to_internal_value(self, data: object) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string")
        # Not StrictCharField's length check: a phone too long gets the phone's own reason.
        try:
            return phone_normalise(data)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages, code="invalid_phone") from exc


class PhoneFieldSchema(OpenApiSerializerFieldExtension):
    """Read in any form `phone_normalise` accepts; always answered as `7XXXXXXXXXX`."""

    target_class = PhoneField

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        if direction == "request":
            return {
                "type": "string",
                "maxLength": PHONE_INPUT_MAX_LENGTH,
                "pattern": PHONE_INPUT_PATTERN,
            }
        return {"type": "string", "pattern": PHONE_PATTERN}


class StrictModelSerializer(StrictInput, serializers.ModelSerializer):
    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.CharField: StrictCharField,
        models.TextField: StrictCharField,
    }
