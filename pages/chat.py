"""The Chat page: the user's conversations beside the open one, answers streaming in with their reasoning.

An answer is written by a task of its own in `backend.services.chat`; this page only listens to it. Leaving the
page, or opening another conversation, stops the listening, not the answer.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from nicegui import APIRouter, app, background_tasks, ui

from backend.errors import DomainError
from backend.models.chat import ConversationCreate, ConversationPublic, ConversationUpdate, MessagePublic
from backend.models.provider import ModelPublic
from backend.models.user import Role, User
from backend.providers.base import ProviderError
from backend.services import chat, providers
from pages.guard import page_user
from pages.service import call, query, show_error
from ui.chat import AnswerView, copy_to_clipboard, group_by_date, use_chat_assets
from ui.frame import frame
from ui.i18n import _
from ui.widgets import confirm

router = APIRouter()

LAST_MODEL_KEY = "chat_model"  # in the user's storage: a new conversation starts with the model used last
SEND_ON_ENTER = "(e) => { if (e.isComposing || e.keyCode === 229) return; e.preventDefault(); emit(); }"


@router.page("/chat")
def chat_page(request: Request) -> None:
    ChatView(page_user(request)).build(None)


@router.page("/chat/{conversation_id}")
def conversation_page(request: Request, conversation_id: int) -> None:
    ChatView(page_user(request)).build(conversation_id)


class ChatView:
    def __init__(self, user: User) -> None:
        self.user = user
        self.conversation_id: int | None = None
        self.conversation: ConversationPublic | None = None
        self.model: str | None = app.storage.user.get(LAST_MODEL_KEY)
        self.system_prompt: str | None = None  # of a conversation not created yet
        self.params: dict[str, Any] = {}
        self.search = ""
        self.listener: asyncio.Task[None] | None = None
        self.streaming = False
        self.sending = False  # a message on its way: a second Enter meanwhile is not a second message

    # --- layout -----------------------------------------------------------------------------------------------

    def build(self, conversation_id: int | None) -> None:
        models = query(providers.list_models)
        use_chat_assets()
        with frame(_("Chat"), fill=True), ui.row().classes("lp-chat w-full no-wrap gap-0"):
            with ui.column().classes("lp-chat-list gap-2 p-3") as self.sidebar:
                ui.button(_("New chat"), icon="add", on_click=self.new_chat).props(
                    "unelevated color=primary").classes("w-full").mark("new-chat")
                ui.input(placeholder=_("Search conversations"), on_change=self._search_changed).props(
                    'dense outlined clearable debounce=300 aria-label="Search conversations"').classes(
                    "w-full").mark("chat-search")
                self.list_box = ui.column().classes("w-full gap-0 lp-chat-items")
            with ui.column().classes("lp-chat-main grow gap-0"):
                self._toolbar(models)
                with ui.element("div").classes("lp-messages lp-autoscroll w-full grow"):
                    self.messages = ui.column().classes("lp-messages-inner w-full gap-4")
                self._composer(bool(models))
        ui.context.client.on_delete(self._stop_listening)
        self._show_list(query(chat.list_conversations, user=self.user))
        if conversation_id is not None:
            running = chat.running_reply(conversation_id)  # before reading: see `_show`
            try:
                conversation = query(chat.read_conversation, user=self.user, conversation_id=conversation_id)
            except DomainError as error:
                show_error(error)
                ui.navigate.history.replace("/chat")
            else:
                self._show(conversation, running)
                return
        self._show_empty(models)

    def _toolbar(self, models: list[ModelPublic]) -> None:
        with ui.row().classes("lp-chat-toolbar w-full items-center gap-2 px-3 py-2 no-wrap"):
            ui.button(icon="forum", on_click=lambda: self.sidebar.classes(toggle="lp-open")).props(
                f'flat round dense aria-label="{_("Conversations")}"').classes("lp-list-toggle").mark("show-list")
            self.title = ui.label(_("New chat")).classes("lp-chat-title text-subtitle1 text-weight-medium")
            ui.space()
            options = {m.id: f"{m.name} · {m.provider}" for m in models}
            if self.model not in options:
                self.model = models[0].id if models else None
            self.picker = ui.select(options, value=self.model, with_input=True, on_change=self._model_changed).props(
                f'dense outlined options-dense aria-label="{_("Model")}"').classes("lp-model-picker").mark(
                "model-picker")
            self.picker.tooltip(_("Model"))
            self.settings_button = ui.button(icon="tune", on_click=self._edit_settings).props(
                f'flat round dense aria-label="{_("Settings")}"').mark("chat-settings")
            self.settings_button.tooltip(_("System prompt and parameters"))
            with ui.button(icon="more_vert").props(f'flat round dense aria-label="{_("More")}"').mark(
                    "chat-menu") as self.menu_button, ui.menu():
                ui.menu_item(_("Rename"), on_click=self._rename).mark("rename")
                ui.menu_item(_("Export as Markdown"), on_click=lambda: self._export("md")).mark("export-md")
                ui.menu_item(_("Export as JSON"), on_click=lambda: self._export("json")).mark("export-json")
                ui.separator()
                ui.menu_item(_("Delete"), on_click=self._delete).classes("text-negative").mark("delete-conversation")

    def _composer(self, has_models: bool) -> None:
        with ui.column().classes("lp-composer w-full gap-1 px-3 pb-3 pt-1"):
            with ui.row().classes("w-full items-end gap-2 no-wrap"):
                self.input = ui.textarea(placeholder=_("Message")).props(
                    f'autogrow outlined dense rows=1 aria-label="{_("Message")}"').classes("grow lp-input").mark(
                    "composer")
                # Enter sends; Shift+Enter (not "exact") keeps its default: a new line. An Enter that confirms an
                # input method's composition (Chinese, Japanese...) is the IME's, not a send.
                self.input.on("keydown.enter.exact", self.send, js_handler=SEND_ON_ENTER)
                self.send_button = ui.button(icon="send", on_click=self.send).props(
                    f'round unelevated color=primary aria-label="{_("Send")}"').mark("send")
                self.stop_button = ui.button(icon="stop", on_click=self.stop).props(
                    f'round unelevated color=negative aria-label="{_("Stop")}"').mark("stop")
                self.stop_button.tooltip(_("Stop the answer (what came is kept)"))
                self.stop_button.set_visibility(False)
            ui.label(_("Enter sends, Shift+Enter starts a new line")).classes("lp-hint text-caption text-secondary")
        if not has_models:
            self.input.disable()
            self.send_button.disable()

    # --- the conversation list --------------------------------------------------------------------------------

    def _show_list(self, conversations: list[Any]) -> None:
        self.list_box.clear()
        with self.list_box:
            if not conversations:
                ui.label(_("No conversations match.") if self.search else _("No conversations yet.")).classes(
                    "text-caption text-secondary px-2 py-1")
            now = datetime.now(UTC)
            for label, items in group_by_date(((c.updated_at, c) for c in conversations), now=now):
                ui.label(_(label)).classes("lp-group-label text-caption text-secondary px-2 pt-2")
                for conversation in items:
                    item = ui.item(on_click=lambda c=conversation: self.open(c.id)).classes("lp-chat-item w-full")
                    if conversation.id == self.conversation_id:
                        item.classes("lp-chat-item-active")
                    with item.mark(f"conversation-{conversation.id}"), ui.item_section():
                        ui.item_label(conversation.title).classes("ellipsis")

    async def refresh_list(self) -> None:
        conversations = await call(chat.list_conversations, user=self.user, q=self.search or None)
        self._show_list(conversations)

    async def _search_changed(self, event: Any) -> None:
        self.search = (event.value or "").strip()
        await self.refresh_list()

    # --- opening a conversation -------------------------------------------------------------------------------

    async def open(self, conversation_id: int) -> None:
        self.sidebar.classes(remove="lp-open")
        running = chat.running_reply(conversation_id)  # before reading: see `_show`
        try:
            conversation = await call(chat.read_conversation, user=self.user, conversation_id=conversation_id)
        except DomainError as error:
            show_error(error)
            await self.refresh_list()
            return
        ui.navigate.history.replace(f"/chat/{conversation_id}")
        self._show(conversation, running)
        await self.refresh_list()

    async def _reopen(self) -> None:
        if self.conversation_id is not None:
            await self.open(self.conversation_id)

    async def new_chat(self) -> None:
        self.sidebar.classes(remove="lp-open")
        self._stop_listening()
        self.conversation_id, self.conversation = None, None
        self.system_prompt, self.params = None, {}
        ui.navigate.history.replace("/chat")
        self._show_empty(None)
        self.input.run_method("focus")
        await self.refresh_list()

    def _show_empty(self, models: list[ModelPublic] | None) -> None:
        self._set_streaming(False)
        self.title.set_text(_("New chat"))
        self.menu_button.disable()
        self.messages.clear()
        with self.messages, ui.column().classes("lp-chat-empty w-full items-center gap-2"):
            ui.icon("forum", size="3rem").classes("text-primary opacity-60")
            if models is not None and not models:
                ui.label(_("No models are available yet.")).classes("text-h6")
                hint = (_("Add a provider on the Models page, then come back.") if self.user.role == Role.admin
                        else _("An administrator adds providers and enables models; then you can chat here."))
                ui.label(hint).classes("text-secondary text-center")
                if self.user.role == Role.admin:
                    ui.button(_("Go to Models"), on_click=lambda: ui.navigate.to("/models")).props("flat")
            else:
                ui.label(_("Start a conversation")).classes("text-h6")
                ui.label(_("Ask anything. Answers stream in, and a reasoning model's thinking shows above its "
                           "answer.")).classes("text-secondary text-center")

    def _show(self, conversation: ConversationPublic, running: chat.Reply | None) -> None:
        """Show a conversation as read. `running` is the answer being written in it, looked up *before* reading: an
        answer that finished in between is still followed to its end (its events are all kept), whereas one looked
        up after the reading could be gone while the row read still says "streaming"."""
        self._stop_listening()
        self.conversation, self.conversation_id = conversation, conversation.id
        self.title.set_text(conversation.title)
        self.menu_button.enable()
        if conversation.model and conversation.model in self.picker.options:
            self.model = conversation.model
            self.picker.set_value(conversation.model)
        self.messages.clear()
        self._set_streaming(False)
        # The one looked up before reading, and any started since (its row was read too).
        live = {r.message_id: r for r in (running, chat.running_reply(conversation.id)) if r is not None}
        with self.messages:
            if conversation.system_prompt:
                with ui.row().classes("lp-system w-full items-start gap-2 no-wrap").mark("system-note"):
                    ui.icon("tune", size="1rem").classes("text-secondary q-mt-xs")
                    ui.label(conversation.system_prompt).classes("text-caption text-secondary lp-prewrap")
            last = len(conversation.messages) - 1
            for index, message in enumerate(conversation.messages):
                if message.role == "user":
                    self._user_message(message)
                    continue
                reply = live.get(message.id) if message.status == "streaming" else None
                if reply is not None:
                    # The live answer replays every event from its first: start empty, or what was saved so far
                    # would show twice.
                    self._listen(reply, self._answer_view(message, live=True))
                else:
                    self._finished(self._answer_view(message), message, last=index == last)

    # --- messages ---------------------------------------------------------------------------------------------

    def _user_message(self, message: MessagePublic) -> None:
        with ui.column().classes("lp-user-turn w-full items-end gap-0") as turn:
            with ui.element("div").classes("lp-bubble lp-bubble-user"):
                ui.label(message.content).classes("lp-prewrap")
            with ui.row().classes("lp-actions gap-0"):
                self._action("content_copy", _("Copy"), lambda: copy_to_clipboard(message.content),
                             f"copy-{message.id}")
                self._action("edit", _("Edit and resend"), lambda: self._edit(turn, message), f"edit-{message.id}")

    def _edit(self, turn: ui.column, message: MessagePublic) -> None:
        if self.streaming:
            ui.notify(_("Wait for the answer to finish, or stop it"), position="top")
            return
        turn.clear()
        with turn, ui.column().classes("lp-edit w-full gap-2"):
            box = ui.textarea(value=message.content).props("autogrow outlined autofocus").classes("w-full").mark(
                "edit-box")
            ui.label(_("Sending replaces this message and everything after it.")).classes(
                "text-caption text-secondary")
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button(_("Cancel"), on_click=self._reopen).props("flat").mark("cancel-edit")
                ui.button(_("Send"), icon="send",
                          on_click=lambda: self._resend(message.id, box.value or "")).props(
                    "unelevated color=primary").mark("resend")

    def _answer_view(self, message: MessagePublic, *, live: bool = False) -> AnswerView:
        if live:
            view = AnswerView(streaming=True)
        else:
            view = AnswerView(text=message.content, reasoning=message.reasoning or "",
                              reasoning_ms=message.reasoning_ms, streaming=message.status == "streaming")
        view.mark(f"answer-{message.id}")
        if message.context_trimmed:
            view.show_note(_("{n} earlier messages were left out to fit the model's context.",
                             n=message.context_trimmed))
        return view

    def _finished(self, view: AnswerView, message: MessagePublic, *, last: bool) -> None:
        """An answer as it stays: metrics, what happened to it, and what can be done with it."""
        usage = message.usage or {}
        view.finish(status=message.status, model=message.model, output_tokens=usage.get("output_tokens"),
                    ttft_ms=message.ttft_ms, total_ms=message.total_ms, reasoning_ms=message.reasoning_ms,
                    text=message.content, reasoning=message.reasoning or "")
        view.show_outcome(message.status, message.error, retry=self.regenerate if last else None)
        view.actions.clear()
        with view.actions:
            self._action("content_copy", _("Copy"), lambda: copy_to_clipboard(view.text), f"copy-{message.id}")
            if last:
                self._action("refresh", _("Regenerate"), self.regenerate, "regenerate")

    @staticmethod
    def _action(icon: str, label: str, handler: Any, marker: str) -> None:
        ui.button(icon=icon, on_click=handler).props(f'flat round dense size=sm aria-label="{label}"').classes(
            "text-secondary").mark(marker).tooltip(label)

    # --- streaming --------------------------------------------------------------------------------------------

    def _listen(self, reply: chat.Reply, view: AnswerView) -> None:
        self._set_streaming(True)
        self.listener = background_tasks.create(self._follow(reply, view), name=f"chat-{reply.message_id}")

    async def _follow(self, reply: chat.Reply, view: AnswerView) -> None:
        try:
            final = await view.follow(reply.events())
            if final is not None:
                stored = getattr(final, "message", None) or MessagePublic(
                    id=reply.message_id, role="assistant", content=reply.answer, reasoning=reply.reasoning,
                    model=reply.model, usage=None, ttft_ms=None, total_ms=None, status=reply.status,
                    error=final.text or None, created_at=datetime.now(UTC))
                self._finished(view, stored, last=True)
        finally:
            if self.listener is asyncio.current_task():
                self.listener = None
                self._set_streaming(False)

    def _stop_listening(self) -> None:
        if self.listener is not None:
            self.listener.cancel()
            self.listener = None

    def _set_streaming(self, streaming: bool) -> None:
        self.streaming = streaming
        self.send_button.set_visibility(not streaming)
        self.stop_button.set_visibility(streaming)

    async def send(self) -> None:
        content = (self.input.value or "").strip()
        if not content or self.streaming or self.sending:
            return
        if not self.model:
            ui.notify(_("Choose a model first"), position="top", type="warning")
            return
        self.sending = True
        self.send_button.disable()
        try:
            await self._send(content)
        finally:
            self.sending = False
            self.send_button.enable()

    async def _send(self, content: str) -> None:
        conversation_id = self.conversation_id
        try:
            if conversation_id is None:
                created = await call(chat.create_conversation, user=self.user, data=ConversationCreate(
                    model=self.model, system_prompt=self.system_prompt, params=self.params))
                conversation_id = self.conversation_id = chat.summary(created).id
                ui.navigate.history.replace(f"/chat/{conversation_id}")
            await chat.start_reply(user=self.user, conversation_id=conversation_id, content=content, model=self.model)
        except (DomainError, ProviderError) as error:
            show_error(error)  # the text stays in the box: nothing typed is lost
            return
        self.input.set_value("")
        await self.open(conversation_id)

    async def _resend(self, message_id: int, content: str) -> None:
        if not content.strip() or self.conversation_id is None:
            return
        try:
            await chat.start_reply(user=self.user, conversation_id=self.conversation_id, content=content.strip(),
                                   model=self.model, edit_of=message_id)
        except (DomainError, ProviderError) as error:
            show_error(error)
            return
        await self.open(self.conversation_id)

    async def regenerate(self) -> None:
        if self.conversation_id is None:
            return
        try:
            await chat.regenerate_reply(user=self.user, conversation_id=self.conversation_id, model=self.model)
        except (DomainError, ProviderError) as error:
            show_error(error)
            return
        await self.open(self.conversation_id)

    async def stop(self) -> None:
        if self.conversation_id is not None:
            await chat.cancel_reply(user=self.user, conversation_id=self.conversation_id)

    # --- conversation settings --------------------------------------------------------------------------------

    async def _model_changed(self, event: Any) -> None:
        if not event.value or event.value == self.model:
            return
        self.model = event.value
        app.storage.user[LAST_MODEL_KEY] = event.value
        if self.conversation_id is not None:
            await self._update(ConversationUpdate(model=event.value))

    async def _update(self, data: ConversationUpdate) -> bool:
        try:
            conversation = await call(chat.update_conversation, user=self.user,
                                      conversation_id=self.conversation_id, data=data)
        except DomainError as error:
            show_error(error)
            return False
        self.title.set_text(conversation.title)
        return True

    async def _edit_settings(self) -> None:
        system_prompt = self.conversation.system_prompt if self.conversation else self.system_prompt
        params = dict(self.conversation.params if self.conversation else self.params)
        with ui.dialog() as dialog, ui.card().classes("lp-dialog w-full max-w-lg gap-3"):
            ui.label(_("System prompt and parameters")).classes("text-h6")
            prompt = ui.textarea(_("System prompt"), value=system_prompt or "").props(
                "outlined autogrow").classes("w-full").mark("system-prompt")
            ui.label(_("Leave a parameter empty to use the model's default.")).classes("text-caption text-secondary")
            with ui.row().classes("w-full gap-3 no-wrap"):
                temperature = ui.number(_("Temperature"), value=params.get("temperature"), min=0, max=2, step=0.1,
                                        format="%.2f").props("outlined dense clearable").classes("grow").mark(
                    "temperature")
                top_p = ui.number("top_p", value=params.get("top_p"), min=0, max=1, step=0.05, format="%.2f").props(
                    "outlined dense clearable").classes("grow").mark("top-p")
                max_tokens = ui.number(_("Max tokens"), value=params.get("max_tokens"), min=1, step=1,
                                       precision=0).props("outlined dense clearable").classes("grow").mark(
                    "max-tokens")
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button(_("Cancel"), on_click=lambda: dialog.submit(None)).props("flat")
                ui.button(_("Save"), on_click=lambda: dialog.submit(True)).props("unelevated color=primary").mark(
                    "save-settings")
        saved = await dialog
        dialog.delete()
        if not saved:
            return
        try:  # checked here too: a new conversation keeps them until its first message
            new_params = chat.clean_params({"temperature": temperature.value, "top_p": top_p.value,
                                            "max_tokens": max_tokens.value})
        except DomainError as error:
            show_error(error)
            return
        text = (prompt.value or "").strip() or None
        if self.conversation_id is None:
            self.system_prompt, self.params = text, new_params
            ui.notify(_("Saved: the new conversation will use them"), position="top")
            return
        if await self._update(ConversationUpdate(system_prompt=text or "", params=new_params)):
            await self.open(self.conversation_id)

    async def _rename(self) -> None:
        if self.conversation is None:
            return
        with ui.dialog() as dialog, ui.card().classes("lp-dialog w-full max-w-md gap-3"):
            ui.label(_("Rename")).classes("text-h6")
            name = ui.input(_("Title"), value=self.title.text).props("outlined autofocus").classes("w-full").mark(
                "title-input")
            name.on("keydown.enter", lambda: dialog.submit(True))
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button(_("Cancel"), on_click=lambda: dialog.submit(None)).props("flat")
                ui.button(_("Save"), on_click=lambda: dialog.submit(True)).props("unelevated color=primary").mark(
                    "save-title")
        saved = await dialog
        dialog.delete()
        if saved and await self._update(ConversationUpdate(title=name.value or "")):
            await self.refresh_list()

    async def _delete(self) -> None:
        if self.conversation_id is None:
            return
        if not await confirm(_("Delete this conversation and all its messages?"), ok=_("Delete")):
            return
        try:
            await call(chat.delete_conversation, user=self.user, conversation_id=self.conversation_id)
        except DomainError as error:
            show_error(error)
            return
        ui.notify(_("Conversation deleted"), position="top")
        await self.new_chat()

    async def _export(self, format: str) -> None:
        if self.conversation_id is None:
            return
        try:
            filename, content = await call(chat.export_conversation, user=self.user,
                                           conversation_id=self.conversation_id, format=format)
        except DomainError as error:
            show_error(error)
            return
        ui.download.content(content.encode(), filename, "application/json" if format == "json" else "text/markdown")
