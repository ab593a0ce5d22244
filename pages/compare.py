"""The Compare page: one prompt to several models side by side, blind votes, a leaderboard, history and batches."""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any

from fastapi import Request
from nicegui import APIRouter, app, background_tasks, ui

from backend.errors import DomainError
from backend.i18n import N_
from backend.models.compare import BatchPublic, CompareRequest, CompareRunPublic
from backend.models.provider import ModelPublic
from backend.models.user import User
from backend.providers.base import ProviderError
from backend.services import compare, prompt_lists, providers
from pages.guard import page_user
from pages.service import call, query, show_error
from ui.chat import use_chat_assets
from ui.compare import CompareColumn, metrics_line, vote_bar
from ui.frame import frame
from ui.i18n import _, page_language
from ui.widgets import format_time

router = APIRouter()

# In the user's storage, taken once by the Compare page: what another page carries over ({"prompt", "system"} from
# the Prompts page's "Open in compare", {"models"} from a deployed model's Compare button).
HANDOFF_KEY = "compare_prompt"

OUTCOME_LABELS = {"a": N_("A is better"), "b": N_("B is better"), "tie": N_("Tie"), "both_bad": N_("Both are bad")}
BATCH_ENDINGS = {
    "cancelled": N_("The batch was cancelled; the answers so far are below."),
    "interrupted": N_("The portal restarted while the batch ran; the answers so far are below."),
    "failed": N_("The batch failed; the answers so far are below."),
}
BATCH_STATUS = {"running": N_("running"), "done": N_("done"), "cancelled": N_("cancelled"),
                "interrupted": N_("interrupted"), "failed": N_("failed")}
BATCH_COLORS = {"running": "primary", "done": "positive", "cancelled": "orange-8", "interrupted": "orange-8",
                "failed": "negative"}
PAST_BATCHES = 20  # listed on the Batch tab
FEW_VOTES = 20  # below this, a bootstrap interval is too narrow to trust
PROGRESS_INTERVAL = 0.5  # seconds between redraws of a running batch's progress
CLOCK_INTERVAL = 0.25  # seconds between redraws of a column's running clock


@router.page("/compare")
def compare_page(request: Request) -> None:
    user = page_user(request)
    models = query(providers.list_models)
    use_chat_assets()
    with frame(_("Compare")):
        if len(models) < 1:
            with ui.card().classes("w-full items-center p-8 gap-2"):
                ui.icon("compare_arrows", size="3rem").classes("text-secondary")
                ui.label(_("No models are available yet.")).classes("text-h6")
                ui.label(_("An administrator adds providers and enables models; then you can compare them here.")
                         ).classes("text-secondary text-center")
            return
        with ui.tabs().classes("lp-tabs w-full").props("align=left dense no-caps") as tabs:
            run_tab = ui.tab("compare", label=_("Compare"), icon="compare_arrows").mark("tab-compare")
            batch_tab = ui.tab("batch", label=_("Batch"), icon="playlist_play").mark("tab-batch")
            history_tab = ui.tab("history", label=_("History"), icon="history").mark("tab-history")
            board_tab = ui.tab("leaderboard", label=_("Leaderboard"), icon="leaderboard").mark("tab-leaderboard")
        with ui.tab_panels(tabs, value=run_tab).classes("w-full lp-tab-panels"):
            with ui.tab_panel(run_tab).classes("p-0 gap-4"):
                runner = RunView(user, models)
                runner.build()
            with ui.tab_panel(batch_tab).classes("p-0 gap-4"):
                batches = BatchView(user, models)
                batches.build()
            with ui.tab_panel(history_tab).classes("p-0 gap-4"):
                history = HistoryView(user, on_open=lambda run_id: _open_run(tabs, run_tab, runner, run_id))
                history.build()
            with ui.tab_panel(board_tab).classes("p-0 gap-4"):
                board = LeaderboardView()
                board.build()
        # show what is new on every visit
        refreshers = {"history": history.refresh, "leaderboard": board.refresh, "batch": batches.refresh_past}

        async def tab_changed(event: Any) -> None:
            if event.value in refreshers:
                await refreshers[event.value]()

        tabs.on_value_change(tab_changed)


