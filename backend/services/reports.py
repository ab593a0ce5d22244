"""What admins read: usage by user, model and day; the audit log searched and paged; both as CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import String, case, cast, or_
from sqlmodel import Session, col, func, select

from backend.errors import Invalid
from backend.models.admin import UsageDay, UsageRow
from backend.models.audit import AuditEvent, AuditEventPublic
from backend.models.provider import UsageRecord
from backend.models.user import User
from backend.services import audit
from backend.services.users import require_admin

UsageBy = Literal["user", "model"]
MAX_ROWS = 100_000  # a page of the API is at most 500; a CSV export takes up to this many


def _usage_filter(query: Any, since: datetime | None, until: datetime | None) -> Any:
    if since is not None:
        query = query.where(col(UsageRecord.time) >= since)
    if until is not None:
        query = query.where(col(UsageRecord.time) < until)
    return query


def _measures() -> list[Any]:
    return [
        func.count().label("requests"),
        func.coalesce(func.sum(UsageRecord.input_tokens), 0).label("input_tokens"),
        func.coalesce(func.sum(UsageRecord.output_tokens), 0).label("output_tokens"),
        func.coalesce(func.sum(case((col(UsageRecord.status) == "error", 1), else_=0)), 0).label("errors"),
        func.avg(UsageRecord.total_ms).label("avg_latency_ms"),
    ]


def _group(by: UsageBy) -> Any:
    if by not in ("user", "model"):
        raise Invalid("'by' must be user or model")
    return col(UsageRecord.user_id) if by == "user" else col(UsageRecord.model)


def _key_names(session: Session, by: UsageBy, values: list[Any]) -> Callable[[Any], str]:
    """How a grouped value reads: a model id as it is, a user id as the username (or deleted)."""
    if by == "model":
        return str
    ids = [v for v in values if v is not None]
    names: dict[int, str] = {}
    if ids:
        names = dict(session.exec(select(User.id, User.username).where(col(User.id).in_(ids))).all())  # type: ignore[arg-type]

    def name(value: Any) -> str:
        return "-" if value is None else names.get(value, f"#{value} (deleted)")

    return name


def usage(session: Session, *, by: UsageBy, since: datetime | None = None, until: datetime | None = None
          ) -> list[UsageRow]:
    """Requests, tokens, errors and average latency (whole call, ms) per user or per model, busiest first."""
    group = _group(by)
    rows = session.exec(_usage_filter(select(group, *_measures()), since, until).group_by(group)).all()
    key = _key_names(session, by, [r[0] for r in rows])
    result = [UsageRow(key=key(r[0]), requests=r[1], input_tokens=int(r[2]), output_tokens=int(r[3]), errors=int(r[4]),
                       avg_latency_ms=None if r[5] is None else round(float(r[5]), 1)) for r in rows]
    return sorted(result, key=lambda r: (-r.requests, r.key))


class UsageDayRow(UsageDay):
    """A day's measures: of everyone (`key` None), or of one user or model, or of the rest (`OTHERS`)."""

    key: str | None = None
    avg_latency_ms: float | None = None


OTHERS = "(others)"  # neither a username (no parentheses) nor a model id (no slash)
DAILY_KEYS = 8


@dataclass
class _Day:
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    errors: int = 0
    latency_sum: float = 0.0  # of the calls that have one, so that keys folded into OTHERS average right
    latency_count: int = 0

    def add(self, row: Any) -> None:
        self.requests += row[0]
        self.input_tokens += int(row[1])
        self.output_tokens += int(row[2])
        self.errors += int(row[3])
        self.latency_sum += float(row[4] or 0)
        self.latency_count += int(row[5])

    def row(self, day: str, key: str | None) -> UsageDayRow:
        average = round(self.latency_sum / self.latency_count, 1) if self.latency_count else None
        return UsageDayRow(day=day, key=key, requests=self.requests, input_tokens=self.input_tokens,
                           output_tokens=self.output_tokens, errors=self.errors, avg_latency_ms=average)


