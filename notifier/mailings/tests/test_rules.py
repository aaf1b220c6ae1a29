"""What may change in a mailing, in each of its states: the rules every write path obeys."""

from datetime import timedelta

import pytest
from django.utils import timezone

from notifier.core.errors import DomainError
from notifier.mailings.rules import mailing_check_change
from notifier.mailings.tests.factories import MailingFactory

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)


def scheduled():
    return MailingFactory()


def running():
    now = timezone.now()
    return MailingFactory(start_at=now - HOUR, end_at=now + HOUR, fanned_out_at=now - HOUR)


def finished():
    now = timezone.now()
    return MailingFactory(start_at=now - 2 * HOUR, end_at=now - HOUR, finished_at=now - HOUR)


def cancelled():
    now = timezone.now()
    return MailingFactory(start_at=now - HOUR, end_at=now + HOUR, cancelled_at=now)


def later_end(mailing):
    return mailing.end_at + HOUR


CHANGES = {
    "text": lambda m: "Something else",
    "start_at": lambda m: m.start_at + timedelta(minutes=1),
    "operator_codes": lambda m: ["999"],
    "tags": lambda m: ["new"],
    "end_at": later_end,
}


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_before_the_start_everything_may_change(field):
    mailing = scheduled()

    assert mailing_check_change(mailing=mailing, data={field: CHANGES[field](mailing)}) == {field}


@pytest.mark.parametrize("make", [running, finished])
@pytest.mark.parametrize(
    ("field", "named"),
    [
        ("text", "text"),
        ("start_at", "start_at"),
        ("operator_codes", "filter.operator_codes"),
        ("tags", "filter.tags"),
    ],
)
def test_once_started_only_the_end_may_change(make, field, named):
    mailing = make()

    with pytest.raises(DomainError) as raised:
        mailing_check_change(mailing=mailing, data={field: CHANGES[field](mailing)})

    assert raised.value.fields == (named,)
    assert mailing_check_change(mailing=mailing, data={"end_at": later_end(mailing)}) == {"end_at"}


def test_a_started_mailing_may_be_given_its_own_values():
    mailing = running()
    same = {key: getattr(mailing, key) for key in ("text", "start_at", "tags", "end_at")}

    assert mailing_check_change(mailing=mailing, data=same) == set()


def test_a_mailing_whose_start_has_passed_is_started_before_its_fan_out():
    """Between the start and the tick that creates its messages, nothing may move either."""
    now = timezone.now()
    mailing = MailingFactory(start_at=now - timedelta(seconds=1), end_at=now + HOUR)

    with pytest.raises(DomainError):
        mailing_check_change(mailing=mailing, data={"text": "late change"})


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_a_cancelled_mailing_changes_nothing(field):
    mailing = cancelled()

    with pytest.raises(DomainError) as raised:
        mailing_check_change(mailing=mailing, data={field: CHANGES[field](mailing)})

    assert "cancelled" in raised.value.message
