"""The Prompts page: the library, the editor with its versions and labels, a playground that streams a model's
answer to the rendered prompt, and conversion between message formats."""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any

import yaml
from fastapi import Request
from nicegui import APIRouter, app, background_tasks, run, ui

from backend.errors import DomainError, Invalid
from backend.models.prompt import PromptCreate, PromptMessage, PromptPublic, PromptUpdate, VariableSpec
from backend.models.provider import ModelPublic
from backend.models.user import Role, User
from backend.providers.base import ProviderError
from backend.services import prompt_formats, prompts, providers
from backend.services.prompt_render import variable_specs
from pages.compare import HANDOFF_KEY
from pages.guard import page_user
from pages.service import call, error_text, query, show_error
from ui.chat import AnswerView, use_chat_assets
from ui.frame import frame
from ui.i18n import _, page_language
from ui.prompts import (
    ROLE_LABELS,
    MessagesEditor,
    ValuesForm,
    VariablesEditor,
    code_block,
    diff_view,
    prompt_card,
    use_prompt_assets,
)
from ui.widgets import confirm, format_time

router = APIRouter()

MODEL_KEY = "prompts_model"  # the playground's model, remembered
FORMAT_LABELS = {"openai": "OpenAI", "anthropic": "Anthropic", "sharegpt": "ShareGPT", "alpaca": "Alpaca",
                 "text": "Text"}
STARTER = [{"role": "system", "content": "You are a helpful assistant for {{ company }}."},
           {"role": "user", "content": "{{ question }}"}]


@router.page("/prompts")
def library_page(request: Request) -> None:
    user = page_user(request)
    use_prompt_assets()
    with frame(_("Prompts")):
        with ui.tabs().classes("lp-tabs w-full").props("align=left dense no-caps") as tabs:
            library_tab = ui.tab("library", label=_("Library"), icon="library_books").mark("tab-library")
            convert_tab = ui.tab("convert", label=_("Convert formats"), icon="swap_horiz").mark("tab-convert")
        with ui.tab_panels(tabs, value=library_tab).classes("w-full lp-tab-panels"):
            with ui.tab_panel(library_tab).classes("p-0 gap-4"):
                LibraryView(user).build()
            with ui.tab_panel(convert_tab).classes("p-0 gap-4"):
                ConvertView(user, _no_messages).build()


@router.page("/prompts/new")
def new_prompt_page(request: Request) -> None:
    EditorView(page_user(request), None).build()


@router.page("/prompts/{prompt_id}")
def prompt_page(request: Request, prompt_id: int) -> None:
    EditorView(page_user(request), prompt_id).build()


async def _no_messages() -> list[dict[str, str]]:
    return []


# --- the library --------------------------------------------------------------------------------------------------


