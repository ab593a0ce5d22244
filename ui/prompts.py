"""Prompt library widgets: the message editor, the variables' types and defaults, the playground's value form,
a diff, and a prompt's card in the library."""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from typing import Any

from nicegui import ui

from backend.i18n import N_
from ui.i18n import _

ROLE_LABELS = {"system": N_("System"), "user": N_("User"), "assistant": N_("Assistant")}
TYPE_LABELS = {"string": N_("Text"), "number": N_("Number"), "boolean": N_("Yes / no"), "json": N_("JSON")}

PROMPTS_CSS = """
.lp-prompt-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(280px, 1fr)); gap: 12px;
  padding: 2px 2px 8px; }
.lp-prompt-card { cursor: pointer; transition: box-shadow .15s; min-width: 0; }
.lp-prompt-card:hover { box-shadow: 0 4px 14px rgba(79, 70, 229, .2); }
.lp-prompt-card .lp-prompt-description { display: -webkit-box; -webkit-line-clamp: 2; -webkit-box-orient: vertical;
  overflow: hidden; }
.lp-message-row { border: 1px solid rgba(0, 0, 0, .1); border-radius: 10px; padding: 8px 10px; }
.body--dark .lp-message-row { border-color: rgba(255, 255, 255, .12); }
.lp-message-row textarea, .lp-mono textarea, .lp-mono input {
  font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .88rem; }
.lp-role-select { width: 140px; }
.lp-diff { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .82rem; white-space: pre-wrap;
  overflow-wrap: anywhere; border-radius: 8px; padding: 8px 0; background: rgba(0, 0, 0, .03); width: 100%; }
.body--dark .lp-diff { background: rgba(255, 255, 255, .04); }
.lp-diff span { display: block; padding: 0 10px; }
.lp-diff .lp-diff-add { background: rgba(22, 163, 74, .14); }
.lp-diff .lp-diff-del { background: rgba(220, 38, 38, .14); }
.lp-diff .lp-diff-hunk { color: #6366f1; }
.lp-rendered { border-left: 3px solid rgba(79, 70, 229, .5); padding: 2px 10px; }
.lp-code { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .82rem; white-space: pre-wrap;
  overflow-wrap: anywhere; background: rgba(0, 0, 0, .04); border-radius: 8px; padding: 10px; width: 100%;
  max-height: 420px; overflow-y: auto; }
.body--dark .lp-code { background: rgba(255, 255, 255, .05); }
.lp-variable-row > * { min-width: 0; }
@media (max-width: 600px) {
  .lp-role-select { width: 120px; }
  .lp-variable-row { flex-wrap: wrap !important; }
  .lp-variable-row > .lp-variable-name { width: 100%; }
  .lp-variable-row > .q-field { flex: 1 1 140px; }
}
"""


def use_prompt_assets() -> None:
    ui.add_css(PROMPTS_CSS)


class MessagesEditor(ui.column):
    """The template's messages: a role and a Jinja2 text each; rows are added and removed."""

    def __init__(self, messages: list[dict[str, str]], *, on_change: Callable[[], Any], readonly: bool = False) -> None:
        super().__init__()
        self.classes("w-full gap-2")
        self.on_change = on_change
        self.readonly = readonly
        self.rows: list[tuple[ui.column, ui.select, ui.textarea]] = []
        with self:
            self.box = ui.column().classes("w-full gap-2")
            if not readonly:
                with ui.row().classes("gap-2"):
                    ui.button(_("Add message"), icon="add", on_click=self._add_clicked).props(
                        "flat dense color=primary").mark("add-message")
        self.set_messages(messages)

    @property
    def value(self) -> list[dict[str, str]]:
        return [{"role": str(role.value), "content": str(text.value or "")} for _row, role, text in self.rows]

    def set_messages(self, messages: list[dict[str, str]]) -> None:
        self.box.clear()
        self.rows = []
        for message in messages:
            self._add(message["role"], message["content"])

    def _add_clicked(self) -> None:
        last = self.rows[-1][1].value if self.rows else "assistant"
        self._add("assistant" if last == "user" else "user", "")
        self.on_change()

    def _add(self, role: str, content: str) -> None:
        index = len(self.rows)
        with self.box, ui.column().classes("lp-message-row w-full gap-1") as row:
            with ui.row().classes("w-full items-center gap-2 no-wrap"):
                role_select = ui.select({k: _(v) for k, v in ROLE_LABELS.items()}, value=role,
                                        on_change=lambda: self.on_change()).props(
                    "dense borderless options-dense").classes("lp-role-select").mark(f"message-role-{index}")
                ui.space()
                if not self.readonly:
                    ui.button(icon="delete_outline", on_click=lambda r=row: self._remove(r)).props(
                        f'flat round dense size=sm aria-label="{_("Remove message")}"').classes(
                        "text-secondary").mark(f"remove-message-{index}").tooltip(_("Remove message"))
            text = ui.textarea(value=content, placeholder=_("Message text; {{ name }} is a variable")).props(
                "outlined autogrow dense debounce=400").classes("w-full").mark(f"message-{index}")
            text.on_value_change(lambda: self.on_change())
            if self.readonly:
                role_select.disable()
                text.props("readonly")
        self.rows.append((row, role_select, text))

    def _remove(self, row: ui.column) -> None:
        self.rows = [entry for entry in self.rows if entry[0] is not row]
        row.delete()
        self.on_change()