async def _open_run(tabs: ui.tabs, run_tab: ui.tab, runner: RunView, run_id: int) -> None:
    tabs.set_value(run_tab)
    await runner.open(run_id)


def _model_options(models: list[ModelPublic]) -> dict[str, str]:
    return {m.id: f"{m.name} · {m.provider}" for m in models}


def _params_inputs() -> tuple[ui.textarea, ui.number, ui.number]:
    with ui.expansion(_("System prompt and parameters"), icon="tune").classes("w-full lp-settings").props("dense"):
        system = ui.textarea(_("System prompt")).props("outlined autogrow").classes("w-full").mark("system-prompt")
        with ui.row().classes("w-full gap-3 no-wrap"):
            temperature = ui.number(_("Temperature"), min=0, max=2, step=0.1, format="%.2f").props(
                "outlined dense clearable").classes("grow").mark("temperature")
            max_tokens = ui.number(_("Max tokens"), min=1, step=1, precision=0).props(
                "outlined dense clearable").classes("grow").mark("max-tokens")
    return system, temperature, max_tokens


def _params(temperature: ui.number, max_tokens: ui.number) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if temperature.value is not None:
        params["temperature"] = float(temperature.value)
    if max_tokens.value:
        params["max_tokens"] = int(max_tokens.value)
    return params


