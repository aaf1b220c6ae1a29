"""The e-mail: the subject's headline numbers, one table per section in both parts, the
HTML part styled inline and escaped."""

import re
from datetime import date, timedelta
from html.parser import HTMLParser

import pytest

from notifier.reports.rendering import latency, percent, render
from notifier.reports.selectors import daily_report
from notifier.reports.tests.support import ZONE, prepare_day

pytestmark = pytest.mark.django_db
DAY = date(2026, 6, 10)


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


@pytest.fixture
def email():
    prepare_day(DAY)
    return render(daily_report(day=DAY, zone=ZONE), public_url="https://n.example.com")


def test_both_parts_have_one_table_per_section(email):
    titles = ["Totals", "Mailings", "Most frequent errors", "External API"]
    for title in titles:
        assert f"\n{title}\n{'-' * len(title)}\n" in email.text
    tags = Tags()
    tags.feed(email.html)
    assert [t for t, _ in tags.tags].count("table") == len(titles)
    assert re.findall(r"<h2[^>]*>([^<]+)</h2>", email.html) == titles


def test_the_html_part_has_inline_styles_only_and_escapes_the_texts(email):
    tags = Tags()
    tags.feed(email.html)
    assert not [t for t, _ in tags.tags if t in ("style", "link", "script")]
    for tag, attrs in tags.tags:
        if tag in ("table", "td", "th", "h1", "h2", "p"):
            assert attrs.get("style"), tag
    assert "Evening &lt;b&gt;news&lt;/b&gt;" in email.html
    assert '<a href="https://n.example.com/admin/mailings/mailing/' in email.html


def test_the_text_part_lines_up_its_columns(email):
    lines = email.text.splitlines()
    header = next(line for line in lines if line.startswith("Mailing  "))
    rule = lines[lines.index(header) + 1]
    rows = lines[lines.index(header) + 2 : lines.index(header) + 4]
    ends = [m.end() for m in re.finditer(r"-+", rule)]
    for row in rows:  # numbers end where their column's rule ends
        assert row[ends[-1] - 1] != " "
        assert len(row) == ends[-1]


def test_an_empty_day_says_so_and_the_subject_has_no_rate():
    email = render(daily_report(day=DAY + timedelta(days=30), zone=ZONE), public_url="")
    assert email.subject.endswith(": 0 sent, 0 failed, 0 expired")
    assert "No mailing ran that day." in email.text
    assert "No message failed or expired that day." in email.html


def test_figures_are_never_rounded_up_to_a_perfect_score():
    assert percent(0.99996) == "99.9%"
    assert percent(1.0) == "100.0%"
    assert percent(None) == "-"
    assert (latency(0.05), latency(2.5), latency(float("inf"))) == ("≤ 50 ms", "≤ 2.5 s", "> 30 s")
