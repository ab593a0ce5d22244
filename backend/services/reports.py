"""What admins read: usage by user, model and day; the audit log searched and paged; both as CSV."""

from __future__ import annotations

import csv
import io
import json
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


def usage(session: Session, *, by: UsageBy, since: datetime | None = None, until: datetime | None = None
          ) -> list[UsageRow]:
    """Requests, tokens, errors and average latency (whole call, ms) per user or per model, busiest first."""
    if by not in ("user", "model"):
        raise Invalid("'by' must be user or model")
    group = col(UsageRecord.user_id) if by == "user" else col(UsageRecord.model)
    rows = session.exec(_usage_filter(select(group, *_measures()), since, until).group_by(group)).all()
    names: dict[int, str] = {}
    if by == "user":
        ids = [r[0] for r in rows if r[0] is not None]
        if ids:
            names = dict(session.exec(select(User.id, User.username).where(col(User.id).in_(ids))).all())  # type: ignore[arg-type]

    def key(value: Any) -> str:
        if by == "model":
            return str(value)
        if value is None:
            return "-"
        return names.get(value, f"#{value} (deleted)")

    result = [UsageRow(key=key(r[0]), requests=r[1], input_tokens=int(r[2]), output_tokens=int(r[3]), errors=int(r[4]),
                       avg_latency_ms=None if r[5] is None else round(float(r[5]), 1)) for r in rows]
    return sorted(result, key=lambda r: (-r.requests, r.key))


def usage_by_day(session: Session, *, since: datetime | None = None, until: datetime | None = None
                 ) -> list[UsageDay]:
    """The same measures per UTC day, oldest first (the chart)."""
    day = func.date(UsageRecord.time)
    measures = _measures()[:4]
    rows = session.exec(_usage_filter(select(day, *measures), since, until).group_by(day).order_by(day)).all()
    return [UsageDay(day=str(r[0]), requests=r[1], input_tokens=int(r[2]), output_tokens=int(r[3]), errors=int(r[4]))
            for r in rows]


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