class RunView:
    """Pick models and a prompt, run, watch the columns, vote when blind."""

    def __init__(self, user: User, models: list[ModelPublic]) -> None:
        self.user = user
        self.models = models
        self.run_id: int | None = None
        self.columns: list[CompareColumn] = []
        self.listeners: list[asyncio.Task[None]] = []
        self.clock: ui.timer | None = None

    def build(self) -> None:
        options = _model_options(self.models)
        with ui.card().classes("w-full gap-3"):
            with ui.row().classes("w-full items-start gap-3"):
                self.picker = ui.select(options, multiple=True, label=_("Models (2 to 4)"),
                                        value=list(options)[:2] if len(options) >= 2 else list(options)).props(
                    "outlined dense use-chips").classes("grow lp-compare-picker").mark("compare-models")
                self.blind = ui.switch(_("Blind")).mark("blind")
                self.blind.tooltip(_("Two models, names hidden until you vote"))
            self.system, self.temperature, self.max_tokens = _params_inputs()
            self.prompt = ui.textarea(_("Prompt")).props("outlined autogrow").classes("w-full").mark("compare-prompt")
            self.prompt.on("keydown.enter.ctrl.prevent", self.run)
            # "Open in compare" on the Prompts page (pages/prompts.py) carries a rendered prompt here, once.
            carried = app.storage.user.pop(HANDOFF_KEY, None)
            if isinstance(carried, dict):
                self.prompt.set_value(carried.get("prompt") or "")
                self.system.set_value(carried.get("system") or "")
                # A deployed model's Compare button (pages/deployments.py) carries the model, to compare with others.
                chosen = [m for m in carried.get("models") or [] if m in options]
                if chosen:
                    others = [m for m in options if m not in chosen]
                    self.picker.set_value((chosen + others)[:2] if len(options) >= 2 else chosen)
            with ui.row().classes("w-full items-center gap-2"):
                self.run_button = ui.button(_("Run"), icon="play_arrow", on_click=self.run).props(
                    "unelevated color=primary").mark("run-compare")
                self.stop_all = ui.button(_("Stop all"), icon="stop", on_click=self.stop).props(
                    "flat color=negative").mark("stop-all")
                self.stop_all.set_visibility(False)
                ui.space()
                self.export_row = ui.row().classes("gap-1")
        self.prompt_echo = ui.label().classes("lp-compare-prompt text-body2 text-secondary lp-prewrap")
        self.grid = ui.element("div").classes("lp-compare-grid w-full")
        self.vote_box = ui.column().classes("w-full items-center")

    # --- running --------------------------------------------------------------------------------------------

    async def run(self) -> None:
        chosen = list(self.picker.value or [])
        prompt = (self.prompt.value or "").strip()
        if not prompt:
            ui.notify(_("Write a prompt first"), type="warning", position="top")
            return
        data = CompareRequest(prompt=prompt, models=chosen, system=self.system.value or None,
                              params=_params(self.temperature, self.max_tokens), blind=bool(self.blind.value))
        self.run_button.disable()
        try:
            comparison = await compare.start_compare(user=self.user, data=data)
        except (DomainError, ProviderError) as error:
            show_error(error)
            return
        finally:
            self.run_button.enable()
        previous = self.run_id
        self._show_live(comparison, prompt)
        if previous is not None and compare.running(previous) is not None:
            await compare.stop(user=self.user, run_id=previous)  # no one watches it any more: stop calling upstream

    def _reset(self, prompt: str) -> None:
        for task in self.listeners:
            task.cancel()
        self.listeners = []
        if self.clock is not None:
            self.clock.cancel()
            self.clock = None
        self.grid.clear()
        self.vote_box.clear()
        self.export_row.clear()
        self.columns = []
        self.prompt_echo.set_text(prompt)
        self.grid.classes(remove=" ".join(f"lp-cols-{n}" for n in range(1, 5)))

    def _show_live(self, comparison: compare.Comparison, prompt: str) -> None:
        self._reset(prompt)
        self.run_id = comparison.run_id
        self.grid.classes(f"lp-cols-{len(comparison.columns)}")
        with self.grid:
            for live in comparison.columns:
                title = compare.BLIND_LABELS[live.position] if comparison.blind else live.model
                stop = functools.partial(self._stop_one, live.position)
                view = CompareColumn(title=title, streaming=True, on_stop=stop).mark(f"column-{live.position}")
                view.stop_button.mark(f"stop-column-{live.position}")
                self.columns.append(view)
                self.listeners.append(background_tasks.create(self._follow(comparison, live, view)))
        self.stop_all.set_visibility(True)
        self.clock = ui.timer(CLOCK_INTERVAL, lambda: self._tick(comparison))

    def _tick(self, comparison: compare.Comparison) -> None:
        for live, view in zip(comparison.columns, self.columns, strict=False):
            if not live.finished:
                view.show_metrics(_live_metrics(live))

    async def _follow(self, comparison: compare.Comparison, live: compare.Column, view: CompareColumn) -> None:
        final = await view.answer.follow(live.events())
        if final is not None:
            self._finished(view, getattr(final, "message", None), live)
        if comparison.finished:
            await self._all_finished(comparison)

    def _finished(self, view: CompareColumn, result: Any, live: compare.Column | None = None) -> None:
        view.done()
        answer = view.answer
        if result is None:  # not saved: show what the live answer had
            answer.finish(status=live.status if live else "error")
            view.show_metrics(_live_metrics(live) if live else "")
            return
        answer.finish(status=result.status, reasoning_ms=result.reasoning_ms)
        tokens, estimated, rate = result.output_tokens, False, result.tokens_per_s
        if not tokens and live is not None and live.chunks:  # no usage from the provider (or stopped): the count
            tokens, estimated, rate = live.chunks, True, _rate(live, live.chunks)  # from the stream stays, with ~
        view.show_metrics(metrics_line(ttft_ms=result.ttft_ms, total_ms=result.total_ms, output_tokens=tokens,
                                       estimated=estimated, tokens_per_s=rate, finished=True))
        answer.show_outcome(result.status, result.error, error_marker="column-error")

    async def _all_finished(self, comparison: compare.Comparison) -> None:
        if self.run_id != comparison.run_id:
            return
        if self.clock is not None:
            self.clock.cancel()
            self.clock = None
        self.stop_all.set_visibility(False)
        run = await call(compare.read_run, user=self.user, run_id=comparison.run_id)
        self._after(run)

    def _after(self, run: CompareRunPublic) -> None:
        """Voting (blind, not voted yet) or the revealed names, and the export buttons."""
        self.vote_box.clear()
        if run.blind and run.vote is None and all(r.status != "streaming" for r in run.results):
            with self.vote_box:
                vote_bar(self._vote)
        elif run.blind and run.vote is not None:
            with self.vote_box:
                ui.label(_("Your vote: {vote}", vote=_(OUTCOME_LABELS[run.vote]))).classes("text-caption")
        self.export_row.clear()
        with self.export_row:
            for format in ("csv", "json"):
                ui.button(format.upper(), icon="download", on_click=lambda f=format: self._export(f)).props(
                    "flat dense").mark(f"export-{format}")

    async def _vote(self, outcome: str) -> None:
        if self.run_id is None:
            return
        try:
            run = await call(compare.vote, user=self.user, run_id=self.run_id, outcome=outcome)
        except DomainError as error:
            show_error(error)
            return
        for view, result in zip(self.columns, run.results, strict=False):
            view.reveal(result.model)
            if result.status == "error":  # the error as the provider said it, names included
                view.answer.show_outcome(result.status, result.error, error_marker="column-error")
        ui.notify(_("Thanks: Model A was {a}, Model B was {b}", a=run.results[0].model, b=run.results[1].model),
                  position="top", type="positive")
        self._after(run)

    async def _stop_one(self, position: int) -> None:
        if self.run_id is not None:
            await compare.stop(user=self.user, run_id=self.run_id, position=position)

    async def stop(self) -> None:
        if self.run_id is not None:
            await compare.stop(user=self.user, run_id=self.run_id)

    async def _export(self, format: str) -> None:
        if self.run_id is None:
            return
        filename, content = await call(compare.export_run, user=self.user, run_id=self.run_id, format=format)
        ui.download.content(content.encode(), filename, "text/csv" if format == "csv" else "application/json")

    # --- reopening ------------------------------------------------------------------------------------------

    async def open(self, run_id: int) -> None:
        """Show a past comparison (or follow it, when it is still being written)."""
        live = compare.running(run_id)
        try:
            run = await call(compare.read_run, user=self.user, run_id=run_id)
        except DomainError as error:
            show_error(error)
            return
        if live is not None:
            self._show_live(live, run.prompt)
            return
        self._reset(run.prompt)
        self.run_id = run_id
        self.grid.classes(f"lp-cols-{len(run.results)}")
        with self.grid:
            for result in run.results:
                view = CompareColumn(title=result.model, text=result.text, reasoning=result.reasoning or "",
                                     reasoning_ms=result.reasoning_ms).mark(f"column-{result.position}")
                self.columns.append(view)
                self._finished(view, result)
        self._after(run)


