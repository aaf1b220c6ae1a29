from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from notifier.clients.api import ClientViewSet
from notifier.core.api import ID_PATTERN
from notifier.core.views import ObtainTokenView, api_not_found
from notifier.mailings.api import MailingMessageListView, MailingViewSet

router = SimpleRouter(trailing_slash=True)
router.register("clients", ClientViewSet, basename="client")
router.register("mailings", MailingViewSet, basename="mailing")

urlpatterns = [
    path("api/auth/token/", ObtainTokenView.as_view(), name="auth-token"),
    re_path(
        rf"^api/mailings/(?P<mailing_id>{ID_PATTERN})/messages/$",
        MailingMessageListView.as_view(),
        name="mailing-messages",
    ),
    path("api/", include(router.urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("", include("notifier.ops.urls")),
    # Anything else under /api/ is a JSON 404, in debug mode too.
    re_path(r"^api/", api_not_found),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("admin/", admin.site.urls),
]

handler404 = "notifier.core.errors.not_found"
handler500 = "notifier.core.errors.server_error"
