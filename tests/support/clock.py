"""The clock for tests whose rows are written at the database's now() and then counted in "this
hour", "today" or "this month" by a later statement: such a test takes the time from here, inside
the test, never at import."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Literal

Period = Literal["hour", "day", "month"]


def period_end(moment: datetime, period: Period) -> datetime:
    """The start of the UTC hour, day or month after the one holding moment."""
    moment = moment.astimezone(UTC)
    hour = moment.replace(minute=0, second=0, microsecond=0)
    if period == "hour":
        return hour + timedelta(hours=1)
    day = hour.replace(hour=0)
    if period == "day":
        return day + timedelta(days=1)
    first = day.replace(day=1)
    return first.replace(year=first.year + first.month // 12, month=first.month % 12 + 1)


def clear_of(period: Period, margin: timedelta = timedelta(seconds=30)) -> datetime:
    """The current UTC time, at least `margin` before the current hour, day or month ends: when
    the end is nearer, wait until it has passed, so that rows written now and the reads that
    follow fall in the same period."""
    now = datetime.now(UTC)
    end = period_end(now, period)
    if end - now < margin:
        time.sleep((end - now).total_seconds() + 0.01)
        now = datetime.now(UTC)
    return now
