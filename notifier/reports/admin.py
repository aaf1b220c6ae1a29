"""The daily reports in the console, read-only: what was sent when, what failed and why.
Rows are written by the reports service alone (`services.py`)."""

from django.contrib import admin
from django.http import HttpRequest

from notifier.reports.models import Report


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    list_display = ("date", "status", "attempts", "sent_at", "reason")
    list_filter = ("status",)
    ordering = ("-date",)
    readonly_fields = [f.name for f in Report._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