class LibraryView:
    def __init__(self, user: User) -> None:
        self.user = user
        self.search = ""

    def build(self) -> None:
        with ui.row().classes("w-full items-center gap-2"):
            ui.input(placeholder=_("Search names, descriptions and tags"), on_change=self._search_changed).props(
                'dense outlined clearable debounce=300').classes("grow").mark("prompt-search")
            ui.button(_("New prompt"), icon="add", on_click=lambda: ui.navigate.to("/prompts/new")).props(
                "unelevated color=primary").mark("new-prompt")
            with ui.button(icon="more_vert").props(f'flat round aria-label="{_("More")}"').mark("library-menu"):
                with ui.menu():
                    ui.menu_item(_("Import JSON or YAML…"), on_click=self._import_dialog).mark("import")
                    ui.menu_item(_("Export as JSON"), on_click=lambda: self._export("json")).mark("export-json")
                    ui.menu_item(_("Export as YAML"), on_click=lambda: self._export("yaml")).mark("export-yaml")
        self.box = ui.column().classes("w-full gap-3")
        self._show(query(prompts.list_prompts, user=self.user))

    async def refresh(self) -> None:
        self._show(await call(prompts.list_prompts, user=self.user, q=self.search or None))

    async def _search_changed(self, event: Any) -> None:
        self.search = (event.value or "").strip()
        await self.refresh()

    def _show(self, items: list[Any]) -> None:
        self.box.clear()
        with self.box:
            if not items:
                with ui.card().classes("w-full items-center p-8 gap-2").mark("no-prompts"):
                    ui.icon("description", size="3rem").classes("text-secondary")
                    if self.search:
                        ui.label(_("No prompts match.")).classes("text-h6")
                    else:
                        ui.label(_("No prompts yet")).classes("text-h6")
                        ui.label(_("A prompt is a set of messages with {{ variables }}: save it once, version it, "
                                   "share it, and try it on any model.")).classes("text-secondary text-center")
                        ui.button(_("Write your first prompt"), icon="add",
                                  on_click=lambda: ui.navigate.to("/prompts/new")).props("flat color=primary")
                return
            mine = [p for p in items if p.owner_id == self.user.id]
            others = [p for p in items if p.owner_id != self.user.id]
            for title, group in ((_("My prompts"), mine), (_("Shared with me"), others)):
                if not group:
                    continue
                ui.label(title).classes("text-subtitle1 text-weight-medium")
                with ui.element("div").classes("lp-prompt-grid w-full"):
                    for item in group:
                        prompt_card(name=item.name, description=item.description, tags=item.tags,
                                    version=item.version, labels=item.labels, shared=item.shared,
                                    owner=item.owner if item.owner_id != self.user.id else None,
                                    on_open=functools.partial(ui.navigate.to, f"/prompts/{item.id}")).mark(
                            f"prompt-{item.id}")

    async def _export(self, format: str) -> None:
        filename, content = await call(prompts.export_library, user=self.user, format=format)
        ui.download.content(content.encode(), filename, "application/json" if format == "json" else "application/yaml")

    async def _import_dialog(self) -> None:
        with ui.dialog() as dialog, ui.card().classes("lp-dialog w-full max-w-lg gap-3"):
            ui.label(_("Import prompts")).classes("text-h6")
            ui.label(_("A JSON or YAML file exported from a portal. Prompts with a new name are created; a prompt "
                       "named like one of yours gets a new version when it differs.")).classes(
                "text-secondary text-body2")

            async def uploaded(event: Any) -> None:
                data = await event.file.read()
                dialog.submit(data.decode("utf-8", errors="replace"))

            ui.upload(label=_("Choose a file"), auto_upload=True, on_upload=uploaded, max_file_size=5_000_000).props(
                'accept=".json,.yaml,.yml" flat bordered').classes("w-full").mark("import-file")
            pasted = ui.textarea(_("Or paste it here")).props("outlined autogrow").classes("w-full lp-mono").mark(
                "import-text")
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button(_("Cancel"), on_click=lambda: dialog.submit(None)).props("flat")
                ui.button(_("Import"), on_click=lambda: dialog.submit(pasted.value or "")).props(
                    "unelevated color=primary").mark("import-ok")
        content = await dialog
        dialog.delete()
        if not content:
            return
        try:
            result = await call(prompts.import_library, user=self.user, content=content)
        except DomainError as error:
            show_error(error)
            return
        ui.notify(_("Imported: {created} new, {updated} updated, {unchanged} unchanged",
                    created=len(result.created), updated=len(result.updated), unchanged=len(result.unchanged)),
                  type="positive", position="top")
        await self.refresh()


# --- one prompt ---------------------------------------------------------------------------------------------------


