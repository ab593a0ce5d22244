"""The admin console: users, usage, the system monitor, the audit log and settings, a tab each."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request
from nicegui import APIRouter, ui

from backend.errors import DomainError
from backend.i18n import N_
from backend.models.admin import AdminSettingsUpdate, Alert
from backend.models.user import PASSWORD_MIN_LENGTH, Role, User, UserUpdate
from backend.services import monitor, reports, settings_store, users
from pages.guard import page_user
from pages.service import call, query, show_error
from ui import admin as widgets
from ui.frame import frame, set_admin_banner
from ui.i18n import _
from ui.widgets import confirm, format_time, new_password_input, section

router = APIRouter()

TABS = ("users", "usage", "system", "audit", "settings")
PERIODS = {"today": N_("Today"), "7d": N_("Last 7 days"), "30d": N_("Last 30 days"), "custom": N_("Since…")}
AUDIT_PERIODS = {"1d": N_("Last 24 hours"), "7d": N_("Last 7 days"), "30d": N_("Last 30 days"), "all": N_("All time")}
AUDIT_PAGE = 25
CHART_MEASURES = {"tokens": N_("Tokens"), "requests": N_("Requests"), "errors": N_("Errors"),
                  "latency": N_("Average latency (ms)")}
METRIC_LABELS = {"cpu": "CPU", "memory": N_("Memory"), "disk": N_("Disk"), "gpu_memory": N_("GPU memory")}


def forbidden() -> None:
    with ui.card().classes("w-full items-center p-8 gap-2 lp-forbidden"):
        ui.icon("block", size="3rem").classes("text-negative")
        ui.label(_("Administrators only")).classes("text-h6")
        ui.label(_("Your account may not open this page.")).classes("text-secondary")


@router.page("/admin")
def admin_page(request: Request, tab: str = "users") -> None:
    admin = page_user(request)
    ip = request.client.host if request.client else None
    with frame(_("Admin")):
        if admin.role != Role.admin:
            forbidden()
            return
        with ui.tabs().classes("lp-tabs w-full").props(
                "align=left dense no-caps outside-arrows mobile-arrows") as tabs:
            tab_items = {
                "users": ui.tab("users", label=_("Users"), icon="group").mark("tab-users"),
                "usage": ui.tab("usage", label=_("Usage"), icon="bar_chart").mark("tab-usage"),
                "system": ui.tab("system", label=_("System"), icon="monitor_heart").mark("tab-system"),
                "audit": ui.tab("audit", label=_("Audit log"), icon="policy").mark("tab-audit"),
                "settings": ui.tab("settings", label=_("Settings"), icon="tune").mark("tab-settings"),
            }
        tab = tab if tab in TABS else "users"  # ?tab=system: the alert banner's link
        with ui.tab_panels(tabs, value=tab_items[tab]).classes("w-full lp-tab-panels"):
            with ui.tab_panel("users").classes("p-0 gap-4"):
                _users_section(admin, ip)
            with ui.tab_panel("usage").classes("p-0 gap-4"):
                usage = UsageView(admin, ip)
            with ui.tab_panel("system").classes("p-0 gap-4"):
                system = SystemView()
            with ui.tab_panel("audit").classes("p-0 gap-4"):
                audit_view = AuditView(admin, ip)
            with ui.tab_panel("settings").classes("p-0 gap-4"):
                SettingsView(admin, ip)
        refreshers = {"usage": usage.refresh, "system": system.refresh, "audit": audit_view.refresh}

        async def tab_changed(event: Any) -> None:
            system.timer.active = event.value == "system"  # live figures only while they are on screen
            if event.value in refreshers:
                await refreshers[event.value]()

        tabs.on_value_change(tab_changed)
        if tab in refreshers:
            system.timer.active = tab == "system"
            ui.timer(0, refreshers[tab], once=True)


# --- users --------------------------------------------------------------------------------------------------------


def _limit_text(value: int | None) -> str:
    if value is None:
        return _("default")
    return _("none") if value == 0 else f"{value:,}"


def _limits_line(user: User) -> str:
    if user.rate_limit_per_minute is None and user.daily_token_quota is None:
        return _("Limits: the defaults")
    return _("Limits: {rate} requests a minute, {quota} tokens a day", rate=_limit_text(user.rate_limit_per_minute),
             quota=_limit_text(user.daily_token_quota))


def _users_section(admin: User, ip: str | None) -> None:
    with section(_("Users"), icon="group"):
        with ui.row().classes("w-full items-center gap-2"):
            search = ui.input(_("Search users"), on_change=lambda: user_list.refresh()).props(
                "outlined dense clearable debounce=300"
            ).classes("grow max-w-sm")
            ui.button(_("New user"), icon="person_add", on_click=lambda: create_user()).props("unelevated").mark(
                "new-user")

        async def apply(user: User, changes: UserUpdate, done: str) -> None:
            try:
                await call(users.update_user, actor=admin, user_id=user.id, changes=changes, ip=ip)
            except DomainError as error:
                show_error(error)
            else:
                ui.notify(done, type="positive")
            user_list.refresh()

        async def toggle_disabled(user: User) -> None:
            if not user.disabled and not await confirm(
                _("Disable {name}? They are signed out everywhere at once.", name=user.username), ok=_("Disable")
            ):
                user_list.refresh()
                return
            await apply(user, UserUpdate(disabled=not user.disabled),
                        _("{name} enabled", name=user.username) if user.disabled
                        else _("{name} disabled", name=user.username))

        @ui.refreshable
        def user_list() -> None:
            found = query(users.list_users, search=search.value or None)
            if not found:
                ui.label(_("No user matches.")).classes("text-secondary")
                return
            with ui.column().classes("w-full gap-0 lp-user-list"):
                for user in found:
                    with ui.row().classes("lp-user-row w-full items-center justify-between gap-2 py-2"):
                        with ui.column().classes("gap-0 min-w-0"):
                            with ui.row().classes("items-center gap-2"):
                                ui.label(user.username).classes("text-weight-medium")
                                if user.id == admin.id:
                                    ui.badge(_("you"), color="primary").props("outline")
                                if user.disabled:
                                    ui.badge(_("disabled"), color="negative")
                            ui.label(f"{_('last sign-in')} {format_time(user.last_login_at)}").classes(
                                "text-caption text-secondary"
                            )
                            ui.label(_limits_line(user)).classes(
                                "text-caption text-secondary").mark(f"limits-{user.username}")
                        with ui.row().classes("items-center gap-1 no-wrap"):
                            ui.select(
                                {Role.admin.value: _("Administrator"), Role.user.value: _("User")},
                                value=user.role.value,
                                on_change=lambda e, u=user: apply(u, UserUpdate(role=Role(e.value)),
                                                                  _("Role changed")) if e.value != u.role else None,
                            ).props('dense outlined options-dense aria-label="Role"').classes("w-36").mark(
                                f"role-{user.username}")
                            ui.switch(value=not user.disabled, on_change=lambda _e, u=user: toggle_disabled(u)).mark(
                                f"enabled-{user.username}").props('aria-label="Enabled"').tooltip(_("Enabled"))
                            ui.button(icon="password", on_click=lambda u=user: reset_password(u)).mark(
                                f"reset-{user.username}").props(
                                f'flat round dense aria-label="{_("Reset password")}"'
                            ).tooltip(_("Reset password"))
                            ui.button(icon="speed", on_click=lambda u=user: edit_limits(u)).mark(
                                f"edit-limits-{user.username}").props(
                                f'flat round dense aria-label="{_("Limits")}"').tooltip(_("Limits"))
                            ui.button(icon="delete", on_click=lambda u=user: delete(u)).mark(
                                f"delete-{user.username}").props(
                                f'flat round dense color=negative aria-label="{_("Delete")}"').tooltip(_("Delete"))

        async def reset_password(user: User) -> None:
            with ui.dialog() as dialog, ui.card().classes("gap-3 w-full max-w-sm"):
                ui.label(_("New password for {name}", name=user.username)).classes("text-h6")
                password = new_password_input(_("New password"), min_length=PASSWORD_MIN_LENGTH, dense=True).mark(
                    "new-password"
                )
                with ui.row().classes("w-full justify-end gap-2"):
                    ui.button(_("Cancel"), on_click=lambda: dialog.submit(None)).props("flat")

                    def submit() -> None:
                        if password.validate():
                            dialog.submit(password.value)

                    ui.button(_("Set password"), on_click=submit).props("unelevated").mark("set-password")
            value = await dialog
            dialog.delete()
            if value:
                await apply(user, UserUpdate(password=value), _("Password reset; their sessions were ended"))

        async def create_user() -> None:
            with ui.dialog() as dialog, ui.card().classes("gap-3 w-full max-w-sm"):
                ui.label(_("New user")).classes("text-h6")
                name = ui.input(_("Username")).props("outlined dense").classes("w-full").mark("new-username")
                password = new_password_input(_("Password"), min_length=PASSWORD_MIN_LENGTH, dense=True).mark(
                    "new-user-password")
                role = ui.select({Role.user.value: _("User"), Role.admin.value: _("Administrator")},
                                 value=Role.user.value, label=_("Role")).props("outlined dense").classes(
                    "w-full").mark("new-user-role")
                with ui.row().classes("w-full justify-end gap-2"):
                    ui.button(_("Cancel"), on_click=lambda: dialog.submit(None)).props("flat")

                    async def submit() -> None:
                        if not password.validate():
                            return
                        try:
                            await call(users.create_user, actor=admin, username=name.value or "",
                                       password=password.value, role=Role(role.value), ip=ip)
                        except DomainError as error:
                            show_error(error)
                            return
                        dialog.submit(name.value)

                    ui.button(_("Create"), on_click=submit).props("unelevated").mark("create-user")
            created = await dialog
            dialog.delete()
            if created:
                ui.notify(_("{name} created", name=created), type="positive")
                user_list.refresh()

        async def edit_limits(user: User) -> None:
            defaults = query(settings_store.load)
            with ui.dialog() as dialog, ui.card().classes("gap-3 w-full max-w-sm"):
                ui.label(_("Limits of {name}", name=user.username)).classes("text-h6")
                ui.label(_("Leave a field empty for the default; 0 means no limit.")).classes(
                    "text-caption text-secondary")
                rate = ui.number(_("Requests a minute (default {n})", n=_limit_text(defaults.rate_limit_per_minute)),
                                 value=user.rate_limit_per_minute, min=0, precision=0).props(
                    "outlined dense clearable").classes("w-full").mark("limit-rate")
                quota = ui.number(_("Tokens a day (default {n})", n=_limit_text(defaults.daily_token_quota)),
                                  value=user.daily_token_quota, min=0, precision=0).props(
                    "outlined dense clearable").classes("w-full").mark("limit-quota")
                with ui.row().classes("w-full justify-end gap-2"):
                    ui.button(_("Cancel"), on_click=lambda: dialog.submit(None)).props("flat")
                    ui.button(_("Save"), on_click=lambda: dialog.submit(True)).props("unelevated").mark(
                        "save-limits")
            saved = await dialog
            dialog.delete()
            if saved:
                changes = UserUpdate.model_validate({
                    "rate_limit_per_minute": None if rate.value in (None, "") else int(rate.value),
                    "daily_token_quota": None if quota.value in (None, "") else int(quota.value)})
                await apply(user, changes, _("Limits saved"))

        async def delete(user: User) -> None:
            if not await confirm(_(
                "Delete {name}? Their conversations, comparisons, datasets, uploads, prompts, training jobs and API "
                "tokens are deleted with the account, files included; this cannot be undone. Usage statistics and "
                "the audit log keep their entries.", name=user.username), ok=_("Delete")):
                return
            try:
                await call(users.delete_user, actor=admin, user_id=user.id, ip=ip)
            except DomainError as error:
                show_error(error)
                return
            ui.notify(_("{name} deleted", name=user.username), type="positive")
            user_list.refresh()

        user_list()


# --- usage --------------------------------------------------------------------------------------------------------


def _period_start(period: str, custom: str | None) -> datetime | None:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "today":
        return today
    if period == "7d":
        return today - timedelta(days=6)
    if period == "30d":
        return today - timedelta(days=29)
    if custom:
        try:
            return datetime.fromisoformat(custom).replace(tzinfo=UTC)
        except ValueError:
            return None
    return None


class UsageView:
    def __init__(self, admin: User, ip: str | None) -> None:
        self.admin, self.ip = admin, ip
        with section(_("Usage"), icon="bar_chart"):
            with ui.row().classes("w-full items-center gap-2"):
                self.period = ui.select({k: _(v) for k, v in PERIODS.items()}, value="7d", label=_("Period"),
                                        on_change=self.refresh).props("outlined dense").classes("w-44").mark(
                    "usage-period")
                self.since = ui.input(_("Since (YYYY-MM-DD)"), on_change=self.refresh).props(
                    'outlined dense type=date debounce=500').classes("w-44").mark("usage-since")
                self.since.bind_visibility_from(self.period, "value", lambda v: v == "custom")
                self.by = ui.toggle({"user": _("By user"), "model": _("By model")}, value="user",
                                    on_change=self.refresh).props("no-caps dense").mark("usage-by")
                ui.space()
                ui.button("CSV", icon="download", on_click=self.export).props("flat dense").mark("usage-csv")
            self.measure = ui.toggle({k: _(v) for k, v in CHART_MEASURES.items()}, value="tokens",
                                     on_change=self.draw_chart).props("no-caps dense size=sm").mark("usage-measure")
            self.chart_box = ui.column().classes("w-full gap-0")
            self.days: list[reports.UsageDayRow] = []
            self.table = ui.table(columns=[
                {"name": "key", "label": _("Name"), "field": "key", "align": "left", "sortable": True},
                {"name": "requests", "label": _("Requests"), "field": "requests", "sortable": True},
                {"name": "input_tokens", "label": _("Input tokens"), "field": "input_tokens", "sortable": True},
                {"name": "output_tokens", "label": _("Output tokens"), "field": "output_tokens", "sortable": True},
                {"name": "errors", "label": _("Errors"), "field": "errors", "sortable": True},
                {"name": "avg_latency_ms", "label": _("Average latency (ms)"), "field": "avg_latency_ms",
                 "sortable": True},
            ], rows=[], row_key="key").props("flat dense wrap-cells").classes("w-full").mark("usage-table")
            self.table.props(f'no-data-label="{_("No calls in this period.")}"')

    def _since(self) -> datetime | None:
        return _period_start(self.period.value, self.since.value)

    async def refresh(self) -> None:
        since = self._since()
        rows = await call(reports.usage, by=self.by.value, since=since)
        self.days = await call(reports.usage_by_day, by=self.by.value, since=since)
        self.table.rows = [r.model_dump() for r in rows]
        self.table.columns[0]["label"] = _("User") if self.by.value == "user" else _("Model")
        self.table.update()
        self.draw_chart()

    def draw_chart(self) -> None:
        """A series per user or model (the busiest, then the others) of the measure picked."""
        self.chart_box.clear()
        with self.chart_box:
            if self.days:
                widgets.usage_chart(self.days, self.measure.value, labels={reports.OTHERS: _("Others")}).classes(
                    "w-full h-64").mark("usage-chart")

    async def export(self) -> None:
        text = await call(reports.export_usage, actor=self.admin, by=self.by.value, since=self._since(), ip=self.ip)
        ui.download.content(text.encode(), f"usage-by-{self.by.value}.csv", "text/csv")


# --- system -------------------------------------------------------------------------------------------------------


LIVE_SECONDS = 5.0  # the figures now, while the tab is on screen
HISTORY_SECONDS = 60.0  # the 24-hour chart: a sample comes once a minute


class SystemView:
    def __init__(self) -> None:
        with section(_("System"), icon="monitor_heart"):
            self.now_box = ui.column().classes("w-full gap-3").mark("system-now")
        with section(_("Last 24 hours"), icon="timeline"):
            self.history_box = ui.column().classes("w-full gap-0")
        self.history_due = 0.0
        self.timer = ui.timer(LIVE_SECONDS, self.refresh, active=False)

    async def refresh(self) -> None:
        now = await call(monitor.snapshot)
        alerts = await call(monitor.active_alerts)
        self._show_now(now, alerts)
        if time.monotonic() >= self.history_due:
            self.history_due = time.monotonic() + HISTORY_SECONDS
            self._show_history(await call(monitor.history))

    def _show_now(self, now: dict[str, Any], alerts: list[Alert]) -> None:
        warn = {a.metric for a in alerts}
        self.now_box.clear()
        with self.now_box:
            with ui.row().classes("w-full gap-3"):
                widgets.stat_tile("CPU", f"{now['cpu_percent']:.0f} %", percent=now["cpu_percent"],
                                  caption=_("{n} cores", n=now["cpu_count"]), warn="cpu" in warn)
                memory = now["memory"]
                widgets.stat_tile(_("Memory"), f"{memory['percent']:.0f} %", percent=memory["percent"],
                                  caption=f"{widgets.human_bytes(memory['used'])} / "
                                          f"{widgets.human_bytes(memory['total'])}", warn="memory" in warn)
                disk = now["disk"]
                widgets.stat_tile(_("Disk"), f"{disk['percent']:.0f} %", percent=disk["percent"],
                                  caption=f"{widgets.human_bytes(disk['used'])} / {widgets.human_bytes(disk['total'])}",
                                  warn="disk" in warn)
                widgets.stat_tile(_("Portal process"), widgets.human_bytes(now["portal"]["rss"]),
                                  caption=_("pid {pid}", pid=now["portal"]["pid"]))
            ui.label("GPU").classes("text-subtitle2")
            if not now["gpus"]:
                ui.label(_("No GPU")).classes("text-secondary").mark("no-gpu")
            with ui.row().classes("w-full gap-3"):
                for gpu in now["gpus"]:
                    utilization = gpu["utilization_percent"]
                    temperature = gpu["temperature_c"]
                    widgets.stat_tile(
                        f"GPU {gpu['index']} · {gpu['name']}",
                        f"{utilization:.0f} %" if utilization is not None else "–", percent=gpu["memory_percent"],
                        caption=_("memory {used} / {total}, {temperature}",
                                  used=widgets.human_bytes(gpu["memory_used"]),
                                  total=widgets.human_bytes(gpu["memory_total"]),
                                  temperature=f"{temperature:.0f} °C" if temperature is not None else "–"),
                        warn=any(a.metric == "gpu_memory" and a.label == f"GPU {gpu['index']}" for a in alerts))
            ui.label(_("Training workers")).classes("text-subtitle2")
            if not now["workers"]:
                ui.label(_("No training job is running.")).classes("text-secondary")
            for worker in now["workers"]:
                ui.label(_("{job} (pid {pid}): {memory}", job=worker["job_name"], pid=worker["pid"],
                           memory=widgets.human_bytes(worker["rss"]))).classes("text-body2")

    def _show_history(self, samples: list[Any]) -> None:
        self.history_box.clear()
        with self.history_box:
            if not samples:
                ui.label(_("No samples yet: one is taken every minute.")).classes("text-secondary")
                return
            times = [s.time.strftime("%H:%M") for s in samples]
            series: dict[str, list[float | None]] = {
                "CPU": [s.cpu_percent for s in samples], _("Memory"): [s.memory_percent for s in samples],
                _("Disk"): [s.disk_percent for s in samples]}
            for index in sorted({g["index"] for s in samples for g in s.gpus}):
                series[_("GPU {n} memory", n=index)] = [
                    next((g["memory_percent"] for g in s.gpus if g["index"] == index), None) for s in samples]
            widgets.history_chart(times, series).classes("w-full h-64").mark("system-history")


# --- audit --------------------------------------------------------------------------------------------------------


class AuditView:
    def __init__(self, admin: User, ip: str | None) -> None:
        self.admin, self.ip = admin, ip
        self.offset = 0
        with section(_("Audit log"), icon="policy"):
            with ui.row().classes("w-full items-center gap-2"):
                self.period = ui.select({k: _(v) for k, v in AUDIT_PERIODS.items()}, value="7d", label=_("Period"),
                                        on_change=self.first_page).props("outlined dense").classes("w-40").mark(
                    "audit-period")
                self.user = ui.input(_("User"), on_change=self.first_page).props(
                    "outlined dense clearable debounce=400").classes("w-36").mark("audit-user")
                self.action = ui.select([], label=_("Action"), with_input=True, clearable=True,
                                        on_change=self.first_page).props("outlined dense").classes("w-48").mark(
                    "audit-action")
                self.text = ui.input(_("Search"), on_change=self.first_page).props(
                    "outlined dense clearable debounce=400").classes("grow").style("min-width: 10rem").mark(
                    "audit-search")
                ui.button("CSV", icon="download", on_click=self.export).props("flat dense").mark("audit-csv")
            self.table = ui.table(columns=[
                {"name": "time", "label": _("Time"), "field": "time", "align": "left"},
                {"name": "user", "label": _("User"), "field": "user", "align": "left"},
                {"name": "action", "label": _("Action"), "field": "action", "align": "left"},
                {"name": "target", "label": _("Target"), "field": "target", "align": "left"},
                {"name": "ip", "label": _("Address"), "field": "ip", "align": "left"},
                {"name": "detail", "label": _("Detail"), "field": "detail", "align": "left",
                 "style": "max-width: 22rem; overflow: hidden; text-overflow: ellipsis"},
            ], rows=[], row_key="id", pagination=0).props("flat dense hide-pagination").classes(
                "w-full").mark("audit-table")
            self.table.props(f'no-data-label="{_("No event matches.")}"')
            with ui.row().classes("w-full items-center justify-end gap-2"):
                self.range_label = ui.label().classes("text-caption text-secondary").mark("audit-range")
                self.prev = ui.button(icon="chevron_left", on_click=lambda: self.move(-AUDIT_PAGE)).props(
                    f'flat round dense aria-label="{_("Newer")}"').mark("audit-prev")
                self.next = ui.button(icon="chevron_right", on_click=lambda: self.move(AUDIT_PAGE)).props(
                    f'flat round dense aria-label="{_("Older")}"').mark("audit-next")

    def filters(self) -> dict[str, Any]:
        days = {"1d": 1, "7d": 7, "30d": 30}.get(self.period.value)
        return {"user": (self.user.value or "").strip() or None, "action": self.action.value or None,
                "q": (self.text.value or "").strip() or None,
                "since": datetime.now(UTC) - timedelta(days=days) if days else None}

    async def first_page(self) -> None:
        self.offset = 0
        await self.refresh()

    async def move(self, step: int) -> None:
        self.offset = max(0, self.offset + step)
        await self.refresh()

    async def refresh(self) -> None:
        total, events = await call(reports.audit_events, **self.filters(), limit=AUDIT_PAGE, offset=self.offset)
        actions = await call(reports.audit_actions)
        if self.action.options != actions:
            self.action.set_options(actions, value=self.action.value if self.action.value in actions else None)
        self.table.rows = [{"id": f"{self.offset + i}", "time": format_time(e.time), "user": e.user or "",
                            "action": e.action, "target": e.target or "", "ip": e.ip or "",
                            "detail": ", ".join(f"{k}: {v}" for k, v in e.detail.items())}
                           for i, e in enumerate(events)]
        self.table.update()
        shown = f"{self.offset + 1}–{self.offset + len(events)}" if events else "0"
        self.range_label.text = _("{shown} of {total}", shown=shown, total=total)
        self.prev.enabled = self.offset > 0
        self.next.enabled = self.offset + len(events) < total

    async def export(self) -> None:
        text = await call(reports.export_audit, actor=self.admin, ip=self.ip, **self.filters())
        ui.download.content(text.encode(), "audit.csv", "text/csv")


# --- settings -----------------------------------------------------------------------------------------------------


class SettingsView:
    def __init__(self, admin: User, ip: str | None) -> None:
        self.admin, self.ip = admin, ip
        current = query(settings_store.load)
        with section(_("Registration"), icon="how_to_reg"):
            self.registration = ui.switch(_("Anyone may register an account"), value=current.allow_registration).mark(
                "allow-registration")
            self.role = ui.select({Role.user.value: _("User"), Role.admin.value: _("Administrator")},
                                  value=current.default_role.value, label=_("Role of new users")).props(
                "outlined dense").classes("w-56").mark("default-role")
        with section(_("Default limits"), icon="speed"):
            ui.label(_("Per user, unless a user has limits of their own; 0 means no limit.")).classes(
                "text-caption text-secondary")
            with ui.row().classes("w-full gap-3"):
                self.rate = ui.number(_("Requests a minute"), value=current.rate_limit_per_minute, min=0,
                                      precision=0).props("outlined dense").classes("w-56").mark("default-rate")
                self.quota = ui.number(_("Tokens a day (UTC)"), value=current.daily_token_quota, min=0,
                                       precision=0).props("outlined dense").classes("w-56").mark("default-quota")
        with section(_("Alerts"), icon="notifications_active"):
            ui.label(_("A sample a minute at or above a threshold raises an alert: a banner for administrators, an "
                       "audit event and a call to the webhook. 0 turns a threshold off.")).classes(
                "text-caption text-secondary")
            with ui.row().classes("w-full gap-3"):
                self.thresholds = {
                    name: ui.number(f"{_(METRIC_LABELS[name])} %",
                                    value=getattr(current, f"alert_{name}_percent"), min=0, max=100).props(
                        "outlined dense").classes("w-40").mark(f"alert-{name}")
                    for name in ("cpu", "memory", "disk", "gpu_memory")}
            with ui.row().classes("w-full items-center gap-2"):
                self.webhook = ui.input(_("Webhook address (JSON POST)"), value=current.alert_webhook_url,
                                        placeholder="https://").props("outlined dense clearable").classes(
                    "grow").style("min-width: 16rem").mark("alert-webhook")
                ui.button(_("Send a test"), icon="send", on_click=self.test_webhook).props("flat").mark(
                    "test-webhook")
        with ui.row().classes("w-full justify-end"):
            ui.button(_("Save settings"), icon="save", on_click=self.save).props("unelevated").mark("save-settings")

    async def save(self) -> None:
        try:
            changes = AdminSettingsUpdate(
                allow_registration=self.registration.value, default_role=Role(self.role.value),
                rate_limit_per_minute=int(self.rate.value or 0), daily_token_quota=int(self.quota.value or 0),
                alert_webhook_url=self.webhook.value or "",
                **{f"alert_{name}_percent": float(field.value or 0) for name, field in self.thresholds.items()})
        except ValueError as error:
            ui.notify(str(error), type="negative", multi_line=True)
            return
        try:
            await call(settings_store.update, actor=self.admin, changes=changes, ip=self.ip)
        except DomainError as error:
            show_error(error)
            return
        ui.notify(_("Settings saved"), type="positive")

    async def test_webhook(self) -> None:
        try:
            ok = await call(monitor.try_webhook, actor=self.admin, url=self.webhook.value or None, ip=self.ip)
        except DomainError as error:
            show_error(error)
            return
        if ok:
            ui.notify(_("The webhook answered"), type="positive")
        else:
            ui.notify(_("The webhook did not answer with success; see the log"), type="warning")


# --- the alert banner on every page, for administrators -------------------------------------------------------


def _alert_text(alert: Alert) -> str:
    what = alert.label or _(METRIC_LABELS.get(alert.metric, alert.metric))
    if alert.metric == "gpu_memory":
        what = f"{alert.label} {_('memory')}"
    return _("{what} at {value} % (threshold {threshold} %)", what=what, value=f"{alert.value:.0f}",
             threshold=f"{alert.threshold:g}")


def show_alert_banner() -> None:
    found = query(monitor.active_alerts)
    if found:
        widgets.alert_banner([_alert_text(a) for a in found])


set_admin_banner(show_alert_banner)
