from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from notifier.clients.models import Client


@admin.register(Client)
class ClientAdmin(admin.ModelAdmin):
    list_display = ["id", "phone", "operator_code", "tag", "timezone", "created_at"]
    list_filter = ["operator_code", "timezone"]
    search_fields = ["phone", "tag"]
    search_help_text = "A phone prefix or a client id (digits), or an exact tag."
    readonly_fields = ["created_at", "updated_at"]
    list_per_page = 100
    # A directory of 100k+ rows: never count the whole table just to print "of N".
    show_full_result_count = False

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