class EditorView:
    """A prompt's editor (its owner's; read-only for others), with Playground, Versions and Convert tabs."""

    def __init__(self, user: User, prompt_id: int | None) -> None:
        self.user = user
        self.prompt_id = prompt_id
        self.prompt: PromptPublic | None = None
        self.specs: list[dict[str, Any]] = []

    @property
    def editable(self) -> bool:
        return self.prompt is None or self.prompt.owner_id == self.user.id or self.user.role == Role.admin

    def build(self) -> None:
        use_prompt_assets()
        use_chat_assets()
        if self.prompt_id is not None:
            try:
                self.prompt = query(prompts.read_prompt, user=self.user, prompt_id=self.prompt_id)
            except DomainError as error:
                with frame(_("Prompts")):
                    with ui.card().classes("w-full items-center p-8 gap-2"):
                        ui.icon("search_off", size="3rem").classes("text-secondary")
                        ui.label(error_text(error)).classes("text-h6")
                        ui.button(_("Back to the library"), on_click=lambda: ui.navigate.to("/prompts")).props("flat")
                return
        models = query(providers.list_models)
        title = self.prompt.name if self.prompt else _("New prompt")
        with frame(title):
            self._header()
            with ui.card().classes("w-full gap-3"):
                self._details()
                ui.label(_("Messages")).classes("text-subtitle1 text-weight-medium")
                messages = [m.model_dump() for m in self.prompt.messages] if self.prompt else STARTER
                self.editor = MessagesEditor(messages, on_change=self._messages_changed, readonly=not self.editable)
                self.template_error = ui.label().classes("text-negative text-caption").mark("template-error")
                ui.label(_("Variables")).classes("text-subtitle1 text-weight-medium")
                self.variables = VariablesEditor(readonly=not self.editable)
                if self.editable:
                    with ui.row().classes("w-full items-center gap-2"):
                        self.note = ui.input(_("What changed (optional)")).props("dense outlined").classes(
                            "grow").mark("version-note")
                        ui.button(_("Save"), icon="save", on_click=self.save).props(
                            "unelevated color=primary").mark("save-prompt")
            with ui.tabs().classes("lp-tabs w-full").props("align=left dense no-caps") as tabs:
                play_tab = ui.tab("playground", label=_("Playground"), icon="play_circle").mark("tab-playground")
                versions_tab = ui.tab("versions", label=_("Versions"), icon="history").mark("tab-versions")
                convert_tab = ui.tab("convert", label=_("Convert"), icon="swap_horiz").mark("tab-convert")
            with ui.tab_panels(tabs, value=play_tab).classes("w-full lp-tab-panels"):
                with ui.tab_panel(play_tab).classes("p-0 gap-4"):
                    self.playground = PlaygroundView(self.user, models, self)
                    self.playground.build()
                with ui.tab_panel(versions_tab).classes("p-0 gap-4"):
                    self.versions = VersionsView(self.user, self)
                    self.versions.build()
                with ui.tab_panel(convert_tab).classes("p-0 gap-4"):
                    ConvertView(self.user, self.rendered_for_convert).build()

            async def tab_changed(event: Any) -> None:
                if event.value == "versions":
                    await self.versions.refresh()

            tabs.on_value_change(tab_changed)
        self.specs = [v.model_dump() for v in self.prompt.variables] if self.prompt else []
        self._messages_changed()

    def _header(self) -> None:
        with ui.row().classes("w-full items-center gap-2"):
            ui.button(_("Library"), icon="arrow_back", on_click=lambda: ui.navigate.to("/prompts")).props(
                "flat dense").mark("back")
            ui.space()
            if self.prompt is None:
                return
            self.version_badge = ui.badge(_("version {n}", n=self.prompt.version)).props(
                "outline color=primary").mark("current-version")
            if not self.editable:
                ui.label(_("Shared by {name}: read only", name=self.prompt.owner)).classes("text-secondary")
            ui.button(_("Make a copy"), icon="content_copy", on_click=self._copy).props("flat dense").mark("copy")
            if self.editable:
                ui.button(icon="delete_outline", on_click=self._delete).props(
                    f'flat round dense color=negative aria-label="{_("Delete")}"').mark("delete-prompt").tooltip(
                    _("Delete"))

    def _details(self) -> None:
        prompt = self.prompt
        with ui.row().classes("w-full items-start gap-3"):
            self.name = ui.input(_("Name"), value=prompt.name if prompt else "").props("outlined dense").classes(
                "grow").mark("prompt-name")
            self.tags = ui.input_chips(_("Tags"), value=list(prompt.tags) if prompt else []).props(
                "outlined dense").classes("grow").mark("prompt-tags")
        self.description = ui.input(_("Description"), value=(prompt.description or "") if prompt else "").props(
            "outlined dense").classes("w-full").mark("prompt-description")
        self.shared = ui.switch(_("Shared with everyone (others may read, try and copy it)"),
                                value=prompt.shared if prompt else False).mark("prompt-shared")
        if not self.editable:
            for element in (self.name, self.tags, self.description, self.shared):
                element.disable()

    # --- the template -------------------------------------------------------------------------------------------

    def _messages_changed(self) -> None:
        """Find the variables again (as the user types): the type rows and the playground follow."""
        try:
            self.specs = variable_specs([m["content"] for m in self.editor.value], self._known_specs())
        except Invalid as error:
            self.template_error.set_text(error_text(error))
            return
        self.template_error.set_text("")
        self.variables.show(self.specs)
        self.playground.values.show(self.specs)

    def _known_specs(self) -> list[dict[str, Any]]:
        """What is set for the variables still in the messages (from the rows, or as saved before any rows)."""
        names = set(self._names())
        source = self.variables.known() if self.variables.memory else self.specs
        return [s for s in source if s["name"] in names]

    def _names(self) -> list[str]:
        try:
            return [s["name"] for s in variable_specs([m["content"] for m in self.editor.value], None)]
        except Invalid:
            return []

    def draft(self) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
        return self.editor.value, self.variables.specs()

    async def save(self) -> None:
        messages, specs = self.draft()
        try:
            if self.prompt is None:
                created = await call(prompts.create_prompt, user=self.user, data=PromptCreate(
                    name=self.name.value or "", description=self.description.value or None,
                    tags=list(self.tags.value or []), shared=bool(self.shared.value),
                    messages=[PromptMessage(**m) for m in messages], variables=[VariableSpec(**s) for s in specs],
                    note=self.note.value or None))
                ui.navigate.to(f"/prompts/{created.id}")
                return
            before = self.prompt.version
            await call(prompts.update_prompt, user=self.user, prompt_id=self.prompt.id, data=PromptUpdate(
                name=self.name.value or "", description=self.description.value or "",
                tags=list(self.tags.value or []), shared=bool(self.shared.value),
                messages=[PromptMessage(**m) for m in messages], variables=[VariableSpec(**s) for s in specs],
                note=self.note.value or None))
        except DomainError as error:
            show_error(error)
            return
        await self.reload()
        assert self.prompt is not None
        if self.prompt.version != before:
            ui.notify(_("Saved as version {n}", n=self.prompt.version), type="positive", position="top")
        else:
            ui.notify(_("Saved (the messages did not change: still version {n})", n=self.prompt.version),
                      position="top")
        self.note.set_value("")

    async def reload(self) -> None:
        assert self.prompt is not None
        self.prompt = await call(prompts.read_prompt, user=self.user, prompt_id=self.prompt.id)
        self.variables.forget()
        self.specs = [v.model_dump() for v in self.prompt.variables]
        self.editor.set_messages([m.model_dump() for m in self.prompt.messages])
        self._messages_changed()
        self.version_badge.set_text(_("version {n}", n=self.prompt.version))
        if self.versions.shown:  # else it is read when its tab opens
            await self.versions.refresh()

    async def _copy(self) -> None:
        if self.prompt is None:
            return
        try:
            copy = await call(prompts.copy_prompt, user=self.user, prompt_id=self.prompt.id)
        except DomainError as error:
            show_error(error)
            return
        ui.navigate.to(f"/prompts/{copy.id}")

    async def _delete(self) -> None:
        if self.prompt is None:
            return
        if not await confirm(_("Delete this prompt and all its versions?"), ok=_("Delete")):
            return
        try:
            await call(prompts.delete_prompt, user=self.user, prompt_id=self.prompt.id)
        except DomainError as error:
            show_error(error)
            return
        ui.navigate.to("/prompts")

    async def render(self) -> list[dict[str, str]] | None:
        """The draft (saved or not) with the playground's values; None after showing why it failed."""
        messages, specs = self.draft()
        try:
            return await run.io_bound(prompts.render_draft, messages=messages,
                                      variables=[VariableSpec(**s) for s in specs],
                                      values=self.playground.values.values())
        except DomainError as error:
            show_error(error)
            return None

    async def rendered_for_convert(self) -> list[dict[str, str]]:
        return await self.render() or []


