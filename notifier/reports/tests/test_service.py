"""The reports service end to end, with real processes: beat and the reports process
through bin/beat and bin/reports (a worker through bin/worker where mailings are sent too),
Redis (PostgreSQL runs) or the file broker (SQLite runs), the test database, and a real SMTP
server on loopback as the witness of what was sent. Each test moves REPORT_SEND_AT to a few
seconds from now, so that a day's report falls due while it watches."""

import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from notifier.clients.tests.factories import ClientFactory
from notifier.mailings.models import Message
from notifier.reports.models import Report, ReportClock
from notifier.reports.tests.conftest import SMTP_PASSWORD, SMTP_USER
from notifier.reports.tests.support import ZONE, prepare_day
from notifier.sending.services import mailing_create
from notifier.testing.smtp import SmtpServer
from notifier.testing.stack import Stack, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
RECIPIENTS = ["ops@example.com", "lead@example.com"]


@pytest.fixture
def mail() -> Iterator[SmtpServer]:
    server = SmtpServer(user=SMTP_USER, password=SMTP_PASSWORD).start()
    yield server
    server.stop()


def due_in(stack: Stack, seconds: float, zone: ZoneInfo = ZONE) -> tuple[date, datetime]:
    """Make a report fall due `seconds` from now (to the second): returns its day and moment."""
    moment = (timezone.now() + timedelta(seconds=seconds)).replace(microsecond=0)
    local = moment.astimezone(zone)
    stack.configure(REPORT_TIMEZONE=zone.key, REPORT_SEND_AT=f"{local:%H:%M:%S}")
    return local.date() - timedelta(days=1), moment


def ran_before() -> None:
    """As if the service had first checked a minute ago: a report due a second from now is
    then not one from before its time, as the slower first start of a process would make
    it (the day before's, due a day earlier, still is)."""
    ReportClock.objects.create(id=1, first_check_at=timezone.now() - timedelta(minutes=1))


def configure(stack: Stack, mail: SmtpServer) -> None:
    stack.configure(
        EMAIL_URL=mail.url,
        EMAIL_TIMEOUT="10",
        EMAIL_FROM="notifier@example.com",
        REPORT_RECIPIENTS=",".join(RECIPIENTS),
        PUBLIC_URL="https://notifier.example.com",
        REPORT_CHECK_SECONDS="0.5",
        REPORT_RETRY_SECONDS="1",
        LOG_FORMAT="json",
    )


def test_at_the_send_time_the_days_report_arrives_once_with_both_parts(stack, mail):
    """Two mailings, outcomes on both sides of each end of the day in Asia/Kolkata: the
    report holds exactly the day's numbers, in a text and an HTML part."""
    configure(stack, mail)
    day, moment = due_in(stack, 6)
    prepared = prepare_day(day)
    stack.start("reports")
    stack.start("beat")

    wait_for(lambda: timezone.now() >= moment, timeout=30, what="the send time")
    assert mail.messages() == []  # nothing before it
    (received,) = wait_for(mail.messages, timeout=20, what="the report")
    time.sleep(3)  # checks go on twice a second: nothing more may come

    assert len(mail.messages()) == 1
    assert received.at >= moment.timestamp()
    assert received.recipients == RECIPIENTS
    assert received.sender == "notifier@example.com"
    message = received.message
    assert message.get_content_type() == "multipart/alternative"
    assert message["Subject"] == (
        f"Notifier daily report {day.isoformat()}: 250 sent, 5 failed, 8 expired (95.0% delivered)"
    )
    text, html = received.part("text/plain"), received.part("text/html")
    for part in (text, html):
        assert "Asia/Kolkata" in part
        assert "947" in part  # B's pending at the end of the day
        assert f"https://notifier.example.com/admin/mailings/mailing/{prepared.a}/change/" in part
        assert "HTTP 400: invalid phone number" in part
    assert "Evening &lt;b&gt;news&lt;/b&gt; &amp; m" in html  # the text, escaped
    (row,) = [
        line
        for line in text.splitlines()
        if line.startswith(f"#{prepared.a} ") and "finished" in line
    ]
    assert row.split()[-9:] == ["200", "3", "7", "0", "300", "8", "7", "0", "0"]
    report = Report.objects.get()
    assert (report.date, report.status, report.attempts) == (day, "sent", 1)


