"""When the month's billed AI quota runs out at the current rate: a pure function of the calls per day.

Perfect Wiki bills AI queries against a monthly quota (402 when it is gone). The month is the calendar month in
UTC; the current rate is the month's calls so far divided by the days elapsed (today counted as a whole day,
so a busy first morning does not predict the end of the world). No forecast past the month's end: the quota
renews first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta


def month_start(day: date) -> date:
    return day.replace(day=1)


def month_end(day: date) -> date:
    """The month's last day."""
    first_next = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return first_next - timedelta(days=1)


@dataclass(frozen=True, slots=True)
class QuotaForecast:
    """``runs_out`` is the day the quota is expected to be used up this month (None: it lasts the month)."""

    used: int
    quota: int
    per_day: float
    runs_out: date | None

    @property
    def used_ratio(self) -> float:
        return self.used / self.quota if self.quota else 0.0

    def runs_out_text(self) -> str:
        return f"on {self.runs_out.isoformat()}" if self.runs_out is not None else "after this month (it lasts)"

    def to_json(self) -> dict[str, object]:
        return {
            "used": self.used,
            "quota": self.quota,
            "used_ratio": round(self.used_ratio, 4),
            "per_day": round(self.per_day, 2),
            "runs_out": self.runs_out.isoformat() if self.runs_out else None,
        }


def forecast(calls_per_day: dict[str, int], *, quota: int, today: date) -> QuotaForecast:
    """``calls_per_day`` maps ``YYYY-MM-DD`` to billed calls; days outside ``today``'s month are ignored."""
    first = month_start(today)
    used = sum(n for day, n in calls_per_day.items() if first.isoformat() <= day <= today.isoformat())
    elapsed = (today - first).days + 1
    per_day = used / elapsed
    if used >= quota:
        runs_out: date | None = today
    elif per_day <= 0:
        runs_out = None
    else:
        # Today's calls are already in `used`: the total reaches the quota that many days after today.
        day = today + timedelta(days=max(1, math.ceil((quota - used) / per_day)))
        runs_out = day if day <= month_end(today) else None
    return QuotaForecast(used=used, quota=quota, per_day=per_day, runs_out=runs_out)
