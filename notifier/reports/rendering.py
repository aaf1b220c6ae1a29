"""The report as an e-mail: a subject with the headline numbers, a plain-text part and an
HTML part (inline styles only: mail clients drop style sheets), one table per section in
both, drawn from the same `Table`s."""

import math
import textwrap
from dataclasses import dataclass, field
from typing import Any

from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from notifier.reports.selectors import DailyReport, MailingLine, Outcomes

TEXT_EXCERPT = 24  # characters of a mailing's text in its row
ERROR_EXCERPT = 120
GAP = "  "  # between the columns of the text part
WRAP = 78  # the width of the text part's prose (a table is as wide as it needs)


@dataclass(frozen=True)
class Link:
    text: str
    url: str


Cell = str | Link


@dataclass(frozen=True)
class Table:
    title: str
    headers: list[str]
    rows: list[list[Cell]]
    numeric: frozenset[int] = frozenset()  # columns aligned right
    groups: list[tuple[str, int]] = field(default_factory=list)  # (label, columns) above
    note: str = ""  # under the title
    empty: str = ""  # instead of the table when it has no rows

    def text_lines(self) -> list[str]:
        """The table in fixed-width columns, group labels over their columns."""
        cells = [[_text(c) for c in row] for row in self.rows]
        widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(self.headers)]
        column = 0
        for label, span in self.groups:
            room = sum(widths[column : column + span]) + len(GAP) * (span - 1)
            widths[column + span - 1] += max(0, len(label) - room)  # a long label widens it
            column += span
        lines = []
        if self.groups:
            parts, column = [], 0
            for label, span in self.groups:
                room = sum(widths[column : column + span]) + len(GAP) * (span - 1)
                parts.append(label.ljust(room))
                column += span
            lines.append(GAP.join(parts).rstrip())
        for row in [self.headers, *cells]:
            lines.append(
                GAP.join(
                    value.rjust(widths[i]) if i in self.numeric else value.ljust(widths[i])
                    for i, value in enumerate(row)
                ).rstrip()
            )
            if row is self.headers:
                lines.append(GAP.join("-" * w for w in widths))
        return lines

    def text_block(self, extra: list[str] | None = None) -> str:
        """The section of the text part: its title underlined, its note, the table (or what
        stands for it when empty), and any `extra` lines after it."""
        lines = [self.title, "-" * len(self.title)]
        if self.note:
            lines.append(textwrap.fill(self.note, WRAP))
        lines.append("")
        lines += self.text_lines() if self.rows else [self.empty]
        if extra:
            lines += ["", *extra]
        return "\n".join(lines)

    def html(self) -> dict[str, Any]:
        """What the HTML template needs: the header cells with their inline styles, and the
        rows already as HTML, escaped here (a thousand mailings' rows cell by cell through
        the template language would be most of the report's time)."""
        header = [
            {"text": h, "style": STYLE["th"] + (STYLE["right"] if i in self.numeric else "")}
            for i, h in enumerate(self.headers)
        ]
        styles = [
            [
                STYLE["td"] + shade + (STYLE["right"] if i in self.numeric else "")
                for i in range(len(self.headers))
            ]
            for shade in ("", STYLE["shade"])
        ]
        rows = [
            # Safe: every cell is built by format_html, which escapes its arguments.
            mark_safe(  # noqa: S308
                "<tr>"
                + "".join(_html_cell(c, styles[n % 2][i]) for i, c in enumerate(row))
                + "</tr>"
            )
            for n, row in enumerate(self.rows)
        ]
        return {
            "title": self.title,
            "note": self.note,
            "empty": self.empty,
            "groups": self.groups,
            "header": header,
            "rows": rows,
        }


# Inline styles: the one form every common mail client keeps.
STYLE = {
    "body": "margin:0;padding:16px;background:#f3f4f6;",
    "page": "max-width:920px;margin:0 auto;background:#ffffff;border:1px solid #e5e7eb;"
    "padding:20px 24px;font-family:Arial,Helvetica,sans-serif;color:#111827;",
    "h1": "font-size:20px;margin:0 0 4px 0;",
    "h2": "font-size:16px;margin:24px 0 6px 0;",
    "p": "font-size:13px;margin:0 0 8px 0;color:#4b5563;",
    "table": "border-collapse:collapse;width:100%;font-size:13px;",
    "group": "text-align:center;padding:4px 8px;border-bottom:1px solid #9ca3af;"
    "font-weight:bold;color:#374151;",
    "blank": "padding:4px 8px;",
    "th": "text-align:left;padding:4px 8px;border-bottom:2px solid #374151;background:#f9fafb;"
    "white-space:nowrap;",
    "td": "text-align:left;padding:4px 8px;border-bottom:1px solid #e5e7eb;vertical-align:top;",
    "shade": "background:#f9fafb;",
    "right": "text-align:right;font-variant-numeric:tabular-nums;",
    "a": "color:#1d4ed8;",
}


@dataclass(frozen=True)
class RenderedReport:
    subject: str
    text: str
    html: str


def render(report: DailyReport, *, public_url: str) -> RenderedReport:
    """The e-mail of a day's report; `public_url` is where its readers reach the console."""
    tables = [
        summary_table(report),
        mailings_table(report, public_url=public_url),
        errors_table(report),
        api_table(report),
    ]
    # The text part cannot link a cell: the console's links follow the mailings' table.
    links = [
        f"#{line.id}  {_console_url(public_url, line.id)}"
        for line in report.mailings
        if line.state != "deleted"
    ]
    if links:
        links.insert(0, "In the console:")
    title = f"Daily report, {report.day.isoformat()}"
    headline = subject(report)
    context = {
        "report": report,
        "subject": headline,
        "title": title,
        "underline": "=" * len(title),
        "intro": intro(report),
        "intro_text": textwrap.fill(intro(report), WRAP),
        "sections": [t.text_block(links if t is tables[1] else None) for t in tables],
        "tables": [t.html() for t in tables],
        "style": STYLE,
    }
    return RenderedReport(
        subject=headline,
        text=render_to_string("reports/daily.txt", context),
        html=render_to_string("reports/daily.html", context),
    )