def test_two_beats_and_two_reports_processes_send_one_email(stack, mail):
    configure(stack, mail)
    ran_before()
    day, moment = due_in(stack, 3)
    for n in (1, 2):
        stack.start("reports", label=f"reports-{n}")
    stack.start("beat", label="beat-1")
    # A second beat by mistake: another host, with a schedule file of its own.
    stack.start("beat", label="beat-2", env={"BEAT_SCHEDULE_FILE": str(stack.workdir / "beat-2")})

    wait_for(lambda: timezone.now() >= moment, timeout=30, what="the send time")
    wait_for(mail.messages, timeout=20, what="the report")
    time.sleep(4)  # both beats and both processes keep checking

    assert [m.message["Subject"].split(":")[0] for m in mail.messages()] == [
        f"Notifier daily report {day.isoformat()}"
    ]
    assert list(Report.objects.values_list("date", "status", "attempts")) == [(day, "sent", 1)]
    logs = stack.log_text("reports-1") + stack.log_text("reports-2")
    assert logs.count('"daily report due"') == 1  # claimed once
    assert logs.count('"daily report sent"') == 1


def test_a_report_due_while_the_service_was_down_arrives_when_it_comes_back(stack, mail):
    configure(stack, mail)
    day, moment = due_in(stack, 8)
    stack.start("reports")
    stack.start("beat")
    wait_for(ReportClock.objects.exists, timeout=20, what="the service's first check")
    stack.kill("reports")
    stack.kill("beat")

    wait_for(lambda: timezone.now() >= moment + timedelta(seconds=2), timeout=30, what="due")
    assert (mail.messages(), Report.objects.count()) == ([], 0)
    stack.start("reports")
    stack.start("beat")
    (received,) = wait_for(mail.messages, timeout=30, what="the report after the downtime")

    assert day.isoformat() in received.message["Subject"]
    assert list(Report.objects.values_list("date", "status")) == [(day, "sent")]


def test_smtp_refusing_twice_the_third_attempt_delivers_and_the_log_hides_the_password(stack, mail):
    configure(stack, mail)
    mail.refuse_next(2)
    ran_before()
    due_in(stack, 1)
    stack.start("reports")
    stack.start("beat")

    wait_for(mail.messages, timeout=30, what="the third attempt")
    time.sleep(2)

    assert (mail.refused, len(mail.messages())) == (2, 1)
    report = Report.objects.get()
    assert (report.status, report.attempts, report.reason) == ("sent", 3, "")
    log = stack.log_text()
    retries = [line for line in log.splitlines() if "daily report not delivered: retrying" in line]
    assert len(retries) == 2
    assert all("SMTPDataError" in line and "451" in line for line in retries)
    assert '"attempt": 1' in retries[0]
    assert '"attempt": 2' in retries[1]
    assert '"daily report sent"' in log
    assert SMTP_USER in mail.logins
    assert SMTP_PASSWORD not in log


def test_a_slow_mail_server_holds_up_no_mailing(stack, mail, probe):
    """The report waits on a mail server that takes 8 s to answer, in its own process; a
    mailing created meanwhile is sent by the worker at once."""
    configure(stack, mail)
    mail.delay = 8
    ClientFactory.create_batch(20)
    ran_before()
    due_in(stack, 1)
    stack.start("worker")
    stack.start("reports")
    stack.start("beat")
    wait_for(
        lambda: Report.objects.filter(attempts=1).exists(), timeout=20, what="a delivery under way"
    )

    now = timezone.now()
    mailing = mailing_create(start_at=now, end_at=now + timedelta(minutes=5), text="Meanwhile")
    wait_for(
        lambda: Message.objects.filter(mailing=mailing, status="sent").count() == 20,
        timeout=6,
        what="the mailing, sent while the report waits",
    )

    assert mail.messages() == []
    wait_for(mail.messages, timeout=30, what="the report, once the server answers")
    assert Report.objects.get().attempts == 1
