from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularSwaggerView

urlpatterns = [
    path("api/", include("notifier.api.urls")),
    path("", include("notifier.ops.urls")),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("admin/", admin.site.urls),
]

handler404 = "notifier.core.errors.not_found"
handler500 = "notifier.core.errors.server_error"
