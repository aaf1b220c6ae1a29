"""The operator console: Django's admin over clients, mailings and messages. Every change
goes through the same services as the API (same validation, same guarantees, same log
lines); messages are the engine's record and read-only."""

from typing import Any

from django import forms
from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html_join

from notifier.clients.models import Client, operator_code_validator
from notifier.clients.phones import PhoneFormField
from notifier.clients.services import client_create, client_update
from notifier.core.errors import DomainError
from notifier.mailings.models import Mailing, Message
from notifier.mailings.rules import mailing_check_change, mailing_check_new
from notifier.mailings.selectors import mailing_status_q, message_counts_by_mailing
from notifier.mailings.windows import SendWindow
from notifier.sending.services import (
    client_delete,
    mailing_create,
    mailing_delete,
    mailing_update,
)


class ClientAdminForm(forms.ModelForm):
    # As people write phones, normalised as the API does (the model field would refuse
    # anything longer than its 11 stored characters).
    phone = PhoneFormField(help_text="E.g. +7 916 123-45-67 or 89161234567.")

    class Meta:
        model = Client
        fields = ["phone", "operator_code", "tag", "timezone"]
        help_texts = {"operator_code": "Empty: digits 2-4 of the phone."}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["operator_code"].required = False


@admin.register(Client)
class ClientAdmin(admin.ModelAdmin):
    form = ClientAdminForm
    list_display = ["id", "phone", "operator_code", "tag", "timezone", "created_at"]
    list_filter = ["operator_code", "timezone"]
    search_fields = ["phone", "tag"]
    search_help_text = "A phone prefix or a client id (digits), or an exact tag."
    readonly_fields = ["created_at", "updated_at"]
    list_per_page = 100
    # A directory of 100k+ rows: never count the whole table just to print "of N".
    show_full_result_count = False

    def save_model(self, request: HttpRequest, obj: Client, form: Any, change: bool) -> None:
        data = {key: form.cleaned_data[key] for key in form.changed_data}
        if change:
            client_update(client=Client.objects.get(pk=obj.pk), data=data)
        else:
            obj.pk = client_create(**form.cleaned_data).pk
        obj.refresh_from_db()

    def delete_model(self, request: HttpRequest, obj: Client) -> None:
        client_delete(client=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Client]) -> None:
        for client in queryset:
            client_delete(client=client)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Client], search_term: str
    ) -> tuple[QuerySet[Client], bool]:
        # Index-friendly lookups only: a phone prefix (pattern index) or id, else an exact tag.
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.isdigit():
            by_id = queryset.filter(id=int(term)) if len(term) <= 18 else queryset.none()
            return queryset.filter(phone__startswith=term) | by_id, False
        return queryset.filter(tag=term), False


class MailingStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(Mailing.Status.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Mailing]) -> QuerySet[Mailing]:
        if self.value() in Mailing.Status.values:
            return queryset.filter(mailing_status_q(str(self.value()), timezone.now()))
        return queryset


class StringListField(forms.CharField):
    """A list of short values typed as one line, separated by commas or spaces."""

    def __init__(self, *, item_validators: list[Any] | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)
        self.item_validators = item_validators or []

    def prepare_value(self, value: Any) -> Any:
        return ", ".join(value) if isinstance(value, list) else value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        text = super().to_python(value) or ""
        return text.replace(",", " ").split()

    def validate(self, value: Any) -> None:
        super().validate(", ".join(value))
        for item in value:
            for validator in self.item_validators:
                validator(item)


class MailingAdminForm(forms.ModelForm):
    operator_codes = StringListField(
        item_validators=[operator_code_validator],
        help_text="3-digit codes, separated by commas; empty: any code.",
    )
    tags = StringListField(help_text="Tags, separated by commas; empty: any tag.")

    class Meta:
        model = Mailing
        fields = [
            "start_at",
            "end_at",
            "text",
            "operator_codes",
            "tags",
            "send_window_start",
            "send_window_end",
        ]
        labels = {
            "send_window_start": "Send window opens",
            "send_window_end": "Send window closes",
        }
        help_texts = {
            "send_window_start": "In each client's local time, HH:MM; both empty: any time.",
            "send_window_end": "Before the opening time: a window across midnight.",
        }

    def service_data(self) -> dict[str, Any]:
        """The form's values in the services' terms: the two times are one send window."""
        data = dict(self.cleaned_data)
        start, end = data.pop("send_window_start", None), data.pop("send_window_end", None)
        data["send_window"] = SendWindow(start, end) if start and end else None
        return data

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("send_window_start"), data.get("send_window_end")
        if (start is None) != (end is None):
            raise forms.ValidationError("Give both times of the send window, or neither.")
        if start is not None and start == end:
            raise forms.ValidationError("The send window's opening and closing times differ.")
        try:
            if self.instance.pk is None:
                if "start_at" in data and "end_at" in data:
                    mailing_check_new(start_at=data["start_at"], end_at=data["end_at"])
            else:
                changes = {key: data[key] for key in self.changed_data if key in data}
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

    def save_model(self, request: HttpRequest, obj: Mailing, form: Any, change: bool) -> None:
        data = form.service_data()
        if change:
            changed = set(form.changed_data)
            if changed & {"send_window_start", "send_window_end"}:
                changed.add("send_window")
            mailing_update(mailing=obj, data={key: data[key] for key in changed if key in data})
        else:
            obj.pk = mailing_create(**data).pk
        obj.refresh_from_db()

    def delete_model(self, request: HttpRequest, obj: Mailing) -> None:
        mailing_delete(mailing=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Mailing]) -> None:
        for mailing in queryset:
            mailing_delete(mailing=mailing)

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