def subject(report: DailyReport) -> str:
    day = report.day_totals
    rate = f" ({percent(day.delivery_rate)} delivered)" if day.delivery_rate is not None else ""
    return (
        f"Notifier daily report {report.day.isoformat()}: {day.sent:,} sent,"
        f" {day.failed:,} failed, {day.expired:,} expired{rate}"
    )


def intro(report: DailyReport) -> str:
    hours = (report.until - report.since).total_seconds() / 3600
    return (
        f"{report.day:%A %d %B %Y} in {report.zone.key} ({hours:g} hours, from"
        f" {report.since:%Y-%m-%d %H:%M} to {report.until:%Y-%m-%d %H:%M} UTC):"
        f" {len(report.mailings):,} mailing(s) ran."
    )


def summary_table(report: DailyReport) -> Table:
    day, overall = report.day_totals, report.overall_totals
    rows: list[list[Cell]] = [
        [label, number(getattr(day, key)), number(getattr(overall, key))]
        for label, key in (
            ("Sent", "sent"),
            ("Failed", "failed"),
            ("Expired", "expired"),
            ("Cancelled", "cancelled"),
        )
    ]
    rows.append(["Still pending", "", number(overall.pending)])
    rows.append(["Delivery rate", percent(day.delivery_rate), percent(overall.delivery_rate)])
    return Table(
        "Totals",
        ["Messages", "That day", "At the end of the day"],
        rows,
        numeric=frozenset({1, 2}),
        note="Delivery rate: sent out of sent, failed and expired (cancelled ones were"
        " stopped by an operator).",
    )


def mailings_table(report: DailyReport, *, public_url: str) -> Table:
    return Table(
        "Mailings",
        ["Mailing", "Text", "State", *_OUTCOME_HEADERS[:4], *_OUTCOME_HEADERS],
        [_mailing_row(line, public_url) for line in report.mailings],
        numeric=frozenset(range(3, 12)),
        groups=[("", 3), ("That day", 4), ("At the end of the day", 5)],
        empty="No mailing ran that day.",
    )


_OUTCOME_HEADERS = ["Sent", "Failed", "Expired", "Cancelled", "Pending"]


def _mailing_row(line: MailingLine, public_url: str) -> list[Cell]:
    name: Cell = f"#{line.id}"
    if line.state != "deleted":
        name = Link(f"#{line.id}", _console_url(public_url, line.id))
    return [
        name,
        excerpt(line.text, TEXT_EXCERPT),
        line.state,
        *_outcomes(line.day)[:4],
        *_outcomes(line.overall),
    ]


def _outcomes(o: Outcomes) -> list[Cell]:
    return [
        number(o.sent),
        number(o.failed),
        number(o.expired),
        number(o.cancelled),
        number(o.pending),
    ]


def errors_table(report: DailyReport) -> Table:
    return Table(
        "Most frequent errors",
        ["Messages", "Status", "Error", "Mailings"],
        [
            [
                number(e.messages),
                e.status,
                excerpt(e.error, ERROR_EXCERPT) or "(none given)",
                number(e.mailings),
            ]
            for e in report.errors
        ],
        numeric=frozenset({0, 3}),
        note="Why messages ended failed or expired that day, most frequent first.",
        empty="No message failed or expired that day.",
    )


def api_table(report: DailyReport) -> Table:
    api = report.api
    rows: list[list[Cell]] = [
        ["Requests", number(api.total)],
        ["Delivered", number(api.attempts["delivered"])],
        ["Refused (the message: 4xx)", number(api.attempts["permanent"])],
        ["Failed (5xx, timeouts, resets: retried)", number(api.attempts["transient"])],
        ["Refused our credentials (401, 403)", number(api.attempts["unauthorized"])],
        ["Error rate", percent(api.error_rate)],
        ["Latency p50", latency(api.latency_p50)],
        ["Latency p95", latency(api.latency_p95)],
    ]
    return Table(
        "External API",
        ["Requests to the API", "That day"],
        rows,
        numeric=frozenset({1}),
        note="Error rate: failed requests and refused credentials out of all requests."
        " Latencies are the upper bounds of the histogram buckets holding them.",
    )


def number(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def percent(rate: float | None) -> str:
    if rate is None:
        return "-"
    # 99.96% is not 100.0%: never round up to a perfect score.
    shown = math.floor(rate * 1000) / 10
    return f"{shown:.1f}%"


def latency(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if math.isinf(seconds):
        return "> 30 s"
    return f"≤ {seconds * 1000:g} ms" if seconds < 1 else f"≤ {seconds:g} s"


def excerpt(text: str, length: int) -> str:
    text = " ".join(text.split())  # one line: no newline breaks a row of the text part
    return text if len(text) <= length else text[: length - 1] + "…"


def _html_cell(cell: Cell, style: str) -> str:
    if isinstance(cell, Link):
        return format_html(
            '<td style="{}"><a href="{}" style="{}">{}</a></td>',
            style,
            cell.url,
            STYLE["a"],
            cell.text,
        )
    return format_html('<td style="{}">{}</td>', style, cell)


def _text(cell: Cell) -> str:
    return cell.text if isinstance(cell, Link) else cell


def _console_url(public_url: str, mailing_id: int) -> str:
    return public_url + reverse("admin:mailings_mailing_change", args=[mailing_id])