# --- the playground -----------------------------------------------------------------------------------------------


class PlaygroundView:
    def __init__(self, user: User, models: list[ModelPublic], editor: EditorView) -> None:
        self.user = user
        self.models = models
        self.editor = editor
        self.run: prompts.PlaygroundRun | None = None
        self.listener: asyncio.Task[None] | None = None

    def build(self) -> None:
        ui.context.client.on_delete(self.close)  # the page was closed: an answer nobody reads is not paid for
        with ui.card().classes("w-full gap-3"):
            ui.label(_("Fill in the variables, then preview the messages or run them on a model. The playground uses "
                       "what is in the editor, saved or not.")).classes("text-secondary text-body2")
            self.values = ValuesForm().mark("playground-values")
            options = {m.id: f"{m.name} · {m.provider}" for m in self.models}
            chosen = app.storage.user.get(MODEL_KEY)
            if chosen not in options:
                chosen = next(iter(options), None)
            with ui.row().classes("w-full items-center gap-2"):
                self.model = ui.select(options, value=chosen, label=_("Model"), with_input=True,
                                       on_change=self._model_changed).props("outlined dense options-dense").classes(
                    "grow").mark("playground-model")
                self.temperature = ui.number(_("Temperature"), min=0, max=2, step=0.1, format="%.2f").props(
                    "outlined dense clearable").classes("w-32").mark("playground-temperature")
            if not options:
                ui.label(_("No models are available yet: an administrator adds providers and enables models. "
                           "You can still preview the rendered messages.")).classes("text-caption text-warning")
            with ui.row().classes("w-full items-center gap-2"):
                ui.button(_("Preview"), icon="visibility", on_click=self.preview).props("outline color=primary").mark(
                    "preview")
                self.run_button = ui.button(_("Run"), icon="play_arrow", on_click=self.start).props(
                    "unelevated color=primary").mark("run-prompt")
                self.stop_button = ui.button(_("Stop"), icon="stop", on_click=self.stop).props(
                    "flat color=negative").mark("stop-prompt")
                self.stop_button.set_visibility(False)
                ui.space()
                ui.button(_("Open in chat"), icon="chat", on_click=self.open_in_chat).props("flat").mark("open-chat")
                ui.button(_("Open in compare"), icon="compare_arrows", on_click=self.open_in_compare).props(
                    "flat").mark("open-compare")
            if not options:
                for button in (self.run_button,):
                    button.disable()
        self.rendered = ui.column().classes("w-full gap-2").mark("rendered")
        self.answer_box = ui.column().classes("w-full gap-2")

    def _model_changed(self, event: Any) -> None:
        if event.value:
            app.storage.user[MODEL_KEY] = event.value

    async def preview(self) -> list[dict[str, str]] | None:
        messages = await self.editor.render()
        if messages is None:
            return None
        self.rendered.clear()
        with self.rendered, ui.card().classes("w-full gap-2"):
            ui.label(_("Rendered messages")).classes("text-subtitle2")
            for message in messages:
                with ui.column().classes("lp-rendered w-full gap-0"):
                    ui.label(_(ROLE_LABELS[message["role"]])).classes(
                        "text-caption text-secondary text-weight-medium")
                    ui.label(message["content"]).classes("lp-prewrap text-body2")
        return messages

    async def start(self) -> None:
        messages = await self.preview()
        if messages is None:
            return
        temperature = self.temperature.value
        try:
            self.run = await prompts.start_run(user=self.user, messages=messages, model=self.model.value or "",
                                               params={"temperature": temperature})
        except (DomainError, ProviderError) as error:
            show_error(error)
            return
        if self.listener is not None:
            self.listener.cancel()
        self.answer_box.clear()
        with self.answer_box, ui.card().classes("w-full gap-2"):
            ui.label(_("Answer of {model}", model=self.run.model)).classes("text-subtitle2")
            view = AnswerView(streaming=True).mark("playground-answer")
        self._running(True)
        self.listener = background_tasks.create(self._follow(self.run, view))

    async def _follow(self, live: prompts.PlaygroundRun, view: AnswerView) -> None:
        try:
            await view.follow(live.events())
            metrics = live.metrics
            view.finish(status=live.status, model=live.model, output_tokens=metrics.output_tokens or None,
                        ttft_ms=metrics.ttft_ms, total_ms=metrics.total_ms, reasoning_ms=live.reasoning_ms())
            view.show_outcome(live.status, live.error, error_marker="playground-error")
        finally:
            if self.run is live:
                self._running(False)

    def _running(self, running: bool) -> None:
        self.run_button.set_visibility(not running)
        self.stop_button.set_visibility(running)

    async def stop(self) -> None:
        if self.run is not None:
            self.run.cancel()

    def close(self) -> None:
        if self.run is not None:
            self.run.cancel()
        if self.listener is not None:
            self.listener.cancel()

    async def open_in_chat(self) -> None:
        messages = await self.editor.render()
        if messages is None:
            return
        title = self.editor.prompt.name if self.editor.prompt else None
        try:
            conversation_id = await prompts.open_in_chat(user=self.user, messages=messages,
                                                         model=self.model.value or "", title=title)
        except (DomainError, ProviderError) as error:
            show_error(error)
            return
        ui.navigate.to(f"/chat/{conversation_id}")

    async def open_in_compare(self) -> None:
        messages = await self.editor.render()
        if messages is None:
            return
        try:
            carried, dropped = prompts.compare_handoff(messages)
        except DomainError as error:
            show_error(error)
            return
        if dropped and not await confirm(_("Compare sends one prompt without a history: only the system prompt and "
                                           "the last user message go there. Continue?"), ok=_("Continue")):
            return
        app.storage.user[HANDOFF_KEY] = carried
        ui.navigate.to("/compare")



