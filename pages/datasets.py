"""The Datasets pages: the list, a resumable upload that is checked before it is saved, and a dataset's versions,
statistics and rows."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from fastapi import Request
from nicegui import APIRouter, app, ui

from backend.config import get_settings
from backend.errors import DomainError
from backend.i18n import N_
from backend.models.dataset import DatasetPublic, VersionPublic
from backend.models.user import Role, User
from backend.services import auth, dataset_tokens, datasets, uploads
from backend.services.dataset_formats import FORMATS, Report
from pages.guard import page_user
from pages.service import call, query, show_error
from ui.datasets import conversation_preview, histogram_chart, stats_grid
from ui.frame import frame
from ui.i18n import _
from ui.widgets import confirm, format_time

router = APIRouter()

UPLOAD_EVENT = "lpDatasetUploaded"  # emitted by assets/upload.js (camelCase: NiceGUI keeps event names so)
FORMAT_LABELS = {"alpaca": "Alpaca", "sharegpt": "ShareGPT", "openai": N_("OpenAI messages"), "text": N_("Plain text"),
                 "csv": "CSV"}
PAGE_SIZE = 10
ERRORS_SHOWN = 50


@router.get("/datasets/upload-token")
def upload_token() -> dict[str, str]:
    """A short-lived access token for the page's upload script (the page itself is signed in by its session)."""
    return {"token": query(auth.page_access_token, session_id=app.storage.user.get("session_id", ""))}


@router.page("/datasets")
def datasets_page(request: Request) -> None:
    user = page_user(request)
    with frame(_("Datasets")):
        DatasetList(user).build()


@router.page("/datasets/{dataset_id}")
def dataset_page(request: Request, dataset_id: int) -> None:
    user = page_user(request)
    try:
        dataset = query(datasets.get_dataset, user=user, dataset_id=dataset_id)
    except DomainError as error:
        with frame(_("Datasets")):
            ui.label(error.translated()).classes("text-negative")
            ui.link(_("Back to the datasets"), "/datasets")
        return
    with frame(dataset.name):
        DatasetDetail(user, dataset_id).build()


def _format_label(format: str) -> str:
    return _(FORMAT_LABELS.get(format, format))


def drop_zone(user: User, marker: str) -> ui.element:
    """The upload box (assets/upload.js speaks tus to /api/v1/uploads); its `UPLOAD_EVENT` says which upload
    finished."""
    ui.add_head_html('<script src="/assets/upload.js" defer></script>')
    box = ui.element("div").classes("lp-dropzone w-full").mark(marker)
    options = {
        "endpoint": "/api/v1/uploads", "tokenUrl": "/datasets/upload-token", "event": UPLOAD_EVENT,
        "user": user.id, "maxBytes": uploads.max_size(), "accept": ".jsonl,.json,.csv,.tsv,.txt,.gz",
        "texts": {
            "drop": _("Drop a file here, or click to choose one"),
            "hint": _("JSON lines, a JSON array, CSV or plain text; gzip welcome. Big files resume where they "
                      "stopped: drop the same file again."),
            "pause": _("Pause"), "resume": _("Resume"), "retry": _("Retry"), "paused": _("Paused"),
            "starting": _("Starting…"), "resuming": _("Going on from where it stopped…"),
            "retrying": _("Connection lost; trying again in {s} s"), "done": _("Uploaded; checking every row…"),
            "failed": _("Upload failed"),
        },
    }
    ui.timer(0.1, lambda: ui.run_javascript(
        f"(function go(){{ if (window.lpUploader) lpUploader.attach('c{box.id}', {json.dumps(options)});"
        f" else setTimeout(go, 50); }})()"), once=True)
    return box


