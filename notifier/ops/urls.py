from django.urls import path

from notifier.ops import views

urlpatterns = [
    path("metrics", views.metrics_view, name="metrics"),
    path("health/live", views.health_live, name="health-live"),
    path("health/ready", views.health_ready, name="health-ready"),
]