def _live_metrics(live: compare.Column) -> str:
    """While a column streams: its clock runs, and its tokens are counted from the stream until usage arrives."""
    metrics = live.metrics
    now = time.perf_counter()
    total = metrics.total_ms if metrics.total_ms is not None else round((now - metrics.started) * 1000)
    tokens = metrics.output_tokens or live.chunks
    return metrics_line(ttft_ms=metrics.ttft_ms, total_ms=total, output_tokens=tokens,
                        estimated=not metrics.output_tokens, tokens_per_s=_rate(live, tokens))


def _rate(live: compare.Column, tokens: int) -> float | None:
    """Tokens a second since the first one (until now, while the column streams)."""
    metrics = live.metrics
    if metrics.first_token_at is None or not tokens:
        return None
    elapsed = (metrics.finished_at or time.perf_counter()) - metrics.first_token_at
    return tokens / elapsed if elapsed > 0 else None


class HistoryView:
    """The user's past comparisons, newest first; a click reopens one."""

    def __init__(self, user: User, on_open: Any) -> None:
        self.user = user
        self.on_open = on_open

    def build(self) -> None:
        self.box = ui.column().classes("w-full gap-2")

    async def refresh(self) -> None:
        runs = await call(compare.list_runs, user=self.user)
        self.box.clear()
        with self.box:
            if not runs:
                ui.label(_("No comparisons yet.")).classes("text-secondary")
                return
            with ui.card().classes("w-full p-0"), ui.list().props("separator").classes("w-full"):
                for run in runs:
                    with ui.item(on_click=lambda r=run.id: self.on_open(r)).classes("lp-history-item").mark(
                            f"run-{run.id}"):
                        with ui.item_section():
                            ui.item_label(run.prompt).classes("ellipsis")
                            ui.item_label(" · ".join(run.models)).props("caption")
                        with ui.item_section().props("side"):
                            ui.item_label(format_time(run.created_at)).props("caption")
                            if run.blind:
                                ui.item_label(_(OUTCOME_LABELS[run.vote]) if run.vote else _("Blind: not voted")).props(
                                    "caption")