class UploadFlow:
    """Upload → the checked result (format, bad lines, statistics, a few rows) → save as a dataset or a version."""

    def __init__(self, user: User, *, dataset_id: int | None = None, on_saved: Any = None) -> None:
        self.user = user
        self.dataset_id = dataset_id  # a new version of this dataset, else a new dataset
        self.on_saved = on_saved
        self.upload_id: str | None = None
        self.filename = ""
        self.report: Report | None = None
        self.mapping: dict[str, str] = {}

    def build(self) -> None:
        self.zone = drop_zone(self.user, "dropzone")
        ui.on(UPLOAD_EVENT, self._uploaded)
        ui.on(UPLOAD_EVENT + "Refused", lambda e: ui.notify(
            _("{name} is too big: the largest upload accepted is {limit} MB", name=e.args.get("filename", ""),
              limit=get_settings().max_upload_mb), type="negative", position="top"))
        self.result = ui.column().classes("w-full gap-3")

    async def _uploaded(self, event: Any) -> None:
        self.upload_id, self.filename = event.args["upload_id"], event.args.get("filename", "")
        await self.inspect()

    async def inspect(self, format: str | None = None) -> None:
        if self.upload_id is None:
            return
        self.result.clear()
        with self.result, ui.row().classes("items-center gap-2"):
            ui.spinner(size="1.5rem")
            ui.label(_("Checking every row of {name}…", name=self.filename))
        try:
            self.report = await call(datasets.inspect_upload, user=self.user, upload_id=self.upload_id,
                                     format=format, mapping=self.mapping or None)
        except DomainError as error:
            self.result.clear()
            show_error(error)
            return
        self._show_report()

    def _show_report(self) -> None:
        report = self.report
        assert report is not None
        self.result.clear()
        with self.result, ui.card().classes("w-full gap-3"):
            with ui.row().classes("w-full items-center gap-3"):
                ui.icon("check_circle" if not report.error_count else "warning", size="1.6rem",
                        color="positive" if not report.error_count else "warning")
                ui.label(_("{rows} good rows, {bad} bad", rows=f"{report.rows:,}", bad=f"{report.error_count:,}")
                         ).classes("text-subtitle1 text-weight-medium").mark("check-summary")
                ui.space()
                ui.select({f: _format_label(f) for f in FORMATS}, value=report.format, label=_("Format"),
                          on_change=lambda e: self.inspect(e.value)).props("dense outlined").classes("w-48").mark(
                    "format")
            self._mapping_inputs(report)
            if report.errors:
                self._errors_table(report)
            if report.rows:
                stats_grid(report.stats.public())
                ui.label(_("First rows")).classes("text-subtitle2")
                conversation_preview(report.preview[:3])
            self._save_form(report)

    def _mapping_inputs(self, report: Report) -> None:
        """For CSV, always: the columns as guessed (or as the user mapped them), to be changed at will."""
        columns = report.columns
        if report.format != "csv" or not columns:
            return
        if not self.mapping:
            self.mapping = dict(report.mapping)
        ui.label(_("Which column holds what?")).classes("text-subtitle2")
        with ui.row().classes("w-full gap-2"):
            for target in ("instruction", "input", "output", "system", "text"):
                ui.select(["", *columns], label=target, value=self.mapping.get(target, ""),
                          on_change=lambda e, t=target: self.mapping.__setitem__(t, e.value)).props(
                    "dense outlined").classes("w-40").mark(f"map-{target}")
        ui.button(_("Check again"), icon="refresh", on_click=lambda: self.inspect("csv")).props("flat").mark(
            "check-again")

    @staticmethod
    def _errors_table(report: Report) -> None:
        rows = [{"line": e.line, "message": e.text()} for e in report.errors[:ERRORS_SHOWN]]
        more = report.error_count - len(rows)
        with ui.expansion(_("Bad lines ({n})", n=f"{report.error_count:,}"), icon="report",
                          value=True).classes("w-full lp-bad-lines"):
            ui.table(columns=[{"name": "line", "label": _("Line"), "field": "line", "align": "right"},
                              {"name": "message", "label": _("Problem"), "field": "message", "align": "left"}],
                     rows=rows).props("dense flat wrap-cells").classes("w-full").mark("bad-lines")
            if more > 0:
                ui.label(_("…and {n} more.", n=f"{more:,}")).classes("text-caption text-secondary")

    def _save_form(self, report: Report) -> None:
        if not report.rows:
            ui.label(_("Nothing can be saved: no row is usable. Fix the file and drop it again.")).classes(
                "text-negative")
            return
        with ui.row().classes("w-full items-end gap-3"):
            if self.dataset_id is None:
                stem = self.filename.rsplit("/", 1)[-1].split(".")[0] or "dataset"
                self.name = ui.input(_("Name"), value=stem).props("outlined dense").classes("grow").mark(
                    "dataset-name")
            else:
                self.note = ui.input(_("What changed (optional)")).props("outlined dense").classes("grow").mark(
                    "version-note")
            self.validation = ui.number(_("Validation share %"), value=0 if self.dataset_id is None else None,
                                        min=0, max=50, step=1, precision=0).props("outlined dense").classes(
                "w-40").mark("validation-share")
            self.validation.tooltip(_("Rows held out to measure training on data it did not learn from"))
        with ui.row().classes("w-full justify-end gap-2"):
            ui.button(_("Discard"), on_click=self.discard).props("flat").mark("discard-upload")
            if report.error_count:
                ui.button(_("Save without the {n} bad rows", n=f"{report.error_count:,}"), icon="save",
                          on_click=lambda: self.save(skip_invalid=True)).props(
                    "unelevated color=warning").mark("save-skipping")
            else:
                ui.button(_("Save dataset") if self.dataset_id is None else _("Save as a new version"), icon="save",
                          on_click=lambda: self.save(skip_invalid=False)).props("unelevated color=primary").mark(
                    "save-dataset")

    async def save(self, *, skip_invalid: bool) -> None:
        assert self.upload_id is not None and self.report is not None
        ratio = (self.validation.value or 0) / 100 if self.validation.value is not None else None
        options: dict[str, Any] = {"format": self.report.format, "mapping": self.mapping or None,
                                   "skip_invalid": skip_invalid}
        try:
            if self.dataset_id is None:
                dataset, _version, _report = await call(
                    datasets.create_from_upload, user=self.user, upload_id=self.upload_id,
                    name=self.name.value or "", validation_ratio=ratio or 0.0, **options)
                target = dataset.id
            else:
                await call(datasets.version_from_upload, user=self.user, dataset_id=self.dataset_id,
                           upload_id=self.upload_id, note=self.note.value or None, validation_ratio=ratio, **options)
                target = self.dataset_id
        except DomainError as error:
            show_error(error)
            return
        ui.notify(_("Saved"), type="positive", position="top")
        if self.on_saved is not None:
            await self.on_saved(target)

    async def discard(self) -> None:
        if self.upload_id is not None:
            with contextlib.suppress(DomainError):  # gone already
                await call(uploads.terminate, user=self.user, upload_id=self.upload_id)
        self.upload_id, self.report = None, None
        self.result.clear()
        ui.run_javascript(f"lpUploader.reset('c{self.zone.id}')")


