"""How API requests authenticate: a bearer token. (Loaded by DRF's settings, which its views
import: this module imports no view.)"""

import re

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import TokenAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

# A scheme is echoed back only if it looks like one: the header is the caller's input.
_SCHEME = re.compile(rb"[A-Za-z][A-Za-z0-9._~+/-]{0,19}")


class BearerTokenAuthentication(TokenAuthentication):
    """DRF's database-backed token, presented as `Authorization: Bearer <token>`."""

    keyword = "Bearer"

    def authenticate(self, request):
        # DRF treats another scheme as no credentials at all ("not provided"), which sends a
        # caller with `Token <key>` or `Basic ...` looking for a missing header.
        parts = get_authorization_header(request).split()
        if parts and parts[0].lower() != self.keyword.lower().encode():
            given = parts[0].decode() if _SCHEME.fullmatch(parts[0]) else "another scheme"
            raise AuthenticationFailed(
                f"Wrong authentication scheme ({given}): send Authorization: Bearer <token>.",
                code="wrong_scheme",
            )
        return super().authenticate(request)


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = BearerTokenAuthentication
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer"}
