"""Budget periods: calendar-aligned in UTC, named so counters and the ledger agree.

A period is ``none`` (lifetime), ``day``, ``week`` (starting Monday) or ``month``.
Spend counters keep one field per period, named after the period it covers
(``d:20250603``, ``w:20250602``, ``m:202506``, ``a``), so a new period starts
from zero by itself and fields of the same kind sort by age. The ledger stores
spend per UTC day (days since the Unix epoch); a period's spend is the sum of
its days.
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, timedelta

PERIODS = ("none", "day", "week", "month")
LIFETIME_FIELD = "a"
_EPOCH = date(1970, 1, 1)


def day_number(at: float) -> int:
    """UTC days since 1970-01-01."""
    return int(at // 86400)


def _day(at: float) -> date:
    return datetime.fromtimestamp(at, UTC).date()


def period_start(period: str, at: float) -> date | None:
    """First UTC day of the period holding ``at`` (None for lifetime)."""
    today = _day(at)
    if period == "day":
        return today
    if period == "week":
        return today - timedelta(days=today.weekday())
    if period == "month":
        return today.replace(day=1)
    if period == "none":
        return None
    raise ValueError(f"unknown period {period!r}")


def period_end(period: str, at: float) -> float | None:
    """Unix time when the period holding ``at`` ends (None for lifetime)."""
    start = period_start(period, at)
    if start is None:
        return None
    if period == "day":
        end = start + timedelta(days=1)
    elif period == "week":
        end = start + timedelta(days=7)
    else:
        end = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    return datetime(end.year, end.month, end.day, tzinfo=UTC).timestamp()


def field_name(period: str, at: float) -> str:
    """The counter field of the period holding ``at`` (memoised per UTC day: it runs per request)."""
    return _field_on_day(period, day_number(at))


@functools.lru_cache(maxsize=64)
def _field_on_day(period: str, day: int) -> str:
    start = period_start(period, day * 86400.0)
    if start is None:
        return LIFETIME_FIELD
    if period == "month":
        return f"m:{start:%Y%m}"
    return f"{period[0]}:{start:%Y%m%d}"


def all_fields(at: float) -> tuple[str, ...]:
    """Every period's field at ``at``: each charge lands in all four, so any budget added later
    finds its counter already holding the spend."""
    day = day_number(at)
    return tuple(_field_on_day(p, day) for p in PERIODS)


def first_day(period: str, at: float) -> int | None:
    """The ledger day number the period starts on (None: lifetime)."""
    start = period_start(period, at)
    return None if start is None else (start - _EPOCH).days