class DatasetList:
    def __init__(self, user: User) -> None:
        self.user = user
        self.search = ""

    def build(self) -> None:
        with ui.row().classes("w-full items-center gap-2"):
            ui.input(placeholder=_("Search datasets"), on_change=self._searched).props(
                "dense outlined clearable debounce=300").classes("grow max-w-md").mark("dataset-search")
            ui.space()
            toggle = ui.button(_("New dataset"), icon="upload").props("unelevated color=primary").mark("new-dataset")
        with ui.card().classes("w-full gap-3") as new_box:
            ui.label(_("New dataset")).classes("text-h6")
            UploadFlow(self.user, on_saved=self._saved).build()
        new_box.set_visibility(False)
        toggle.on_click(lambda: new_box.set_visibility(not new_box.visible))
        self.box = ui.column().classes("w-full gap-2")
        self._show(query(datasets.list_public, user=self.user))

    @staticmethod
    async def _saved(dataset_id: int) -> None:
        ui.navigate.to(f"/datasets/{dataset_id}")

    async def _searched(self, event: Any) -> None:
        self.search = (event.value or "").strip()
        self._show(await call(datasets.list_public, user=self.user, q=self.search or None))

    def _show(self, items: list[DatasetPublic]) -> None:
        self.box.clear()
        with self.box:
            if not items:
                with ui.card().classes("w-full items-center p-8 gap-2"):
                    ui.icon("dataset", size="3rem").classes("text-secondary")
                    ui.label(_("No datasets match.") if self.search else _("No datasets yet.")).classes("text-h6")
                    if not self.search:
                        ui.label(_("Upload one: chat conversations (OpenAI messages, ShareGPT), instructions "
                                   "(Alpaca), CSV or plain text.")).classes("text-secondary text-center")
                return
            with ui.card().classes("w-full p-0"), ui.list().props("separator").classes("w-full"):
                for item in items:
                    with ui.item(on_click=lambda i=item: ui.navigate.to(f"/datasets/{i.id}")).classes(
                            "lp-dataset-item").mark(f"dataset-{item.id}"):
                        with ui.item_section():
                            ui.item_label(item.name).classes("text-weight-medium")
                            ui.item_label(_("{rows} rows · version {version} · {format}", rows=f"{item.rows:,}",
                                            version=item.version, format=_format_label(item.format))).props(
                                "caption")
                        with ui.item_section().props("side"):
                            with ui.row().classes("items-center gap-1"):
                                if item.shared:
                                    ui.icon("groups", size="1.1rem").tooltip(_("Shared with everyone"))
                                if item.owner != self.user.username:
                                    ui.label(item.owner).classes("text-caption")
                            ui.item_label(format_time(item.updated_at)).props("caption")


