"""Phone numbers as people write them, stored one way: `7XXXXXXXXXX`.

One function for every way a phone comes in (the API, the services, the admin, and later a
CSV import), so that they all accept the same forms and refuse the rest for the same reason.
"""

import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

# Longer than any legible form of 11 digits: beyond it the input is not a phone at all, and
# the pattern is never run on it.
PHONE_INPUT_MAX_LENGTH = 32
# `+7`, `7` or `8`, then ten digits, with spaces, dashes and parentheses between them. Also
# written into the OpenAPI schema, so it keeps to the syntax JSON Schema and Python share.
PHONE_INPUT_PATTERN = r"^(?:\+7|7|8)(?:[ ()-]*[0-9]){10}[ ()-]*$"
PHONE_INVALID = (
    "Enter a Russian mobile number: 11 digits starting with 7 or 8, or +7 and 10 digits; "
    "spaces, dashes and parentheses may separate them (e.g. +7 916 123-45-67)."
)
_PATTERN = re.compile(PHONE_INPUT_PATTERN)
_NOT_A_DIGIT = re.compile(r"[^0-9]")


def phone_normalise(value: str) -> str:
    """`+7 (916) 123-45-67`, `89161234567` or `79161234567` -> `79161234567`; anything else
    is a `ValidationError` with one reason."""
    value = value.strip()
    if len(value) > PHONE_INPUT_MAX_LENGTH or not _PATTERN.fullmatch(value):
        raise ValidationError(PHONE_INVALID, code="invalid_phone")
    # A leading 8 is the domestic trunk prefix of the same number as +7.
    return "7" + _NOT_A_DIGIT.sub("", value)[1:]


class PhoneFormField(forms.CharField):
    """The form field of a phone (the admin, query strings): normalised as it is cleaned."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", PHONE_INPUT_MAX_LENGTH)
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> str:
        text = super().to_python(value) or ""
        return phone_normalise(text) if text else text