class LeaderboardView:
    """Models ranked by everyone's blind votes."""

    def build(self) -> None:
        ui.label(_("Bradley–Terry ratings from everyone's blind votes (ties and \"both are bad\" count as ties), with "
                   "95 % bootstrap intervals.")).classes("text-secondary text-body2")
        self.box = ui.column().classes("w-full gap-2")

    async def refresh(self) -> None:
        board = await call(compare.leaderboard)
        self.box.clear()
        with self.box:
            if not board:
                ui.label(_("No votes yet: run a blind comparison and vote.")).classes("text-secondary")
                return
            columns = [
                {"name": "rank", "label": "#", "field": "rank", "align": "right"},
                {"name": "model", "label": _("Model"), "field": "model", "align": "left"},
                {"name": "rating", "label": _("Rating"), "field": "rating", "align": "right"},
                {"name": "ci", "label": _("95 % interval"), "field": "ci", "align": "right"},
                {"name": "votes", "label": _("Votes"), "field": "votes", "align": "right"},
                {"name": "record", "label": _("Won / tied / lost"), "field": "record", "align": "right"},
            ]
            rows = [{"rank": i + 1, "model": r.model, "rating": round(r.rating), "votes": r.votes,
                     "ci": f"{round(r.ci_low)} – {round(r.ci_high)}", "record": f"{r.wins} / {r.ties} / {r.losses}"}
                    for i, r in enumerate(board)]
            ui.table(columns=columns, rows=rows, row_key="model").classes("w-full").props("flat bordered dense").mark(
                "leaderboard")
            if min(r.votes for r in board) < FEW_VOTES:
                ui.label(_("With fewer than {n} votes a model's interval means little: keep voting.", n=FEW_VOTES)
                         ).classes("text-caption text-secondary")