class DatasetDetail:
    def __init__(self, user: User, dataset_id: int) -> None:
        self.user = user
        self.dataset_id = dataset_id
        self.version: int | None = None
        self.page = 1

    def _load(self, session: Any) -> DatasetPublic:
        dataset = datasets.get_dataset(session, user=self.user, dataset_id=self.dataset_id)
        return datasets.dataset_public(session, dataset, with_versions=True)

    def build(self) -> None:
        data = query(self._load)
        self.data = data
        mine = data.owner == self.user.username or self.user.role == Role.admin
        with ui.row().classes("w-full items-center gap-2"):
            ui.label(_("{rows} rows · {format} · by {owner}", rows=f"{data.rows:,}", format=_format_label(data.format),
                       owner=data.owner)).classes("text-secondary")
            ui.space()
            self.mine = mine
            if mine:
                ui.switch(_("Shared with everyone"), value=data.shared, on_change=self._share).mark("share")
                toggle = ui.button(_("New version"), icon="upload").props("outline").mark("new-version")
                ui.button(icon="delete", on_click=self._delete).props("flat round color=negative").mark(
                    "delete-dataset").tooltip(_("Delete"))
        if mine:
            with ui.card().classes("w-full gap-3") as upload_box:
                ui.label(_("New version")).classes("text-h6")
                UploadFlow(self.user, dataset_id=self.dataset_id, on_saved=self._reload).build()
            upload_box.set_visibility(False)
            toggle.on_click(lambda: upload_box.set_visibility(not upload_box.visible))
        with ui.tabs().props("align=left dense no-caps").classes("w-full") as tabs:
            rows_tab = ui.tab("rows", label=_("Rows"), icon="table_rows")
            stats_tab = ui.tab("stats", label=_("Statistics"), icon="insights")
            versions_tab = ui.tab("versions", label=_("Versions"), icon="history").mark("tab-versions")
        with ui.tab_panels(tabs, value=rows_tab).classes("w-full lp-tab-panels"):
            with ui.tab_panel(rows_tab).classes("p-0 gap-3"):
                with ui.row().classes("w-full items-center gap-2 lp-rows-bar"):
                    self.version_select = ui.select({v.version: _("version {n}", n=v.version)
                                                     for v in data.versions or []},
                                                    value=data.version, on_change=self._version_changed).props(
                        "dense outlined").classes("w-40").mark("preview-version")
                    ui.space()
                    if mine:
                        self.dedupe_button = ui.button(_("Remove repeated rows"), icon="filter_alt",
                                                       on_click=self._remove_duplicates).props(
                            "outline dense no-caps").mark("remove-duplicates")
                        self._show_dedupe()
                    self.pager = ui.pagination(1, max(1, -(-data.rows // PAGE_SIZE)), direction_links=True,
                                               on_change=self._page_changed).props(
                        "max-pages=5 boundary-numbers").classes("lp-pager")
                self.rows_box = ui.column().classes("w-full gap-2")
            with ui.tab_panel(stats_tab).classes("p-0 gap-3"):
                self.stats_box = ui.column().classes("w-full gap-3")
                self._show_stats(self._selected())
                with ui.row().classes("w-full items-center gap-2") as count_row:
                    self.tokenizer = ui.input(_("Base model for exact token counts"),
                                              placeholder=_("a local model directory or a cached model id")).props(
                        "outlined dense").classes("grow max-w-xl").mark("tokenizer")
                    self.count_button = ui.button(_("Count tokens"), icon="calculate", on_click=self._count).props(
                        "outline").mark("count-tokens")
                count_row.set_visibility(mine)  # the counts are stored with the version: the owner's to change
            with ui.tab_panel(versions_tab).classes("p-0 gap-3"):
                self._versions_table(data)
        self._show_rows()

    def _selected(self) -> VersionPublic | None:
        """The version chosen above the rows (the latest until another is chosen)."""
        versions = self.data.versions or []
        return next((v for v in versions if v.version == self.version), versions[0] if versions else None)

    def _show_stats(self, shown: VersionPublic | None) -> None:
        self.stats_box.clear()
        if shown is None:
            return
        with self.stats_box:
            ui.label(_("Version {n}", n=shown.version)).classes("text-subtitle2").mark("stats-version")
            stats_grid(shown.stats)
            if shown.stats.get("tokenizer"):
                ui.label(_("Tokens counted with the tokenizer of {model}", model=shown.stats["tokenizer"])).classes(
                    "text-caption text-secondary")
            if shown.validation_ratio:
                ui.label(_("Split: {train} rows for training, {validation} held out for validation",
                           train=f"{shown.rows - shown.validation_rows:,}",
                           validation=f"{shown.validation_rows:,}")).classes("text-body2")
            histogram_chart(shown.stats.get("histogram", {}), estimated=shown.stats.get("tokens_estimated", True))

    def _show_dedupe(self) -> None:
        shown = self._selected()
        self.dedupe_button.set_visibility(bool(shown and shown.stats.get("duplicates")))

    async def _count(self) -> None:
        model = (self.tokenizer.value or "").strip()
        if not model:
            ui.notify(_("Name a base model first"), type="warning", position="top")
            return
        self.count_button.props("loading")
        try:
            await call(dataset_tokens.count_tokens, user=self.user, dataset_id=self.dataset_id, base_model=model,
                       version=self.version)
            self.data = await call(self._load)
        except DomainError as error:
            show_error(error)
            return
        finally:
            self.count_button.props(remove="loading")
        self._show_stats(self._selected())

    def _versions_table(self, data: DatasetPublic) -> None:
        versions = data.versions or []
        rows = []
        for index, version in enumerate(versions):
            previous = versions[index + 1] if index + 1 < len(versions) else None
            change = version.rows - previous.rows if previous else None
            rows.append({"version": version.version, "rows": f"{version.rows:,}",
                         "change": "" if change is None else f"{change:+,}", "skipped": version.skipped,
                         "source": version.source_name, "sha": version.sha256[:12], "note": version.note or "",
                         "created": format_time(version.created_at)})
        labels = (("version", _("Version")), ("rows", _("Rows")), ("change", _("Change")),
                  ("skipped", _("Bad rows left out")), ("source", _("File")), ("sha", "SHA-256"), ("note", _("Note")),
                  ("created", _("Created")))
        columns = [{"name": k, "label": label, "field": k, "align": "left"} for k, label in labels]
        columns.append({"name": "download", "label": "", "field": "version"})
        table = ui.table(columns=columns, rows=rows, row_key="version").props("flat bordered dense").classes(
            "w-full").mark("versions")
        table.add_slot("body-cell-download", '''
            <q-td :props="props"><q-btn flat dense round icon="download" size="sm"
              @click="() => $parent.$emit('download', props.row.version)" /></q-td>''')
        table.on("download", lambda e: self._download(int(e.args)))

    async def _download(self, version: int) -> None:
        try:
            found = await call(datasets.get_version, user=self.user, dataset_id=self.dataset_id, version=version)
        except DomainError as error:
            show_error(error)
            return
        ui.download.file(datasets.version_file(found), f"{self.data.name}-v{version}.jsonl")

    async def _version_changed(self, event: Any) -> None:
        self.version = event.value
        self.page = 1
        self.pager.set_value(1)
        self._show_stats(self._selected())  # statistics, counting and editing follow the version chosen
        if self.mine:
            self._show_dedupe()
        await self._show_rows_async()

    async def _remove_duplicates(self) -> None:
        shown = self._selected()
        if shown is None:
            return
        if not await confirm(_("Save a new version without the {n} repeated rows of version {version}? Version "
                               "{version} stays as it is.", n=f"{shown.stats.get('duplicates', 0):,}",
                               version=shown.version), ok=_("Remove repeated rows")):
            return
        await self._edit(shown.version, dedupe=True)

    async def _remove_row(self, index: int) -> None:
        shown = self._selected()
        if shown is None:
            return
        if not await confirm(_("Save a new version without row {n} of version {version}? Version {version} stays "
                               "as it is.", n=index + 1, version=shown.version), ok=_("Remove this row")):
            return
        await self._edit(shown.version, remove_rows=[index])

    async def _edit(self, from_version: int, *, remove_rows: list[int] | None = None, dedupe: bool = False) -> None:
        try:
            version, _report = await call(datasets.edit_version, user=self.user, dataset_id=self.dataset_id,
                                          from_version=from_version, remove_rows=remove_rows or [], dedupe=dedupe)
        except DomainError as error:
            show_error(error)
            return
        ui.notify(_("Saved as version {n}", n=version.version), type="positive", position="top")
        ui.navigate.reload()

    async def _page_changed(self, event: Any) -> None:
        self.page = event.value or 1
        await self._show_rows_async()

    def _show_rows(self) -> None:
        try:
            _found, rows = query(datasets.preview, user=self.user, dataset_id=self.dataset_id, version=self.version,
                                 offset=(self.page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
        except DomainError as error:
            show_error(error)
            return
        self._rows(rows)

    async def _show_rows_async(self) -> None:
        try:
            found, rows = await call(datasets.preview, user=self.user, dataset_id=self.dataset_id,
                                     version=self.version, offset=(self.page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
        except DomainError as error:
            show_error(error)
            return
        self.pager.max = max(1, -(-found.rows // PAGE_SIZE))
        self._rows(rows)

    def _rows(self, rows: list[dict[str, Any]]) -> None:
        self.rows_box.clear()
        with self.rows_box:
            conversation_preview(rows, first_index=(self.page - 1) * PAGE_SIZE,
                                 on_remove=self._remove_row if self.mine else None)

    async def _share(self, event: Any) -> None:
        try:
            await call(datasets.update_dataset, user=self.user, dataset_id=self.dataset_id, shared=bool(event.value))
        except DomainError as error:
            show_error(error)

    async def _delete(self) -> None:
        if not await confirm(_("Delete {name} with all its versions?", name=self.data.name), ok=_("Delete")):
            return
        try:
            await call(datasets.delete_dataset, user=self.user, dataset_id=self.dataset_id)
        except DomainError as error:
            show_error(error)
            return
        ui.navigate.to("/datasets")

    async def _reload(self, _dataset_id: int) -> None:
        ui.navigate.reload()
