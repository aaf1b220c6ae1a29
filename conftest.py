import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient


@pytest.fixture
def user(db):
    return get_user_model().objects.create_user(username="operator", password="s3cret-Pass!")


@pytest.fixture
def api(user) -> APIClient:
    """An API client authenticated as an operator with a Bearer token."""
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token.key}")
    return client


@pytest.fixture
def anon() -> APIClient:
    return APIClient()
