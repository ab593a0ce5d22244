"""The Models page: admins add, test and sync providers and curate their models; everyone sees what is enabled."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from nicegui import APIRouter, ui

from backend.errors import DomainError
from backend.i18n import N_
from backend.models.provider import (
    CAPABILITIES,
    PROVIDER_NAME_PATTERN,
    ModelPublic,
    ModelUpdate,
    ProviderCreate,
    ProviderPublic,
    ProviderUpdate,
)
from backend.models.user import Role, User
from backend.providers.base import ProviderError
from backend.providers.registry import CLIENTS, PRESETS, PRESETS_BY_KEY
from backend.services import providers
from pages.guard import page_user
from pages.service import call, call_async, query, show_error
from ui.frame import frame
from ui.i18n import _
from ui.widgets import confirm, format_time

router = APIRouter()

CAPABILITY_LABELS = {"reasoning": N_("Reasoning"), "vision": N_("Vision"), "tools": N_("Tools")}
CAPABILITY_ICONS = {"reasoning": "psychology", "vision": "visibility", "tools": "build"}


@router.page("/models")
def models_page(request: Request) -> None:
    user = page_user(request)
    ip = request.client.host if request.client else None
    with frame(_("Models")):
        if user.role == Role.admin:
            ProvidersView(user, ip).build()
        else:
            _available_models()


def _capability_chips(capabilities: list[str]) -> None:
    for capability in capabilities:
        ui.chip(_(CAPABILITY_LABELS[capability]), icon=CAPABILITY_ICONS[capability]).props(
            "dense outline color=primary").classes("text-xs")


def _available_models() -> None:
    models = query(providers.list_models)
    if not models:
        with ui.card().classes("w-full items-center p-8 gap-2"):
            ui.icon("hub", size="3rem").classes("text-secondary")
            ui.label(_("No models are available yet. An administrator adds providers here.")).classes("text-center")
        return
    ui.label(_("The models you can use in chat, compare and through the API.")).classes("text-secondary")
    with ui.card().classes("w-full p-0"), ui.column().classes("w-full gap-0"):
        for model in models:
            with ui.row().classes("lp-model-row w-full items-center gap-2 px-4 py-2"):
                with ui.column().classes("gap-0 grow min-w-0"):
                    ui.label(model.name).classes("text-weight-medium")
                    ui.label(model.id).classes("text-caption text-secondary lp-token")
                _capability_chips(model.capabilities)


class ProvidersView:
    """The admin's view: one card per provider, its models inside."""

    def __init__(self, admin: User, ip: str | None) -> None:
        self.admin = admin
        self.ip = ip

    def build(self) -> None:
        with ui.row().classes("w-full items-center justify-between"):
            ui.label(_("Providers connect the portal to model servers. Keys are stored encrypted and never shown "
                       "again.")).classes("text-secondary")
            ui.button(_("Add provider"), icon="add", on_click=lambda: self.edit_dialog(None)).props(
                "unelevated").mark("add-provider")
        self.provider_list()

    @ui.refreshable_method
    def provider_list(self) -> None:
        found = query(lambda session: [providers.to_public(session, p) for p in providers.list_providers(session)])
        if not found:
            with ui.card().classes("w-full items-center p-8 gap-2"):
                ui.icon("hub", size="3rem").classes("text-secondary")
                ui.label(_("No provider yet: add one to make models available.")).classes("text-center")
            return
        for provider in found:
            self.provider_card(provider)

    def provider_card(self, provider: ProviderPublic) -> None:
        with ui.card().classes("w-full gap-2").mark(f"provider-{provider.name}"):
            with ui.row().classes("w-full items-center gap-2"):
                ui.label(provider.name).classes("text-h6")
                ui.badge(CLIENTS[provider.kind].label, color="primary").props("outline")
                if not provider.enabled:
                    ui.badge(_("disabled"), color="grey")
                ui.space()
                if provider.name != providers.LOCAL_PROVIDER:
                    self.status_chip(provider)
            if provider.name == providers.LOCAL_PROVIDER:
                self.local_provider(provider)
                return
            ui.label(provider.base_url).classes("text-caption text-secondary lp-token")
            key = provider.api_key_hint if provider.has_api_key else _("no API key")
            ui.label(f"{_('API key')}: {key}").classes("text-caption text-secondary")
            with ui.row().classes("w-full gap-2 items-center"):
                test = ui.button(_("Test connection"), icon="network_check").props("outline").mark(
                    f"test-{provider.name}")
                test.on_click(lambda p=provider, b=test: self.test(p, b))
                sync = ui.button(_("Sync models"), icon="sync").props("outline").mark(f"sync-{provider.name}")
                sync.on_click(lambda p=provider, b=sync: self.sync(p, b))
                ui.button(_("Edit"), icon="edit", on_click=lambda p=provider: self.edit_dialog(p)).props(
                    "flat").mark(f"edit-{provider.name}")
                ui.button(_("Delete"), icon="delete", on_click=lambda p=provider: self.delete(p)).props(
                    "flat color=negative").mark(f"delete-{provider.name}")
            models = query(providers.list_models, include_disabled=True, provider_id=provider.id)
            if models:
                self.model_list(provider, models)
            else:
                ui.label(_("No models yet: sync the model list.")).classes("text-secondary text-body2")

    def local_provider(self, provider: ProviderPublic) -> None:
        """The portal's own provider: each model is a deployed fine-tuned model with a server of its own."""
        with ui.row().classes("items-center gap-1"):
            ui.label(_("Fine-tuned models deployed from their training jobs, each served on this machine. Deploy and "
                       "undeploy them on the")).classes("text-caption text-secondary")
            ui.link(_("Training page"), "/training").classes("text-caption")
        models = query(providers.list_models, include_disabled=True, provider_id=provider.id)
        if models:
            self.model_list(provider, models)
        else:
            ui.label(_("No model has been deployed yet.")).classes("text-secondary text-body2")

    def status_chip(self, provider: ProviderPublic) -> None:
        if provider.last_test_ok is None:
            ui.chip(_("not tested"), icon="help_outline").props("dense outline")
        elif provider.last_test_ok:
            ui.chip(_("connected · {ms} ms", ms=provider.last_test_latency_ms), icon="check_circle",
                    color="positive").props("dense outline").tooltip(format_time(provider.last_test_at))
        else:
            ui.chip(_("connection failed"), icon="error", color="negative").props("dense outline").tooltip(
                provider.last_test_error or "")

    def model_list(self, provider: ProviderPublic, models: list[ModelPublic]) -> None:
        enabled = sum(m.enabled for m in models)
        with ui.expansion(_("{enabled} of {total} models enabled", enabled=enabled, total=len(models)),
                          icon="list").classes("w-full lp-models").props("dense").mark(f"models-{provider.name}"):
            with ui.row().classes("gap-2 pb-2"):
                ui.button(_("Enable all"), on_click=lambda: self.set_all(provider, True)).props("flat dense")
                ui.button(_("Disable all"), on_click=lambda: self.set_all(provider, False)).props("flat dense")
            for model in models:
                with ui.row().classes("lp-model-row w-full items-start gap-3 py-1 no-wrap"):
                    ui.switch(value=model.enabled,
                              on_change=lambda e, m=model: self.update(m, ModelUpdate(enabled=e.value))).props(
                        'dense aria-label="Enabled"').mark(f"enable-{model.id}").classes("pt-1")
                    with ui.column().classes("gap-1 grow min-w-0"):
                        ui.label(model.name).classes("text-weight-medium break-all")
                        details = [model.model_id] if model.name != model.model_id else []
                        if model.context_length:
                            details.append(_("{tokens} tokens context", tokens=f"{model.context_length:,}"))
                        if not model.available:
                            details.append(_("no longer listed by the provider"))
                        if details:
                            ui.label(" · ".join(details)).classes("text-caption text-secondary break-all")
                        with ui.row().classes("gap-1 items-center"):
                            _capability_chips(model.capabilities)
                    ui.button(icon="tune", on_click=lambda m=model: self.model_dialog(m)).props(
                        f'flat round dense aria-label="{_("Edit model")}"').tooltip(_("Edit model")).mark(
                        f"edit-model-{model.id}")

    # --- actions --------------------------------------------------------------------------------------------

    async def test(self, provider: ProviderPublic, button: ui.button) -> None:
        button.props("loading")
        try:
            result = await call_async(providers.test_provider, actor=self.admin, provider_id=provider.id, ip=self.ip)
        except DomainError as error:
            show_error(error)
            return
        finally:
            button.props(remove="loading")
        if result.ok:
            ui.notify(_("{name} answered in {ms} ms", name=provider.name, ms=result.latency_ms), type="positive")
        else:
            ui.notify(result.error or _("connection failed"), type="negative", multi_line=True, position="top")
        self.provider_list.refresh()

    async def sync(self, provider: ProviderPublic, button: ui.button) -> None:
        button.props("loading")
        try:
            models = await call_async(providers.sync_models, actor=self.admin, provider_id=provider.id, ip=self.ip)
        except (DomainError, ProviderError) as error:
            show_error(error)
            return
        finally:
            button.props(remove="loading")
        ui.notify(_("{count} models found at {name}", count=len(models), name=provider.name), type="positive")
        self.provider_list.refresh()

    async def update(self, model: ModelPublic, changes: ModelUpdate) -> None:
        try:
            await call(providers.update_model, actor=self.admin, model_ref=str(model.pk), data=changes, ip=self.ip)
        except DomainError as error:
            show_error(error)
        self.provider_list.refresh()

    async def set_all(self, provider: ProviderPublic, enabled: bool) -> None:
        await call(providers.set_models_enabled, actor=self.admin, provider_id=provider.id, enabled=enabled,
                   ip=self.ip)
        self.provider_list.refresh()

    async def delete(self, provider: ProviderPublic) -> None:
        if not await confirm(_("Delete {name} and its {count} models? Chats keep their messages.",
                               name=provider.name, count=provider.models), ok=_("Delete")):
            return
        try:
            await call(providers.delete_provider, actor=self.admin, provider_id=provider.id, ip=self.ip)
        except DomainError as error:
            show_error(error)
            return
        ui.notify(_("{name} deleted", name=provider.name), type="positive")
        self.provider_list.refresh()

    # --- dialogs --------------------------------------------------------------------------------------------

    @staticmethod
    def dialog_buttons(dialog: ui.dialog, save: Callable[[], Awaitable[None]], *, marker: str) -> None:
        """Cancel and Save; a dialog closed any way is deleted, so that no form lingers in the page."""
        with ui.row().classes("w-full justify-end gap-2 pt-2"):
            ui.button(_("Cancel"), on_click=dialog.delete).props("flat")
            ui.button(_("Save"), on_click=save).props("unelevated").mark(marker)
        dialog.on("hide", dialog.delete)

    def saved(self, dialog: ui.dialog) -> None:
        dialog.delete()
        ui.notify(_("Saved"), type="positive")
        self.provider_list.refresh()

    def edit_dialog(self, provider: ProviderPublic | None) -> None:
        kinds = {kind: cls.label for kind, cls in CLIENTS.items()}
        with ui.dialog() as dialog, ui.card().classes("w-full max-w-lg gap-2"):
            ui.label(_("Add provider") if provider is None else _("Edit {name}", name=provider.name)).classes(
                "text-h6")
            preset = None
            if provider is None:
                preset = ui.select({p.key: p.label for p in PRESETS}, label=_("Preset"), clearable=True).props(
                    "outlined dense").classes("w-full").mark("preset")
            name = ui.input(_("Name"), value=provider.name if provider else "",
                            validation={_("Letters, digits, '.', '_' or '-'; up to 40"): _valid_name}).props(
                "outlined dense").classes("w-full").mark("provider-name")
            kind = ui.select(kinds, label=_("Kind"), value=provider.kind if provider else "openai").props(
                "outlined dense").classes("w-full").mark("provider-kind")
            if provider is not None:
                kind.disable()  # another kind is another provider
            base_url = ui.input(_("Base URL"), value=provider.base_url if provider else "",
                                validation={_("An http:// or https:// address"): _valid_url}).props(
                "outlined dense").classes("w-full").mark("provider-url")
            key_label = _("API key") if provider is None or not provider.has_api_key else _(
                "New API key (empty keeps {hint})", hint=provider.api_key_hint)
            api_key = ui.input(key_label, password=True, password_toggle_button=True).props(
                "outlined dense autocomplete=off").classes("w-full").mark("provider-key")
            remove_key = ui.checkbox(_("Remove the stored key")) if provider and provider.has_api_key else None
            with ui.row().classes("w-full gap-2 no-wrap"):
                timeout = ui.number(_("Timeout (s)"), value=provider.timeout_seconds if provider else 60, min=1,
                                    max=3600).props("outlined dense").classes("grow")
                retries = ui.number(_("Retries"), value=provider.max_retries if provider else 2, min=0,
                                    max=10, precision=0).props("outlined dense").classes("grow")

            def apply_preset() -> None:
                chosen = PRESETS_BY_KEY.get(preset.value) if preset is not None else None
                if chosen is None:
                    return
                kind.set_value(chosen.kind)
                base_url.set_value(chosen.base_url)
                if not name.value:
                    name.set_value(chosen.key)

            if preset is not None:
                preset.on_value_change(apply_preset)

            async def save() -> None:
                if not name.validate() or not base_url.validate():
                    return
                try:
                    if provider is None:
                        await call(providers.create_provider, actor=self.admin, ip=self.ip, data=ProviderCreate(
                            name=name.value, kind=kind.value, base_url=base_url.value, api_key=api_key.value or None,
                            timeout_seconds=float(timeout.value or 60), max_retries=int(retries.value or 0)))
                    else:
                        new_key = "" if remove_key is not None and remove_key.value else (api_key.value or None)
                        changes: dict[str, Any] = {"name": name.value, "base_url": base_url.value,
                                                   "timeout_seconds": float(timeout.value or 60),
                                                   "max_retries": int(retries.value or 0)}
                        if new_key is not None:
                            changes["api_key"] = new_key
                        await call(providers.update_provider, actor=self.admin, provider_id=provider.id,
                                   data=ProviderUpdate(**changes), ip=self.ip)
                except DomainError as error:
                    show_error(error)
                    return
                self.saved(dialog)

            self.dialog_buttons(dialog, save, marker="save-provider")
        dialog.open()

    def model_dialog(self, model: ModelPublic) -> None:
        with ui.dialog() as dialog, ui.card().classes("w-full max-w-md gap-2"):
            ui.label(model.id).classes("text-h6 lp-token")
            display = ui.input(_("Display name"), value=model.name if model.name != model.model_id else "",
                               placeholder=model.model_id).props("outlined dense").classes("w-full").mark(
                "display-name")
            ui.label(_("Capabilities")).classes("text-subtitle2 pt-2")
            boxes = {c: ui.checkbox(_(CAPABILITY_LABELS[c]), value=c in model.capabilities).mark(f"cap-{c}")
                     for c in CAPABILITIES}
            ui.label(_("Reasoning: the model's text starts as reasoning until </think> (DeepSeek-R1 style), or "
                       "extended thinking for Anthropic.")).classes("text-caption text-secondary")
            context = ui.number(_("Context length (tokens)"), value=model.context_length, min=1, precision=0).props(
                "outlined dense clearable").classes("w-full")
            ui.label(_("Default parameters")).classes("text-subtitle2 pt-2")
            with ui.row().classes("w-full gap-2 no-wrap"):
                params = model.default_params
                temperature = ui.number(_("Temperature"), value=params.get("temperature"), min=0, max=2,
                                        step=0.1).props("outlined dense clearable").classes("grow")
                top_p = ui.number(_("Top p"), value=params.get("top_p"), min=0, max=1, step=0.05).props(
                    "outlined dense clearable").classes("grow")
                max_tokens = ui.number(_("Max tokens"), value=params.get("max_tokens"), min=1, precision=0).props(
                    "outlined dense clearable").classes("grow")

            async def save() -> None:
                defaults = {"temperature": temperature.value, "top_p": top_p.value,
                            "max_tokens": int(max_tokens.value) if max_tokens.value else None}
                changes = ModelUpdate(
                    display_name=display.value or None,
                    capabilities=[c for c, box in boxes.items() if box.value],
                    context_length=int(context.value) if context.value else None,
                    default_params={k: v for k, v in defaults.items() if v is not None},
                )
                try:
                    await call(providers.update_model, actor=self.admin, model_ref=str(model.pk), data=changes,
                               ip=self.ip)
                except DomainError as error:
                    show_error(error)
                    return
                self.saved(dialog)

            self.dialog_buttons(dialog, save, marker="save-model")
        dialog.open()


def _valid_name(value: str | None) -> bool:
    return bool(re.fullmatch(PROVIDER_NAME_PATTERN, (value or "").strip()))


def _valid_url(value: str | None) -> bool:
    return (value or "").strip().startswith(("http://", "https://"))
