from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularSwaggerView

from notifier.core.errors import CATCH_ALL_ROUTE, unknown_path

urlpatterns = [
    path("api/", include("notifier.api.urls")),
    path("", include("notifier.ops.urls")),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("admin/", admin.site.urls),
    # Anything else is a JSON 404 (or, like APPEND_SLASH, a redirect to its slash form).
    re_path(r"", unknown_path, name=CATCH_ALL_ROUTE),
]

# Every error in the one JSON shape, except on the admin's own pages.
handler400 = "notifier.core.errors.bad_request"
handler403 = "notifier.core.errors.permission_denied"
handler404 = "notifier.core.errors.not_found"
handler500 = "notifier.core.errors.server_error"
