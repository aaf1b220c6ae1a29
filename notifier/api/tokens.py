"""The endpoint that issues API tokens."""

from django.contrib.auth import authenticate
from drf_spectacular.utils import (
    OpenApiExample,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.authtoken.models import Token
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from notifier.api.fields import StrictCharField, StrictSerializer
from notifier.core.errors import DomainError

WRONG_CREDENTIALS = "Wrong username or password."


@extend_schema_serializer(component_name="AuthToken")
class TokenRequestSerializer(StrictSerializer):
    """A Django user's name and password."""

    # Bounded like every input; Django's usernames are at most 150 characters.
    username = StrictCharField(max_length=150)
    password = StrictCharField(max_length=1024, trim_whitespace=False, write_only=True)


class ObtainTokenView(APIView):
    """Exchange a username and password for the API token to send as `Bearer <token>`."""

    authentication_classes = []
    permission_classes = []

    @extend_schema(
        tags=["auth"],
        summary="Get an API token",
        description=(
            "Exchange a Django user's name and password for the API token to send as "
            "`Authorization: Bearer <token>` on every other request. One token per user; "
            "it does not expire. A wrong name or password is a 400 `invalid_credentials`."
        ),
        request=TokenRequestSerializer,
        responses={200: inline_serializer("Token", {"token": serializers.CharField()})},
        examples=[
            OpenApiExample(
                "Credentials",
                value={"username": "operator", "password": "change-me"},
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        serializer = TokenRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = authenticate(request, **serializer.validated_data)
        if user is None:
            # Which of the two is wrong is not said: that would confirm which usernames exist.
            raise DomainError(WRONG_CREDENTIALS, code="invalid_credentials")
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})
