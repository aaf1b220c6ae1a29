from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularSwaggerView

urlpatterns = [
    path("api/", include("notifier.api.urls")),
    path("", include("notifier.ops.urls")),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("admin/", admin.site.urls),
]

# Every error in the one JSON shape, except on the admin's own pages.
handler400 = "notifier.core.errors.bad_request"
handler403 = "notifier.core.errors.permission_denied"
handler404 = "notifier.core.errors.not_found"
handler500 = "notifier.core.errors.server_error"