class BatchView:
    """A list of prompts against the chosen models, a few calls at once, with averages per model; past batches below,
    each reopened with its progress or results."""

    def __init__(self, user: User, models: list[ModelPublic]) -> None:
        self.user = user
        self.models = models
        self.batch_id: int | None = None
        self.timer: ui.timer | None = None
        # The prompts of the last file read, as parsed (line breaks and per-prompt system prompts), with the text
        # shown for them: used while the text is left as it was.
        self.loaded: tuple[str, list[prompt_lists.PromptLine]] | None = None

    def build(self) -> None:
        options = _model_options(self.models)
        with ui.card().classes("w-full gap-3"):
            ui.label(_("Run many prompts against the same models: paste one prompt per line, or upload a file "
                       "(text, CSV with a prompt column, JSON lines, a JSON array).")).classes("text-secondary")
            self.picker = ui.select(options, multiple=True, label=_("Models (1 to 4)"),
                                    value=list(options)[:2]).props("outlined dense use-chips").classes("w-full").mark(
                "batch-models")
            self.prompts = ui.textarea(_("Prompts, one per line")).props("outlined autogrow").classes(
                "w-full lp-batch-prompts").mark("batch-prompts")
            self.file_note = ui.label().classes("text-caption text-secondary").mark("batch-file-note")
            self.file_note.bind_visibility_from(self, "loaded", backward=lambda loaded: loaded is not None)
            self.prompts.on_value_change(self._edited)
            ui.upload(label=_("Or upload a file"), auto_upload=True, on_upload=self._uploaded,
                      max_file_size=10_000_000).props(
                'accept=".txt,.csv,.jsonl,.json" flat bordered color=white text-color=primary').classes(
                "w-full lp-upload").mark("batch-file")
            self.system, self.temperature, self.max_tokens = _params_inputs()
            with ui.row().classes("w-full items-center gap-3"):
                self.concurrency = ui.number(_("Calls at once"), value=4, min=1, max=16, step=1, precision=0).props(
                    "outlined dense").classes("w-36").mark("concurrency")
                self.run_button = ui.button(_("Run batch"), icon="playlist_play", on_click=self.run).props(
                    "unelevated color=primary").mark("run-batch")
                self.cancel_button = ui.button(_("Cancel"), icon="stop", on_click=self.cancel).props(
                    "flat color=negative").mark("cancel-batch")
                self.cancel_button.set_visibility(False)
        self.progress_label = ui.label().classes("text-body2")
        self.progress = ui.linear_progress(value=0, show_value=False).props("rounded size=10px instant-feedback").mark(
            "batch-progress")
        self.progress.set_visibility(False)
        self.results = ui.column().classes("w-full gap-2")
        ui.label(_("Past batches")).classes("text-subtitle1 text-weight-medium")
        self.past = ui.column().classes("w-full gap-2")

    async def _uploaded(self, event: Any) -> None:
        data = await event.file.read()
        lines, errors = prompt_lists.parse_prompts(data, filename=event.file.name)
        if errors:
            shown = "\n".join(_("Line {line}: {reason}", line=e.line, reason=e.text(page_language()))
                              for e in errors[:5])
            ui.notify(_("{name}: {n} lines could not be read", name=event.file.name, n=len(errors)) + "\n" + shown,
                      type="negative", position="top", multi_line=True, timeout=10_000)
        if lines:
            shown_text = "\n".join(" ".join(line.prompt.split()) for line in lines)  # a prompt a line, to read
            self.loaded = (shown_text, lines)
            self.prompts.set_value(shown_text)
            self.file_note.set_text(_("From {name}: prompts of several lines and their own system prompts are sent as "
                                      "in the file, unless you edit the list.", name=event.file.name))
            ui.notify(_("{n} prompts read from {name}", n=len(lines), name=event.file.name), position="top")

    def _edited(self) -> None:
        if self.loaded is not None and (self.prompts.value or "") != self.loaded[0]:
            self.loaded = None  # edited: the text is the list now

    def _prompt_list(self) -> list[str] | list[prompt_lists.PromptLine]:
        if self.loaded is not None and (self.prompts.value or "") == self.loaded[0]:
            return self.loaded[1]
        return [line for line in (self.prompts.value or "").splitlines() if line.strip()]

    async def run(self) -> None:
        try:
            job = await compare.start_batch(user=self.user, models=list(self.picker.value or []),
                                            prompts=self._prompt_list(), system=self.system.value or None,
                                            params=_params(self.temperature, self.max_tokens),
                                            concurrency=int(self.concurrency.value or 4))
        except (DomainError, ProviderError) as error:
            show_error(error)
            return
        self._follow(job.batch_id, job.done, job.total)
        await self.refresh_past()

    def _follow(self, batch_id: int, done: int, total: int) -> None:
        """Show a running batch's progress until it ends."""
        self._stop_polling()
        self.batch_id = batch_id
        self.results.clear()
        self.run_button.disable()
        self.cancel_button.set_visibility(True)
        self.progress.set_visibility(True)
        self._progress(done, total)
        self.timer = ui.timer(PROGRESS_INTERVAL, self._poll)

    def _stop_polling(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _progress(self, done: int, total: int) -> None:
        self.progress.set_value(done / total if total else 0)
        self.progress_label.set_text(_("{done} of {total} prompts answered", done=done, total=total))

    async def _poll(self) -> None:
        if self.batch_id is None:
            return
        job = compare.running_batch(self.batch_id)
        if job is not None:
            self._progress(job.done, job.total)
            return
        self._stop_polling()
        batch = await call(compare.read_batch, user=self.user, batch_id=self.batch_id)
        self._ended(batch)
        await self.refresh_past()

    def _ended(self, batch: BatchPublic) -> None:
        self._progress(batch.done, batch.total)
        self.progress.set_visibility(True)
        self.run_button.enable()
        self.cancel_button.set_visibility(False)
        self._show_results(batch)

    async def cancel(self) -> None:
        if self.batch_id is not None:
            await call(compare.cancel_batch, user=self.user, batch_id=self.batch_id)

    async def open(self, batch_id: int) -> None:
        """Reopen a batch: follow it while it runs, or show its results."""
        try:
            batch = await call(compare.read_batch, user=self.user, batch_id=batch_id)
        except DomainError as error:
            show_error(error)
            return
        if compare.running_batch(batch_id) is not None:
            self._follow(batch_id, batch.done, batch.total)
            return
        self._stop_polling()
        self.batch_id = batch_id
        self._ended(batch)

    async def refresh_past(self) -> None:
        batches = await call(compare.list_batches, user=self.user, limit=PAST_BATCHES)
        self.past.clear()
        with self.past:
            if not batches:
                ui.label(_("No batches yet.")).classes("text-secondary")
                return
            with ui.card().classes("w-full p-0"), ui.list().props("separator").classes("w-full"):
                for batch in batches:
                    with ui.item(on_click=lambda b=batch.id: self.open(b)).classes("lp-history-item").mark(
                            f"batch-{batch.id}"):
                        with ui.item_section():
                            ui.item_label(_("Batch {id} · {time}", id=batch.id, time=format_time(batch.created_at)))
                            ui.item_label(" · ".join(batch.models)).props("caption")
                        with ui.item_section().props("side"):
                            ui.badge(_(BATCH_STATUS.get(batch.status, batch.status)),
                                     color=BATCH_COLORS.get(batch.status, "grey-7")).props("rounded").mark(
                                f"batch-status-{batch.id}")
                            ui.item_label(_("{done} of {total} prompts", done=batch.done, total=batch.total)).props(
                                "caption")

    def _show_results(self, batch: BatchPublic) -> None:
        self.results.clear()
        with self.results:
            if batch.status in BATCH_ENDINGS:
                ui.label(_(BATCH_ENDINGS[batch.status])).classes("text-warning")
            if batch.error:
                ui.label(_("Why: {reason}", reason=batch.error)).classes("text-negative").mark("batch-error")
            columns = [
                {"name": "model", "label": _("Model"), "field": "model", "align": "left"},
                {"name": "answers", "label": _("Answers"), "field": "answers", "align": "right"},
                {"name": "errors", "label": _("Errors"), "field": "errors", "align": "right"},
                {"name": "ttft", "label": _("First token (ms)"), "field": "ttft", "align": "right"},
                {"name": "total", "label": _("Total (ms)"), "field": "total", "align": "right"},
                {"name": "tokens", "label": _("Output tokens"), "field": "tokens", "align": "right"},
                {"name": "rate", "label": _("Tokens/s"), "field": "rate", "align": "right"},
            ]
            rows = [{"model": a.model, "answers": a.answers, "errors": a.errors, "ttft": _number(a.ttft_ms),
                     "total": _number(a.total_ms), "tokens": _number(a.output_tokens), "rate": _number(a.tokens_per_s)}
                    for a in batch.averages]
            ui.label(_("Averages per model · batch {id}", id=batch.id)).classes("text-subtitle1 text-weight-medium")
            ui.table(columns=columns, rows=rows, row_key="model").classes("w-full").props("flat bordered dense").mark(
                "batch-averages")
            with ui.row().classes("gap-2"):
                for format in ("csv", "json"):
                    ui.button(_("Download {format}", format=format.upper()), icon="download",
                              on_click=lambda f=format: self._export(f)).props("flat").mark(f"batch-export-{format}")

    async def _export(self, format: str) -> None:
        if self.batch_id is None:
            return
        filename, content = await call(compare.export_batch, user=self.user, batch_id=self.batch_id, format=format)
        ui.download.content(content.encode(), filename, "text/csv" if format == "csv" else "application/json")


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:g}"
