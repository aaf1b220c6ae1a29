"""The REST API's routes, under /api/."""

from django.http import HttpRequest, HttpResponse
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import SimpleRouter

from notifier.api.clients import ClientViewSet
from notifier.api.lookups import ID_PATTERN
from notifier.api.mailings import MailingViewSet
from notifier.api.messages import ClientMessageListView, MailingMessageListView
from notifier.api.tokens import ObtainTokenView
from notifier.core.errors import CATCH_ALL_ROUTE, not_found

router = SimpleRouter(trailing_slash=True)
router.register("clients", ClientViewSet, basename="client")
router.register("mailings", MailingViewSet, basename="mailing")


@csrf_exempt  # any method: a POST to no route is a 404 too, not a CSRF failure
def api_not_found(request: HttpRequest) -> HttpResponse:
    return not_found(request, Exception("no such API route"))


urlpatterns = [
    path("auth/token/", ObtainTokenView.as_view(), name="auth-token"),
    re_path(
        rf"^mailings/(?P<mailing_id>{ID_PATTERN})/messages/$",
        MailingMessageListView.as_view(),
        name="mailing-messages",
    ),
    re_path(
        rf"^clients/(?P<client_id>{ID_PATTERN})/messages/$",
        ClientMessageListView.as_view(),
        name="client-messages",
    ),
    path("", include(router.urls)),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # Anything else under /api/ is a JSON 404, in debug mode too.
    re_path(r"", api_not_found, name=CATCH_ALL_ROUTE),
]
