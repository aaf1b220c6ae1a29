import zoneinfo
from functools import cache

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

PHONE_PATTERN = r"^7[0-9]{10}$"
OPERATOR_CODE_PATTERN = r"^[0-9]{3}$"
TAG_MAX_LENGTH = 64

phone_validator = RegexValidator(
    PHONE_PATTERN, "Enter a phone number in the form 7XXXXXXXXXX (11 digits starting with 7)."
)
operator_code_validator = RegexValidator(
    OPERATOR_CODE_PATTERN, "Enter a mobile operator code of exactly 3 digits."
)


@cache
def _known_timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def validate_timezone(value: str) -> None:
    if value not in _known_timezones():
        raise ValidationError(
            "Enter a valid IANA timezone name, such as Europe/Moscow.", code="invalid"
        )


def operator_code_from_phone(phone: str) -> str:
    """The operator code is digits 2-4 of a Russian mobile number: 7 (916) 123-45-67."""
    return phone[1:4]


class Client(models.Model):
    phone = models.CharField(max_length=11, unique=True, validators=[phone_validator])
    operator_code = models.CharField(max_length=3, validators=[operator_code_validator])
    tag = models.CharField(max_length=TAG_MAX_LENGTH, blank=True, default="")
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(phone__regex=PHONE_PATTERN), name="client_phone_format"
            ),
            models.CheckConstraint(
                condition=models.Q(operator_code__regex=OPERATOR_CODE_PATTERN),
                name="client_operator_code_format",
            ),
        ]
        indexes = [
            # Fan-out selects by operator code and tag; the list API filters by either.
            models.Index(fields=["operator_code", "tag"], name="client_operator_tag_idx"),
            models.Index(fields=["tag"], name="client_tag_idx"),
        ]

    def __str__(self) -> str:
        return f"Client {self.id} ({self.phone})"