class VariablesEditor(ui.column):
    """One row per variable found in the messages: its type, default and description. What was set for a variable
    is remembered while the page is open, so that it comes back when the variable does (text cleared and retyped)."""

    def __init__(self, *, readonly: bool = False) -> None:
        super().__init__()
        self.classes("w-full gap-2")
        self.readonly = readonly
        self.fields: dict[str, tuple[ui.select, ui.input, ui.input]] = {}
        self.memory: dict[str, dict[str, Any]] = {}

    def forget(self) -> None:
        self.fields, self.memory = {}, {}

    def show(self, specs: list[dict[str, Any]]) -> None:
        """Rebuild for `specs` (which already carry what `known` returned)."""
        self._remember()
        self.clear()
        self.fields = {}
        with self:
            if not specs:
                ui.label(_("No variables: write {{ name }} in a message to add one.")).classes(
                    "text-caption text-secondary").mark("no-variables")
            for spec in specs:
                name = spec["name"]
                with ui.row().classes("lp-variable-row w-full items-center gap-2 no-wrap").mark(f"variable-{name}"):
                    ui.label(name).classes("lp-variable-name text-weight-medium lp-token w-32")
                    kind = ui.select({k: _(v) for k, v in TYPE_LABELS.items()}, value=spec.get("type") or "string",
                                     label=_("Type")).props("dense outlined options-dense").classes("w-32").mark(
                        f"variable-type-{name}")
                    value = ui.input(_("Default"), value=_default_text(spec.get("default"))).props(
                        "dense outlined").classes("grow lp-mono").mark(f"variable-default-{name}")
                    about = ui.input(_("Description"), value=spec.get("description") or "").props(
                        "dense outlined").classes("grow")
                    if self.readonly:
                        for element in (kind, value, about):
                            element.disable()
                self.fields[name] = (kind, value, about)
        self._remember()

    def _remember(self) -> None:
        for spec in self.specs():
            self.memory[spec["name"]] = spec

    def known(self) -> list[dict[str, Any]]:
        """What was set for every variable seen since the page opened (or since `forget`)."""
        self._remember()
        return list(self.memory.values())

    def specs(self) -> list[dict[str, Any]]:
        result = []
        for name, (kind, value, about) in self.fields.items():
            spec: dict[str, Any] = {"name": name, "type": kind.value or "string",
                                    "default": value.value if value.value not in (None, "") else None}
            if about.value:
                spec["description"] = about.value
            result.append(spec)
        return result


def _default_text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


class ValuesForm(ui.column):
    """The playground's inputs: one per variable, shaped by its type, prefilled with its default."""

    def __init__(self) -> None:
        super().__init__()
        self.classes("w-full gap-2")
        self.inputs: dict[str, Any] = {}
        self.kept: dict[str, Any] = {}

    def show(self, specs: list[dict[str, Any]]) -> None:
        self.kept.update(self.values())
        self.clear()
        self.inputs = {}
        with self:
            if not specs:
                ui.label(_("This prompt has no variables.")).classes("text-caption text-secondary")
            for spec in specs:
                name, type_ = spec["name"], spec.get("type") or "string"
                default = spec.get("default")
                value = self.kept.get(name, default)
                label = name + (f" · {spec['description']}" if spec.get("description") else "")
                if type_ == "boolean":
                    field: Any = ui.switch(label, value=bool(value) if value is not None else False)
                elif type_ == "number":
                    field = ui.number(label, value=value if isinstance(value, (int, float)) else None).props(
                        "outlined dense")
                elif type_ == "json":
                    field = ui.textarea(label, value=_default_text(value)).props("outlined dense autogrow").classes(
                        "lp-mono")
                else:
                    field = ui.textarea(label, value=value if isinstance(value, str) else _default_text(value)).props(
                        "outlined dense autogrow rows=1")
                field.classes("w-full").mark(f"value-{name}")
                if default is not None and type_ != "boolean":
                    field.props["hint"] = _("default: {value}", value=_default_text(default))[:80]
                self.inputs[name] = field

    def values(self) -> dict[str, Any]:
        found = {}
        for name, field in self.inputs.items():
            value = field.value
            if value is None or value == "":
                continue
            found[name] = value
        return found


def diff_view(text: str) -> ui.html:
    """A unified diff with added, removed and hunk lines coloured."""
    lines = []
    for line in text.splitlines():
        kind = ""
        if line.startswith("+") and not line.startswith("+++"):
            kind = "lp-diff-add"
        elif line.startswith("-") and not line.startswith("---"):
            kind = "lp-diff-del"
        elif line.startswith("@@"):
            kind = "lp-diff-hunk"
        lines.append(f'<span class="{kind}">{html.escape(line) or "&nbsp;"}</span>')
    return ui.html("".join(lines), sanitize=False).classes("lp-diff")


def code_block(text: str) -> ui.label:
    return ui.label(text).classes("lp-code")


def prompt_card(*, name: str, description: str | None, tags: list[str], version: int, labels: dict[str, int],
                owner: str | None, shared: bool, on_open: Callable[[], Any]) -> ui.card:
    """A prompt in the library: name, description, tags, its version and labels, who owns it."""
    with ui.card().classes("lp-prompt-card gap-1 p-3").on("click", on_open) as card:
        with ui.row().classes("w-full items-center gap-2 no-wrap"):
            ui.icon("description", color="primary")
            ui.label(name).classes("text-subtitle1 text-weight-medium ellipsis grow")
            if shared:
                ui.icon("public", size="1.1rem").classes("text-secondary").tooltip(_("Shared with everyone"))
            ui.badge(f"v{version}").props("outline color=primary")
        if description:
            ui.label(description).classes("lp-prompt-description text-body2 text-secondary")
        with ui.row().classes("gap-1 items-center"):
            for label, number in sorted(labels.items()):
                ui.badge(f"{label} → v{number}").props("color=positive")
            for tag in tags:
                ui.badge(tag).props("outline color=secondary")
        if owner:
            ui.label(_("by {name}", name=owner)).classes("text-caption text-secondary")
    return card
