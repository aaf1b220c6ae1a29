from typing import Any

from django import forms
from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html_join

from notifier.core.errors import DomainError
from notifier.mailings.models import Mailing, Message
from notifier.mailings.selectors import mailing_status_q, message_counts_by_mailing
from notifier.mailings.services import mailing_check_change


class MailingStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(Mailing.Status.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Mailing]) -> QuerySet[Mailing]:
        if self.value() in Mailing.Status.values:
            return queryset.filter(mailing_status_q(str(self.value()), timezone.now()))
        return queryset


class MailingAdminForm(forms.ModelForm):
    class Meta:
        model = Mailing
        fields = ["start_at", "end_at", "text", "operator_codes", "tags"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.instance.pk is not None:
            changes = {key: data[key] for key in self.changed_data if key in data}
            try:
                mailing_check_change(mailing=self.instance, data=changes)
            except DomainError as exc:
                raise forms.ValidationError(exc.message) from exc
        return data


@admin.register(Mailing)
class MailingAdmin(admin.ModelAdmin):
    form = MailingAdminForm
    list_display = ["id", "start_at", "end_at", "status", "short_text", "created_at"]
    list_filter = [MailingStatusFilter, "start_at"]
    search_fields = ["=id", "text"]
    date_hierarchy = "start_at"
    readonly_fields = ["message_counts", "created_at", "fanned_out_at", "finished_at"]
    list_per_page = 100
    show_full_result_count = False

    @admin.display(description="text")
    def short_text(self, mailing: Mailing) -> str:
        return mailing.text if len(mailing.text) <= 60 else mailing.text[:59] + "…"

    @admin.display(description="messages by status")
    def message_counts(self, mailing: Mailing) -> str:
        if mailing.pk is None:
            return "-"
        counts = message_counts_by_mailing(mailing_ids=[mailing.pk])[mailing.pk]
        rows = [("total", counts["total"]), *counts["by_status"].items()]
        return format_html_join(", ", "{}: {}", rows)


class CappedCountPaginator(Paginator):
    """Counts at most CAP rows: a COUNT(*) over millions of messages takes seconds on every
    page view. Past the cap the list says "10,001" and pages on to there; narrow it down
    with the search or the filters."""

    CAP = 10_000

    @cached_property
    def count(self) -> int:
        return self.object_list[: self.CAP + 1].count()  # type: ignore[attr-defined]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    """Messages are the engine's record of what happened: read-only here."""

    paginator = CappedCountPaginator

    list_display = ["id", "mailing_id", "client_id", "phone", "status", "attempts", "sent_at"]
    list_filter = ["status"]
    search_fields = ["=id", "=phone", "=mailing__id"]
    search_help_text = "A message id, a full phone number or a mailing id."
    raw_id_fields = ["mailing", "client"]
    list_per_page = 100
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Message], search_term: str
    ) -> tuple[QuerySet[Message], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        if not term.isdigit() or len(term) > 18:
            return queryset.none(), False
        number = int(term)
        return queryset.filter(id=number) | queryset.filter(phone=term) | queryset.filter(
            mailing_id=number
        ), False