# --- versions -----------------------------------------------------------------------------------------------------


class VersionsView:
    def __init__(self, user: User, editor: EditorView) -> None:
        self.user = user
        self.editor = editor
        self.shown = False

    def build(self) -> None:
        self.box = ui.column().classes("w-full gap-3")
        with self.box:
            ui.label(_("Save the prompt to start its history.")).classes("text-secondary")

    async def refresh(self) -> None:
        prompt = self.editor.prompt
        if prompt is None:
            return
        self.shown = True
        try:
            versions = await call(prompts.list_versions, user=self.user, prompt_id=prompt.id)
        except DomainError as error:
            show_error(error)
            return
        numbers = [v.version for v in versions]
        self.box.clear()
        with self.box:
            with ui.card().classes("w-full gap-2"):
                ui.label(_("Compare two versions")).classes("text-subtitle2")
                with ui.row().classes("w-full items-center gap-2"):
                    older = ui.select(numbers, value=numbers[1] if len(numbers) > 1 else numbers[0],
                                      label=_("From")).props("outlined dense").classes("w-28").mark("diff-from")
                    newer = ui.select(numbers, value=numbers[0], label=_("To")).props("outlined dense").classes(
                        "w-28").mark("diff-to")
                    ui.button(_("Show the differences"), icon="difference",
                              on_click=lambda: self._diff(int(older.value), int(newer.value))).props(
                        "outline color=primary").mark("show-diff")
                self.diff_box = ui.column().classes("w-full")
            if self.editor.editable:
                with ui.card().classes("w-full gap-2"):
                    ui.label(_("Labels")).classes("text-subtitle2")
                    ui.label(_("A label such as production names one version; applications render by label, and "
                               "moving the label changes what they get.")).classes("text-caption text-secondary")
                    with ui.row().classes("w-full items-center gap-2"):
                        label = ui.input(_("Label"), value="production").props("outlined dense").classes("w-40").mark(
                            "label-name")
                        target = ui.select(numbers, value=numbers[0], label=_("Version")).props(
                            "outlined dense").classes("w-28").mark("label-version")
                        ui.button(_("Set label"), icon="sell",
                                  on_click=lambda: self._label(label.value or "", int(target.value))).props(
                            "outline color=primary").mark("set-label")
            with ui.card().classes("w-full p-0"), ui.list().props("separator").classes("w-full"):
                for version in versions:
                    with ui.item().classes("w-full").mark(f"version-{version.version}"):
                        with ui.item_section():
                            with ui.row().classes("items-center gap-2"):
                                ui.label(_("Version {n}", n=version.version)).classes("text-weight-medium")
                                for name in version.labels:
                                    chip = ui.chip(name, icon="sell", color="positive", text_color="white").props(
                                        "dense")
                                    if self.editor.editable:
                                        chip.props("removable").on(
                                            "remove", lambda n=name: self._unlabel(n)).mark(f"label-chip-{name}")
                            ui.item_label(" · ".join(part for part in (
                                version.note, version.author, format_time(version.created_at)) if part)).props(
                                "caption")
                        if self.editor.editable and version.version != prompt.version:
                            with ui.item_section().props("side"):
                                ui.button(_("Restore"), icon="restore",
                                          on_click=lambda n=version.version: self._restore(n)).props(
                                    "flat dense").mark(f"restore-{version.version}")

    async def _diff(self, older: int, newer: int) -> None:
        prompt = self.editor.prompt
        assert prompt is not None
        result = await call(prompts.diff_versions, user=self.user, prompt_id=prompt.id, from_version=older,
                            to_version=newer)
        self.diff_box.clear()
        with self.diff_box:
            if not result.diff:
                ui.label(_("The two versions are the same.")).classes("text-secondary")
            else:
                diff_view(result.diff).mark("diff")

    async def _label(self, label: str, version: int) -> None:
        prompt = self.editor.prompt
        assert prompt is not None
        try:
            await call(prompts.set_label, user=self.user, prompt_id=prompt.id, label=label, version=version)
        except DomainError as error:
            show_error(error)
            return
        ui.notify(_("{label} now points at version {n}", label=label.strip().lower(), n=version), position="top",
                  type="positive")
        await self.refresh()

    async def _unlabel(self, label: str) -> None:
        prompt = self.editor.prompt
        assert prompt is not None
        try:
            await call(prompts.remove_label, user=self.user, prompt_id=prompt.id, label=label)
        except DomainError as error:
            show_error(error)
        await self.refresh()
        await self.refresh()

    async def _restore(self, version: int) -> None:
        prompt = self.editor.prompt
        assert prompt is not None
        try:
            await call(prompts.restore_version, user=self.user, prompt_id=prompt.id, version=version)
        except DomainError as error:
            show_error(error)
            return
        await self.editor.reload()
        restored = self.editor.prompt.version if self.editor.prompt else version
        ui.notify(_("Version {old} restored as version {n}", old=version, n=restored),
                  type="positive", position="top")


