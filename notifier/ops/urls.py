from django.urls import re_path

from notifier.ops import views

# Probes and scrapers are configured by hand: `/health/ready/` answers exactly like
# `/health/ready` rather than redirecting, since not every prober follows redirects.
urlpatterns = [
    re_path(r"^metrics/?$", views.metrics_view, name="metrics"),
    re_path(r"^health/live/?$", views.health_live, name="health-live"),
    re_path(r"^health/ready/?$", views.health_ready, name="health-ready"),
]