def usage_by_day(session: Session, *, by: UsageBy | None = None, top: int = DAILY_KEYS, since: datetime | None = None,
                 until: datetime | None = None) -> list[UsageDayRow]:
    """The same measures per UTC day, oldest first (the chart). Without `by`, everyone's; with it, a row a day for
    each of the `top` users (or models) with the most requests over the period, busiest first, then the rest's
    summed as `OTHERS`."""
    if not 1 <= top <= 100:
        raise Invalid("'top' must be 1 to {most}", most=100)
    day = func.date(UsageRecord.time)
    groups = [day] if by is None else [day, _group(by)]
    measures = [*_measures()[:4], func.sum(UsageRecord.total_ms), func.count(col(UsageRecord.total_ms))]
    rows = session.exec(_usage_filter(select(*groups, *measures), since, until).group_by(*groups)).all()
    width = len(groups)
    if by is None:
        totals: dict[str, _Day] = {}
        for r in rows:
            totals.setdefault(str(r[0]), _Day()).add(r[width:])
        return [totals[d].row(d, None) for d in sorted(totals)]
    name = _key_names(session, by, [r[1] for r in rows])
    requests: dict[str, int] = {}
    for r in rows:
        requests[name(r[1])] = requests.get(name(r[1]), 0) + r[2]
    shown = sorted(requests, key=lambda k: (-requests[k], k))[:top]
    order = {key: i for i, key in enumerate([*shown, OTHERS])}
    days: dict[tuple[str, str], _Day] = {}
    for r in rows:
        key = name(r[1])
        days.setdefault((str(r[0]), key if key in order else OTHERS), _Day()).add(r[width:])
    return [days[d, k].row(d, k) for d, k in sorted(days, key=lambda dk: (order[dk[1]], dk[0]))]


def usage_csv(rows: list[UsageRow], *, by: UsageBy) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([by, "requests", "input_tokens", "output_tokens", "errors", "avg_latency_ms"])
    for r in rows:
        writer.writerow([r.key, r.requests, r.input_tokens, r.output_tokens, r.errors,
                         "" if r.avg_latency_ms is None else r.avg_latency_ms])
    return out.getvalue()


def audit_events(
    session: Session, *, user: str | None = None, action: str | None = None, since: datetime | None = None,
    until: datetime | None = None, q: str | None = None, limit: int = 50, offset: int = 0,
) -> tuple[int, list[AuditEventPublic]]:
    """Newest first. `action` matches a prefix (`auth.` is every sign-in event); `q` any part of the user, action,
    target, address or detail. Returns (how many match, this page)."""
    if not 1 <= limit <= MAX_ROWS or offset < 0:
        raise Invalid("'limit' must be 1 to {most} and 'offset' not negative", most=MAX_ROWS)
    conditions: list[Any] = []
    if user:
        conditions.append(col(AuditEvent.username) == user.strip())
    if action:
        conditions.append(col(AuditEvent.action).startswith(action.strip()))
    if since is not None:
        conditions.append(col(AuditEvent.time) >= since)
    if until is not None:
        conditions.append(col(AuditEvent.time) < until)
    if q and q.strip():
        text = q.strip()
        conditions.append(or_(col(AuditEvent.username).icontains(text), col(AuditEvent.action).icontains(text),
                              col(AuditEvent.target).icontains(text), col(AuditEvent.ip).icontains(text),
                              cast(AuditEvent.detail, String).icontains(text)))
    total = session.exec(select(func.count()).select_from(AuditEvent).where(*conditions)).one()
    events = session.exec(select(AuditEvent).where(*conditions)
                          .order_by(col(AuditEvent.time).desc(), col(AuditEvent.id).desc())
                          .offset(offset).limit(limit)).all()
    return total, [AuditEventPublic(time=e.time, user=e.username, action=e.action, target=e.target, ip=e.ip,
                                    detail=e.detail) for e in events]


def audit_actions(session: Session) -> list[str]:
    """Every action name recorded so far (the filter's choices)."""
    return list(session.exec(select(AuditEvent.action).distinct().order_by(AuditEvent.action)).all())


def audit_csv(events: list[AuditEventPublic]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["time", "user", "action", "target", "ip", "detail"])
    for e in events:
        writer.writerow([e.time.isoformat(), e.user or "", e.action, e.target or "", e.ip or "",
                         json.dumps(e.detail, ensure_ascii=False, sort_keys=True) if e.detail else ""])
    return out.getvalue()


def export_usage(session: Session, *, actor: User, by: UsageBy, since: datetime | None = None,
                 until: datetime | None = None, ip: str | None = None) -> str:
    """The usage table as CSV; the export is audited."""
    actor = require_admin(session, actor)
    text = usage_csv(usage(session, by=by, since=since, until=until), by=by)
    audit.record(session, action="usage.export", user=actor, target=f"usage by {by}", ip=ip,
                 detail={"since": since.isoformat() if since else None})
    session.commit()
    return text


def export_audit(session: Session, *, actor: User, ip: str | None = None, **filters: Any) -> str:
    """Every event matching `filters` (up to `MAX_ROWS`) as CSV; the export is audited too."""
    actor = require_admin(session, actor)
    _, events = audit_events(session, **filters, limit=MAX_ROWS)
    audit.record(session, action="audit.export", user=actor, target="audit", ip=ip,
                 detail={k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in filters.items() if v})
    session.commit()
    return audit_csv(events)