# --- conversion ---------------------------------------------------------------------------------------------------


class ConvertView:
    """Paste a conversation in one format, get it in another, with what was lost; and a local tokenizer's chat
    template applied to the messages."""

    def __init__(self, user: User, source: Any) -> None:
        self.user = user
        self.source = source  # async () -> rendered messages of the open prompt (none on the library page)

    def build(self) -> None:
        with ui.card().classes("w-full gap-3"):
            with ui.row().classes("w-full items-center gap-2"):
                self.from_format = ui.select(FORMAT_LABELS, value="openai", label=_("From")).props(
                    "outlined dense").classes("w-36").mark("convert-from")
                ui.icon("arrow_forward").classes("text-secondary")
                self.to_format = ui.select(FORMAT_LABELS, value="anthropic", label=_("To")).props(
                    "outlined dense").classes("w-36").mark("convert-to")
                ui.button(_("Convert"), icon="swap_horiz", on_click=self.convert).props(
                    "unelevated color=primary").mark("convert")
                ui.button(_("Use the rendered prompt"), icon="input", on_click=self.fill).props("flat").mark(
                    "convert-fill")
            self.input = ui.textarea(_("Input (JSON; plain text for Text)")).props("outlined autogrow").classes(
                "w-full lp-mono").mark("convert-input")
            self.warnings = ui.column().classes("w-full gap-1")
            self.output = ui.column().classes("w-full")
        with ui.card().classes("w-full gap-2"):
            ui.label(_("Chat template preview")).classes("text-subtitle2")
            ui.label(_("The exact text a local model receives: its tokenizer's chat template applied to the messages "
                       "above (as OpenAI messages). Give a local model directory or a model id from the local "
                       "Hugging Face cache; nothing is downloaded.")).classes("text-caption text-secondary")
            with ui.row().classes("w-full items-center gap-2"):
                self.model_dir = ui.input(_("Model directory")).props("outlined dense").classes("grow").mark(
                    "template-model")
                ui.button(_("Preview"), icon="visibility", on_click=self.template_preview).props(
                    "outline color=primary").mark("template-preview")
            self.template_box = ui.column().classes("w-full")
            if not prompt_formats.transformers_available():
                ui.label(_("Not available on this server: the transformers package is not installed.")).classes(
                    "text-caption text-warning").mark("no-transformers")

    async def fill(self) -> None:
        messages = await self.source()
        if not messages:
            ui.notify(_("Open a prompt to use its rendered messages"), position="top")
            return
        self.from_format.set_value("openai")
        self.input.set_value(json.dumps({"messages": messages}, ensure_ascii=False, indent=2))

    def _data(self, format: str) -> Any:
        text = self.input.value or ""
        if format == "text":
            return text
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            try:  # YAML is a superset of JSON and forgives what people paste
                return yaml.safe_load(text)
            except yaml.YAMLError as error:
                raise Invalid("The input is not JSON: {error}", error=str(error).splitlines()[0]) from None

    async def convert(self) -> None:
        self.warnings.clear()
        self.output.clear()
        try:
            data, losses = prompt_formats.convert(source=self.from_format.value, target=self.to_format.value,
                                                  data=self._data(self.from_format.value))
        except DomainError as error:
            show_error(error)
            return
        with self.warnings:
            for loss in losses:
                with ui.row().classes("items-center gap-2 no-wrap").mark("convert-warning"):
                    ui.icon("warning_amber", color="warning")
                    ui.label(loss.text(page_language())).classes("text-body2")
        with self.output:
            text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, indent=2)
            code_block(text).mark("convert-output")

    async def template_preview(self) -> None:
        self.template_box.clear()
        try:
            messages, _losses = prompt_formats.to_messages(self.from_format.value,
                                                           self._data(self.from_format.value))
            text = await run.io_bound(prompt_formats.chat_template_preview, user=self.user,
                                      model_dir=self.model_dir.value or "",
                                      messages=messages)
        except DomainError as error:
            with self.template_box:
                ui.label(error_text(error)).classes("text-negative text-body2").mark("template-preview-error")
            return
        with self.template_box:
            code_block(text or "").mark("template-output")
