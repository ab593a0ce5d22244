"""Training: the job list (status, queue position, progress, ETA, cancel and resume), the new-job wizard (base model
checked at once, dataset and version, method, presets and hyperparameters with explanations, a memory estimate) and a
job's page (progress, the live log, metrics per logging step, checkpoints, parameters)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from nicegui import APIRouter, ui

from backend.errors import DomainError
from backend.i18n import N_
from backend.models.tracking import SwanLabConnectionTest, SwanLabSettingsUpdate
from backend.models.training import METHODS, JobStatus, MetricPublic, TrainingJobCreate, TrainingJobPublic
from backend.models.user import Role, User
from backend.services import datasets, devices, swanlab_settings, tracking, training
from pages.deployments import DeploymentList, DeployPanel
from pages.guard import page_user
from pages.service import call, call_async, error_text, query, show_error
from ui.frame import frame
from ui.i18n import _, page_language
from ui.training import MetricCharts, loss_comparison
from ui.widgets import confirm, format_time, section

router = APIRouter()

REFRESH_SECONDS = 2.0
METRIC_ROWS = 200  # the newest rows in the job page's table
LOG_LINES = 500  # lines of the log tail on the job page

STATUS_LABELS = {"queued": N_("queued"), "running": N_("running"), "succeeded": N_("succeeded"),
                 "failed": N_("failed"), "cancelled": N_("cancelled")}
STATUS_COLORS = {"queued": "grey-7", "running": "primary", "succeeded": "positive", "failed": "negative",
                 "cancelled": "orange-8"}
METHOD_LABELS = {"lora": N_("LoRA"), "qlora": N_("QLoRA (4-bit)"), "full": N_("Full fine-tuning")}
METHOD_HELP = {
    "lora": N_("Small adapters learn while the base model stays frozen: little memory, fast, easy to share."),
    "qlora": N_("LoRA on a base model quantized to 4 bits: the least memory; needs a CUDA GPU and bitsandbytes."),
    "full": N_("Every weight learns: the most capable and the most memory (weights, gradients and optimizer)."),
}
PARAM_LABELS = {
    "max_steps": N_("Max steps"), "epochs": N_("Epochs"), "learning_rate": N_("Learning rate"),
    "batch_size": N_("Batch size"), "grad_accum": N_("Gradient accumulation"), "max_length": N_("Max length"),
    "lora_rank": N_("LoRA rank"), "lora_alpha": N_("LoRA alpha"), "lora_dropout": N_("LoRA dropout"),
    "target_modules": N_("Target modules"), "warmup_ratio": N_("Warm-up ratio"), "scheduler": N_("Scheduler"),
    "seed": N_("Seed"), "save_steps": N_("Save every (steps)"), "save_total_limit": N_("Checkpoints kept"),
    "eval_ratio": N_("Eval share"), "packing": N_("Packing"), "logging_steps": N_("Log every (steps)"),
    "gradient_checkpointing": N_("Gradient checkpointing"),
}
LORA_ONLY = {"lora_rank", "lora_alpha", "lora_dropout", "target_modules"}


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(seconds)
    if seconds < 60:
        return _("{n} s", n=seconds)
    if seconds < 3600:
        return _("{n} min", n=round(seconds / 60))
    return _("{h} h {m} min", h=seconds // 3600, m=round(seconds % 3600 / 60))


def format_bytes(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit in ("B", "KB") else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


def format_count(count: int) -> str:
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if count >= limit:
            return f"{count / limit:.1f}{suffix}"
    return str(count)


def status_badge(status: str) -> None:
    ui.badge(_(STATUS_LABELS[status]), color=STATUS_COLORS[status]).props("rounded").classes("px-2").mark(
        f"status-{status}")


def progress_line(job: TrainingJobPublic) -> str:
    """"step 12 / 100 · ETA 3 min · cpu" for a running job; where it waits for a queued one."""
    if job.status == JobStatus.queued:
        if job.start_after and job.start_after > datetime.now(UTC):
            return _("Waits until {time}", time=format_time(job.start_after))
        return _("Queued: position {n}", n=job.queue_position or "?")
    text = _("Step {step} of {total}", step=job.step, total=job.total_steps or "?")
    if job.status == JobStatus.running:
        if job.cancel_requested:
            return text + " · " + _("stopping after a checkpoint…")
        text += " · " + _("ETA {eta}", eta=format_duration(job.eta_seconds))
        if job.device:
            text += f" · {job.device}"
    return text


async def cancel(job: TrainingJobPublic, user: User, ip: str | None) -> bool:
    message = _("Cancel {name}? A running job stops after a final checkpoint and can be resumed.", name=job.name)
    if not await confirm(message, ok=_("Cancel job"), cancel=_("Keep running")):
        return False
    try:
        await call(training.cancel_job, user=user, job_id=job.id, ip=ip)
    except DomainError as error:
        show_error(error)
        return False
    ui.notify(_("Cancelled {name}", name=job.name) if job.status == JobStatus.queued else
              _("{name} stops after its current step", name=job.name), type="info", position="top")
    return True


async def resume(job: TrainingJobPublic, user: User, ip: str | None) -> bool:
    try:
        await call(training.resume_job, user=user, job_id=job.id, ip=ip)
    except DomainError as error:
        show_error(error)
        return False
    ui.notify(_("{name} is queued to continue from its latest checkpoint", name=job.name), type="positive",
              position="top")
    return True


def action_buttons(job: TrainingJobPublic, user: User, ip: str | None, after: Any) -> None:
    async def do_cancel() -> None:
        if await cancel(job, user, ip):
            await after()

    async def do_resume() -> None:
        if await resume(job, user, ip):
            await after()

    if job.status in (JobStatus.queued, JobStatus.running) and not job.cancel_requested:
        ui.button(_("Cancel"), icon="stop", on_click=do_cancel).props("flat dense color=negative").mark(
            f"cancel-{job.id}")
    if job.status in (JobStatus.failed, JobStatus.cancelled):
        ui.button(_("Resume"), icon="play_arrow", on_click=do_resume).props("flat dense color=primary").mark(
            f"resume-{job.id}")


# --- the job list -------------------------------------------------------------------------------------------------


@router.page("/training")
def training_page(request: Request) -> None:
    user = page_user(request)
    with frame(_("Training")):
        JobList(user, request.client.host if request.client else None).build()


class JobList:
    def __init__(self, user: User, ip: str | None) -> None:
        self.user = user
        self.ip = ip
        self.shown: list[tuple[Any, ...]] = []

    def build(self) -> None:
        with ui.row().classes("w-full items-center justify-between gap-2"):
            ui.label(_("Fine-tune a model on your dataset. Jobs wait in a queue for a free device and run in "
                       "processes of their own.")).classes("text-secondary")
            ui.button(_("New job"), icon="add", on_click=lambda: ui.navigate.to("/training/new")).props(
                "unelevated").mark("new-job")
        self.deployments = DeploymentList(self.user, self.ip)
        self.deployments.build()
        jobs = query(training.list_public, user=self.user)
        self.shown = self.signature(jobs)
        if len(jobs) > 1:
            compare_picker(jobs, [])
        self.job_list(jobs)
        ui.timer(REFRESH_SECONDS, self.poll)
        if self.user.role == Role.admin:
            SwanLabAdmin(self.user, self.ip).build()

    @staticmethod
    def signature(jobs: list[TrainingJobPublic]) -> list[tuple[Any, ...]]:
        return [(j.id, j.status, j.step, j.total_steps, j.queue_position, j.cancel_requested,
                 round(j.eta_seconds or 0, -1)) for j in jobs]

    async def poll(self) -> None:
        jobs = await call(training.list_public, user=self.user)
        await self.deployments.poll()
        if self.signature(jobs) != self.shown:
            self.shown = self.signature(jobs)
            self.job_list.refresh(jobs)

    async def reload(self) -> None:
        self.shown = []
        await self.poll()

    @ui.refreshable_method
    def job_list(self, jobs: list[TrainingJobPublic]) -> None:
        if not jobs:
            with ui.card().classes("w-full items-center p-8 gap-2").mark("no-jobs"):
                ui.icon("model_training", size="3rem").classes("text-secondary")
                ui.label(_("No training jobs yet.")).classes("text-h6")
                ui.label(_("Start one with New job: pick a base model, a dataset and a method.")).classes(
                    "text-center text-secondary")
            return
        with ui.column().classes("w-full gap-3"):
            for job in jobs:
                self.job_card(job)

    def job_card(self, job: TrainingJobPublic) -> None:
        with ui.card().classes("w-full gap-1").mark(f"job-{job.id}"):
            with ui.row().classes("w-full items-center gap-2 no-wrap"):
                ui.link(job.name, f"/training/{job.id}").classes("text-subtitle1 text-weight-medium ellipsis")
                status_badge(job.status)
                ui.badge(_(METHOD_LABELS[job.method]), color="secondary").props("outline")
                ui.space()
                action_buttons(job, self.user, self.ip, self.reload)
            details = [job.base_model, _("dataset {id} v{version}", id=job.dataset_id or "—",
                                          version=job.dataset_version)]
            if self.user.role == Role.admin:
                details.append(_("by {owner}", owner=job.owner))
            details.append(format_time(job.created_at))
            ui.label(" · ".join(details)).classes("text-caption text-secondary lp-token")
            if job.status in (JobStatus.running, JobStatus.cancelled, JobStatus.failed) and job.total_steps:
                ui.linear_progress(value=min(1.0, job.step / job.total_steps), show_value=False).props(
                    "rounded size=8px instant-feedback").mark(f"progress-{job.id}")
            if job.status != JobStatus.succeeded:
                ui.label(progress_line(job)).classes("text-caption").mark(f"progress-text-{job.id}")
            if job.status == JobStatus.failed and job.error:
                ui.label(job.error).classes("text-caption text-negative lp-token")
            if job.status == JobStatus.succeeded:
                ui.label(_("Done in {steps} steps · output {path}", steps=job.step,
                           path=job.output_path or "—")).classes("text-caption text-positive lp-token")


# --- SwanLab -------------------------------------------------------------------------------------------------------


def dashboard_address(status: tracking.DashboardStatus, request: Request) -> str:
    """The dashboard's address as this browser reaches it: a dashboard listening on every interface is on the host
    the browser reached the portal at."""
    if status.url.startswith(("http://0.0.0.0:", "http://[::]:")) and request.url.hostname:
        return f"http://{request.url.hostname}:{status.url.rsplit(':', 1)[1]}"
    return status.url


class SwanLabAdmin:
    """For admins on the job list: where runs log (the local dashboard, a SwanLab cloud with its host, API key and a
    connection test, or nowhere), and the local dashboard: whether it runs, where, start and stop."""

    MODES = (("local", N_("Local dashboard")), ("cloud", N_("SwanLab cloud")), ("disabled", N_("Off")))

    def __init__(self, user: User, ip: str | None) -> None:
        self.user = user
        self.ip = ip

    def build(self) -> None:
        with section(_("SwanLab"), icon="dashboard"):
            ui.label(_("Where training runs log: in local mode under the data directory, shown by SwanLab's dashboard "
                       "running beside the portal (job pages embed it); in cloud mode on a SwanLab server with an API "
                       "key.")).classes("text-caption text-secondary")
            self.body()

    @ui.refreshable_method
    def body(self) -> None:
        settings = query(swanlab_settings.read, user=self.user)
        self.settings_form(settings)
        ui.separator()
        self.panel(query(tracking.read_dashboard, user=self.user), settings)

    def settings_form(self, settings: swanlab_settings.SwanLabSettings) -> None:
        self.mode = ui.toggle({k: _(v) for k, v in self.MODES}, value=settings.mode.value).props(
            "no-caps unelevated toggle-color=primary").mark("swanlab-mode")
        with ui.column().classes("w-full gap-2") as cloud:
            cloud.bind_visibility_from(self.mode, "value", value="cloud")
            self.host = ui.input(_("SwanLab server"), value=settings.cloud_host,
                                 placeholder=swanlab_settings.DEFAULT_CLOUD_HOST).props(
                "outlined dense maxlength=300").classes("w-full max-w-xl").mark("swanlab-host")
            ui.label(_("{host} is SwanLab's public cloud; a private SwanLab server has an address of its own.",
                       host=swanlab_settings.DEFAULT_CLOUD_HOST)).classes("text-caption text-secondary")
            self.key = ui.input(_("New API key (empty keeps the saved one)") if settings.key_set else _("API key"),
                                password=True, password_toggle_button=True).props(
                "outlined dense maxlength=500 autocomplete=off").classes("w-full max-w-xl").mark("swanlab-key")
            with ui.row().classes("items-center gap-x-3 gap-y-1"):
                if settings.key_set:
                    ui.icon("key", size="1.1rem").classes("text-positive")
                    ui.label(_("Key saved: {hint}", hint=settings.key_hint or "••••")).classes(
                        "text-caption lp-token").mark("swanlab-key-hint")
                    self.remove_key: ui.checkbox | None = ui.checkbox(_("Remove the saved key")).props(
                        "dense").mark("swanlab-remove-key")
                else:
                    self.remove_key = None
                    ui.label(_("No key saved.")).classes("text-caption text-secondary").mark("swanlab-key-hint")
                ui.link(_("Get a key"), f"{settings.web_host}/space/~/settings", new_tab=True).classes(
                    "text-caption")
        with ui.row().classes("w-full items-center gap-2"):
            ui.button(_("Save"), icon="save", on_click=self.save).props("unelevated").mark("swanlab-save")
            self.test_button = ui.button(_("Test connection"), icon="network_check", on_click=self.test).props(
                "outline").mark("swanlab-test")
            self.test_button.bind_visibility_from(self.mode, "value", value="cloud")
            self.spinner = ui.spinner(size="1.4rem").mark("swanlab-testing")
            self.spinner.visible = False
        self.result = ui.label().classes("text-caption break-words").mark("swanlab-test-result")
        self.result.bind_visibility_from(self.mode, "value", value="cloud")

    def changes(self) -> SwanLabSettingsUpdate:
        key = (self.key.value or "").strip()
        if self.remove_key is not None and self.remove_key.value and not key:
            key_change: str | None = ""
        else:
            key_change = key or None
        return SwanLabSettingsUpdate(mode=self.mode.value, cloud_host=self.host.value or "", api_key=key_change)

    async def save(self) -> None:
        try:
            await call(swanlab_settings.update, user=self.user, changes=self.changes(), ip=self.ip)
        except DomainError as error:
            show_error(error)
            return
        ui.notify(_("SwanLab settings saved"), type="positive", position="top")
        self.body.refresh()

    async def test(self) -> None:
        candidate = SwanLabConnectionTest(cloud_host=self.host.value or None, api_key=self.key.value or None)
        self.test_button.disable()
        self.spinner.visible = True
        self.result.text = _("Testing the connection…")
        self.result.classes(replace="text-caption break-words text-secondary")
        try:
            outcome = await call_async(swanlab_settings.test_connection, user=self.user, candidate=candidate,
                                       ip=self.ip)
        except DomainError as error:
            self.result.text = error_text(error)
            self.result.classes(replace="text-caption break-words text-negative")
            return
        finally:
            self.test_button.enable()
            self.spinner.visible = False
        if outcome.ok:
            self.result.text = _("Connected to {host} as {username} in {ms} ms", host=outcome.host,
                                 username=outcome.username, ms=outcome.latency_ms)
            self.result.classes(replace="text-caption break-words text-positive")
        else:
            self.result.text = _("{error} ({ms} ms)", error=outcome.error(page_language()), ms=outcome.latency_ms)
            self.result.classes(replace="text-caption break-words text-negative")

    def panel(self, status: tracking.DashboardStatus, settings: swanlab_settings.SwanLabSettings) -> None:
        if status.mode == "cloud" and not status.running:
            ui.label(_("Runs go to {host}; the local dashboard is for local mode.", host=settings.web_host)).classes(
                "text-caption text-secondary break-words").mark("swanlab-status")
            return
        with ui.row().classes("w-full items-center gap-2"):
            ui.label(_("SwanLab dashboard")).classes("text-subtitle2")
            if status.mode == "disabled":
                ui.badge(_("disabled"), color="grey-7").mark("swanlab-status")
            elif status.running:
                ui.badge(_("running"), color="positive").mark("swanlab-status")
                ui.link(status.url, status.url, new_tab=True).classes("lp-token").mark("swanlab-url")
            else:
                ui.badge(_("stopped"), color="grey-7").mark("swanlab-status")
            ui.space()
            if status.running:
                ui.button(_("Stop"), icon="stop", on_click=self.stop).props("outline color=negative").mark(
                    "swanlab-stop")
            elif status.mode == "local":
                ui.button(_("Start"), icon="play_arrow", on_click=self.start).props("unelevated").mark(
                    "swanlab-start")
        ui.label(_("Runs in {path} · dashboard at {url}", path=status.log_dir, url=status.url)).classes(
            "text-caption text-secondary lp-token")

    async def start(self) -> None:
        await self.act(tracking.start_dashboard, _("The SwanLab dashboard is running"))

    async def stop(self) -> None:
        await self.act(tracking.stop_dashboard, _("The SwanLab dashboard is stopped"))

    async def act(self, action: Any, done: str) -> None:
        try:
            await call(action, user=self.user, ip=self.ip)
        except DomainError as error:
            show_error(error)
            return
        ui.notify(done, type="positive", position="top")
        self.body.refresh()


def swanlab_view(status: tracking.DashboardStatus, request: Request, *, admin: bool,
                 job: TrainingJobPublic | None = None) -> None:
    """The SwanLab dashboard in a frame, the run in the SwanLab cloud, or why neither is there. `status.mode` is the
    saved tracking mode; `job` (when given) links its run in the cloud."""
    if status.mode == "cloud":
        settings = query(swanlab_settings.load)
        run_url = tracking.cloud_run_url(job.output_dir) if job is not None else None
        with ui.row().classes("w-full items-center gap-2 no-wrap").mark("swanlab-cloud"):
            ui.icon("cloud", size="1.4rem").classes("text-secondary")
            ui.label(_("Runs of this portal go to the SwanLab cloud at {host}, project {project}.",
                       host=settings.web_host, project=tracking.PROJECT)).classes("text-secondary")
            ui.space()
            if run_url:
                ui.link(_("Open this run in SwanLab"), run_url, new_tab=True).classes("text-caption").mark(
                    "swanlab-run-link")
            else:
                ui.link(_("Open SwanLab"), settings.web_host, new_tab=True).classes("text-caption").mark(
                    "swanlab-cloud-link")
        return
    if status.running:
        address = dashboard_address(status, request)
        with ui.row().classes("w-full items-center gap-2"):
            ui.label(_("SwanLab's own view of the runs: open this job's run in the list on the left.")).classes(
                "text-caption text-secondary")
            ui.space()
            ui.link(_("Open in a new tab"), address, new_tab=True).classes("text-caption")
        ui.element("iframe").props(f'src="{address}" title="SwanLab"').classes(
            "w-full h-[640px] rounded border-0").mark("swanlab-frame")
        return
    with ui.row().classes("w-full items-center gap-2 no-wrap").mark("swanlab-off"):
        ui.icon("info", size="1.4rem").classes("text-secondary")
        if status.mode == "disabled":
            ui.label(_("SwanLab tracking is disabled on this portal.")).classes("text-secondary")
        elif admin:
            ui.label(_("The SwanLab dashboard is not running. Start it in the SwanLab section of the Training "
                       "page.")).classes("text-secondary")
        else:
            ui.label(_("The SwanLab dashboard is not running; an administrator can start it. The charts above "
                       "show this run meanwhile.")).classes("text-secondary")


# --- the wizard ---------------------------------------------------------------------------------------------------


@router.page("/training/new")
def new_job_page(request: Request) -> None:
    user = page_user(request)
    with frame(_("New training job")):
        Wizard(user, request.client.host if request.client else None).build()


class Wizard:
    def __init__(self, user: User, ip: str | None) -> None:
        self.user = user
        self.ip = ip
        self.method = "lora"
        self.preset = "balanced"
        self.values: dict[str, Any] = training.default_params()
        self.inputs: dict[str, Any] = {}
        self.model_ok = False

    def build(self) -> None:
        with ui.row().classes("w-full items-center"):
            ui.button(_("Back to the jobs"), icon="arrow_back", on_click=lambda: ui.navigate.to("/training")).props(
                "flat dense")
        self.model_section()
        self.data_section()
        self.method_section()
        self.params_section()
        self.estimate_section()
        self.run_section()

    # base model
    def model_section(self) -> None:
        with section(_("1. Base model"), icon="memory"):
            ui.label(_("A local model directory, or a model id already in this machine's Hugging Face cache. Its "
                       "config and tokenizer are loaded to check it.")).classes("text-caption text-secondary")
            with ui.row().classes("w-full items-start gap-2 no-wrap"):
                self.base_model = ui.input(_("Base model"), placeholder="Qwen/Qwen2.5-0.5B-Instruct").props(
                    "outlined dense clearable").classes("grow").mark("base-model")
                self.base_model.on("keydown.enter", self.check_model)
                ui.button(_("Check"), icon="fact_check", on_click=self.check_model).props("outline").mark(
                    "check-model")
            self.model_info = ui.label("").classes("text-caption").mark("model-info")

    async def check_model(self) -> None:
        name = (self.base_model.value or "").strip()
        self.model_ok = False
        self.model_info.classes(remove="text-positive text-negative")
        if not name:
            self.model_info.set_text(_("Enter a model directory or id first."))
            return
        self.model_info.set_text(_("Loading the config and tokenizer…"))
        try:
            info, memory = await call(lambda session, **kw: training.estimate(**kw), base_model=name,
                                      method=self.method, params=self.params())
        except DomainError as error:
            self.model_info.set_text(error_text(error))
            self.model_info.classes(add="text-negative")
            self.show_estimate(None)
            return
        self.model_ok = True
        template = _("chat template") if info.chat_template else _("no chat template: ChatML is used")
        self.model_info.set_text(_("{type} · {parameters} parameters · {layers} layers · {template}",
                                   type=info.model_type, parameters=format_count(info.parameters),
                                   layers=info.layers, template=template))
        self.model_info.classes(add="text-positive")
        self.show_estimate(memory)
        if not self.name.value:
            self.name.set_value(f"{info.path.rstrip('/').rsplit('/', 1)[-1]}-{self.method}")

    # dataset
    def data_section(self) -> None:
        with section(_("2. Dataset"), icon="dataset"):
            found = query(datasets.list_datasets, user=self.user)
            if not found:
                with ui.row().classes("items-center gap-2"):
                    ui.label(_("You have no dataset yet.")).classes("text-secondary")
                    ui.link(_("Upload one"), "/datasets")
            options = {d.id: f"{d.name} (#{d.id})" for d in found}
            with ui.row().classes("w-full gap-2 no-wrap"):
                self.dataset = ui.select(options, label=_("Dataset"), on_change=self.dataset_changed).props(
                    "outlined dense").classes("grow").mark("dataset")
                self.version = ui.select({}, label=_("Version")).props("outlined dense").classes("w-40").mark(
                    "dataset-version")

    def dataset_changed(self) -> None:
        if self.dataset.value is None:
            self.version.set_options({})
            return
        versions = query(lambda session: datasets.versions_of(session, self.dataset.value))
        options = {v.version: _("v{version} · {rows} rows", version=v.version, rows=v.rows) for v in versions}
        self.version.set_options(options, value=versions[0].version if versions else None)

    # method
    def method_section(self) -> None:
        reason = devices.qlora_unavailable_reason()
        with section(_("3. Method"), icon="tune"):
            self.method_toggle = ui.toggle({m: _(METHOD_LABELS[m]) for m in METHODS}, value=self.method,
                                           on_change=self.method_changed).props("no-caps spread").classes(
                "w-full").mark("method")
            self.method_help = ui.label(_(METHOD_HELP[self.method])).classes("text-caption text-secondary")
            self.qlora_note = ui.label(_(reason) if reason else "").classes("text-caption text-negative").mark(
                "qlora-reason")
            self.qlora_note.set_visibility(False)
            self.merge = ui.checkbox(_("Merge the adapter into the base model when done (a standalone model)")).mark(
                "merge")

    async def method_changed(self) -> None:
        self.method = self.method_toggle.value
        self.method_help.set_text(_(METHOD_HELP[self.method]))
        self.qlora_note.set_visibility(self.method == "qlora" and bool(devices.qlora_unavailable_reason()))
        self.merge.set_visibility(self.method != "full")
        if self.method == "full":
            self.merge.set_value(False)
        for name in LORA_ONLY:
            self.inputs[name].set_visibility(self.method != "full")
        self.apply_preset(self.preset)
        await self.update_estimate()

    # hyperparameters
    def params_section(self) -> None:
        with section(_("4. Hyperparameters"), icon="settings"):
            with ui.row().classes("w-full items-center gap-2"):
                self.preset_toggle = ui.toggle({p: _(label) for p, label in training.PRESET_LABELS.items()},
                                               value=self.preset, on_change=self.preset_changed).props(
                    "no-caps").mark("preset")
            self.preset_help = ui.label(_(training.PRESET_HELP[self.preset])).classes("text-caption text-secondary")
            with ui.element("div").classes("w-full grid grid-cols-1 sm:grid-cols-2 lg:grid-cols-3 gap-x-4 gap-y-2"):
                for name, spec in training.PARAMS.items():
                    with ui.column().classes("gap-0") as cell:
                        self.inputs[name] = cell
                        self.param_input(name, spec)
                        ui.label(_(spec.help)).classes("text-caption text-secondary")

    def param_input(self, name: str, spec: training.Param) -> None:
        label = _(PARAM_LABELS[name])
        value = self.values[name]
        element: Any
        if spec.kind is bool:
            element = ui.switch(label, value=value)
        elif name == "scheduler":
            element = ui.select(list(training.SCHEDULERS), label=label, value=value).props("outlined dense")
        elif name == "target_modules":
            element = ui.input(label, value=", ".join(value or []), placeholder="q_proj, v_proj").props(
                "outlined dense")
        else:
            step = 1 if spec.kind is int else None
            element = ui.number(label, value=value, min=spec.low, max=spec.high, step=step).props(
                "outlined dense clearable" if value is None else "outlined dense")
        element.classes("w-full").mark(f"param-{name}")
        element.on_value_change(lambda e, n=name: self.value_changed(n, e.value))
        setattr(self, f"_input_{name}", element)

    def value_changed(self, name: str, value: Any) -> None:
        if name == "target_modules":
            value = [part.strip() for part in str(value or "").split(",") if part.strip()] or None
        elif isinstance(value, float) and training.PARAMS[name].kind is int and value.is_integer():
            value = int(value)
        self.values[name] = value

    def preset_changed(self) -> None:
        self.apply_preset(self.preset_toggle.value)

    def apply_preset(self, preset: str) -> None:
        self.preset = preset
        self.preset_help.set_text(_(training.PRESET_HELP[preset]))
        self.values = training.default_params(self.method) | training.PRESETS[preset]
        for name in training.PARAMS:
            element = getattr(self, f"_input_{name}")
            value = self.values[name]
            element.set_value(", ".join(value or []) if name == "target_modules" else value)

    def params(self) -> dict[str, Any]:
        return {k: v for k, v in self.values.items() if v is not None and v != ""}

    # memory estimate
    def estimate_section(self) -> None:
        with section(_("5. Memory estimate"), icon="speed"):
            with ui.row().classes("w-full items-center justify-between gap-2"):
                ui.label(_("Device memory at the peak: weights, what trains with its optimizer state, and the "
                           "activations of one batch. Rough (±30 %).")).classes("text-caption text-secondary")
                ui.button(_("Update"), icon="refresh", on_click=self.update_estimate).props("flat dense").mark(
                    "update-estimate")
            self.estimate_box = ui.row().classes("w-full gap-4").mark("estimate")
            self.show_estimate(None)

    async def update_estimate(self) -> None:
        if not self.model_ok:
            return
        try:
            _info, memory = await call(lambda session, **kw: training.estimate(**kw),
                                       base_model=self.base_model.value, method=self.method, params=self.params())
        except DomainError as error:
            show_error(error)
            return
        self.show_estimate(memory)

    def show_estimate(self, memory: training.MemoryEstimate | None) -> None:
        self.estimate_box.clear()
        with self.estimate_box:
            if memory is None:
                ui.label(_("Check a base model to see what it needs.")).classes("text-secondary")
                return
            for label, value in ((_("Weights"), memory.weights),
                                 (_("Gradients and optimizer"), memory.gradients_and_optimizer),
                                 (_("Activations"), memory.activations), (_("Total"), memory.total)):
                with ui.column().classes("gap-0"):
                    ui.label(label).classes("text-caption text-secondary")
                    ui.label(format_bytes(value)).classes("text-subtitle1 text-weight-medium")
            with ui.column().classes("gap-0"):
                ui.label(_("Trainable parameters")).classes("text-caption text-secondary")
                ui.label(format_count(memory.trainable_parameters)).classes("text-subtitle1 text-weight-medium")

    # name, schedule, submit
    def run_section(self) -> None:
        with section(_("6. Run"), icon="rocket_launch"):
            with ui.element("div").classes("w-full grid grid-cols-1 sm:grid-cols-2 gap-x-4 gap-y-2"):
                self.name = ui.input(_("Job name")).props("outlined dense").classes("w-full").mark("job-name")
                self.start_after = ui.input(_("Start after (UTC, optional)")).props(
                    "outlined dense type=datetime-local").classes("w-full").mark("start-after")
            with ui.row().classes("w-full justify-end"):
                ui.button(_("Queue job"), icon="send", on_click=self.submit).props("unelevated").mark("submit-job")

    async def submit(self) -> None:
        start_after = None
        if self.start_after.value:
            try:
                start_after = datetime.fromisoformat(self.start_after.value).replace(tzinfo=UTC)
            except ValueError:
                ui.notify(_("The start time is not a date and time"), type="negative", position="top")
                return
        if self.dataset.value is None:
            ui.notify(_("Choose a dataset"), type="negative", position="top")
            return
        body = TrainingJobCreate(name=self.name.value or "", base_model=self.base_model.value or "",
                                 dataset_id=self.dataset.value, dataset_version=self.version.value,
                                 method=self.method, params=self.params(), merge=bool(self.merge.value),
                                 start_after=start_after)
        try:
            job = await call(training.create_job, user=self.user, data=body, ip=self.ip)
        except DomainError as error:
            show_error(error)
            return
        ui.notify(_("{name} is queued", name=job.name), type="positive", position="top")
        ui.navigate.to(f"/training/{job.id}")


# --- several jobs' loss curves ------------------------------------------------------------------------------------


def compare_picker(jobs: list[TrainingJobPublic], chosen: list[int]) -> None:
    """Choose jobs and open their loss curves overlaid."""
    options = {j.id: f"{j.name} (#{j.id})" for j in jobs}
    with ui.row().classes("w-full items-center gap-2 no-wrap"):
        picker = ui.select(options, value=[i for i in chosen if i in options], multiple=True,
                           label=_("Compare the loss curves of")).props("outlined dense use-chips").classes(
            "grow min-w-0").mark("compare-jobs")

        def open_comparison() -> None:
            if not picker.value:
                ui.notify(_("Choose the jobs to compare"), type="warning", position="top")
                return
            ui.navigate.to("/training/compare?jobs=" + ",".join(str(i) for i in picker.value))

        ui.button(_("Compare"), icon="stacked_line_chart", on_click=open_comparison).props("outline").mark(
            "compare-open")


@router.page("/training/compare")
def compare_page(request: Request, jobs: str = "") -> None:
    user = page_user(request)
    wanted = [int(part) for part in jobs.split(",") if part.strip().isdigit()]
    with frame(_("Compare training runs")):
        with ui.row().classes("w-full items-center"):
            ui.button(_("Back to the jobs"), icon="arrow_back", on_click=lambda: ui.navigate.to("/training")).props(
                "flat dense")
        mine = query(training.list_public, user=user)
        compare_picker(mine, wanted)
        by_id = {job.id: job for job in mine}
        curves: dict[str, list[MetricPublic]] = {}
        for job_id in wanted:  # in the order asked for: the colours follow it
            if (job := by_id.get(job_id)) is not None:
                curves[f"{job.name} (#{job.id})"] = query(training.metrics, user=user, job_id=job.id)
        if not curves:
            ui.label(_("Choose the jobs whose loss curves to show on one chart.")).classes(
                "text-secondary").mark("compare-empty")
            return
        with ui.card().classes("w-full"):
            loss_comparison(curves)
        if any(m.eval_loss is not None for rows in curves.values() for m in rows):
            with ui.card().classes("w-full"):
                loss_comparison(curves, field="eval_loss")


# --- a job --------------------------------------------------------------------------------------------------------


@router.page("/training/{job_id}")
def job_page(request: Request, job_id: int) -> None:
    user = page_user(request)
    try:
        job = query(training.read_job, user=user, job_id=job_id)
    except DomainError as error:
        with frame(_("Training")):
            ui.label(error_text(error)).classes("text-negative").mark("job-error")
            ui.link(_("Back to the jobs"), "/training")
        return
    with frame(job.name):
        JobView(user, request.client.host if request.client else None, job, request).build()


class JobView:
    def __init__(self, user: User, ip: str | None, job: TrainingJobPublic, request: Request) -> None:
        self.user = user
        self.ip = ip
        self.job = job
        self.request = request
        self.metrics: list[MetricPublic] = []
        self.log_text = ""

    def build(self) -> None:
        with ui.row().classes("w-full items-center"):
            ui.button(_("Back to the jobs"), icon="arrow_back", on_click=lambda: ui.navigate.to("/training")).props(
                "flat dense")
        self.summary()
        self.deploy_panel = DeployPanel(self.user, self.ip, self.job)
        self.deploy_panel.build()
        self.metrics = query(training.metrics, user=self.user, job_id=self.job.id)
        with section(_("Charts"), icon="show_chart"):
            self.charts = MetricCharts(self.metrics)
        with section(_("SwanLab"), icon="dashboard"):
            swanlab_view(tracking.status(), self.request, admin=self.user.role == Role.admin, job=self.job)
        with ui.element("div").classes("w-full grid grid-cols-1 lg:grid-cols-2 gap-4"):
            with section(_("Log"), icon="article"):
                # ui.log keeps the newest line in view as lines arrive.
                self.log = ui.log(max_lines=LOG_LINES).classes(
                    "w-full h-96 rounded bg-slate-900 text-slate-100 text-xs p-2 break-all").mark("log")
            with section(_("Metrics"), icon="insights"):
                self.metric_table()
        with ui.element("div").classes("w-full grid grid-cols-1 lg:grid-cols-2 gap-4"):
            with section(_("Checkpoints"), icon="save"):
                self.checkpoint_list()
            with section(_("Parameters"), icon="settings"):
                self.parameter_grid()
        self.load()
        self.timer = ui.timer(REFRESH_SECONDS, self.poll)

    def load(self) -> None:
        self.show_log(query(training.read_log, user=self.user, job_id=self.job.id))
        self.metric_table.refresh()

    async def poll(self) -> None:
        try:
            job = await call(training.read_job, user=self.user, job_id=self.job.id)
            # The last step shown is asked for again: an evaluation may have joined it since.
            since = self.metrics[-1].step - 1 if self.metrics else None
            new = await call(training.metrics, user=self.user, job_id=self.job.id, since_step=since)
            log = await call(training.read_log, user=self.user, job_id=self.job.id)
        except DomainError:  # deleted meanwhile
            self.timer.deactivate()
            return
        if job is None:  # the portal is shutting down (NiceGUI's io_bound answers None then)
            return
        changed = job.model_dump() != self.job.model_dump()
        self.job = job
        if changed:
            self.summary.refresh()
            self.checkpoint_list.refresh()
            self.deploy_panel.job_changed(job)
        if new and new != self.metrics[-len(new):]:
            self.metrics = [m for m in self.metrics if m.step < new[0].step] + new
            self.metric_table.refresh()
            self.charts.extend(new)
        self.show_log(log)

    def show_log(self, text: str) -> None:
        text = text[: text.rfind("\n") + 1]  # whole lines only: the worker may be halfway through one
        if text == self.log_text:
            return
        if self.log_text and text.startswith(self.log_text):  # the usual case: lines were appended
            new = text[len(self.log_text):]
        else:  # first load, or the tail window moved on
            self.log.clear()
            new = text
        self.log_text = text
        for line in new.splitlines():
            self.log.push(line)

    async def after_action(self) -> None:
        await self.poll()

    @ui.refreshable_method
    def summary(self) -> None:
        job = self.job
        with ui.card().classes("w-full gap-2").mark("job-summary"):
            with ui.row().classes("w-full items-center gap-2"):
                status_badge(job.status)
                ui.badge(_(METHOD_LABELS[job.method]), color="secondary").props("outline")
                ui.label(job.base_model).classes("text-caption text-secondary lp-token")
                ui.space()
                action_buttons(job, self.user, self.ip, self.after_action)
            if job.total_steps and job.status != JobStatus.queued:
                ui.linear_progress(value=min(1.0, job.step / job.total_steps), show_value=False).props(
                    "rounded size=10px instant-feedback")
            ui.label(progress_line(job) if job.status != JobStatus.succeeded else
                     _("Done in {steps} steps", steps=job.step)).mark("job-progress")
            facts = [_("dataset {id} v{version}", id=job.dataset_id or "—", version=job.dataset_version),
                     _("created {time}", time=format_time(job.created_at))]
            if job.started_at:
                facts.append(_("started {time}", time=format_time(job.started_at)))
            if job.finished_at:
                facts.append(_("ended {time}", time=format_time(job.finished_at)))
            if job.attempts:
                facts.append(_("restarted {n} times after its worker died", n=job.attempts))
            ui.label(" · ".join(facts)).classes("text-caption text-secondary")
            if job.error:
                ui.label(job.error).classes("text-negative lp-token").mark("job-error")
            if job.output_path:
                ui.label(_("Output: {path}", path=job.output_path)).classes("text-caption lp-token").mark(
                    "job-output")
            if job.merged_path:
                ui.label(_("Merged model: {path}", path=job.merged_path)).classes("text-caption lp-token")

    @ui.refreshable_method
    def metric_table(self) -> None:
        if not self.metrics:
            ui.label(_("No metrics yet: they appear every logging step.")).classes("text-secondary")
            return
        columns = [{"name": key, "label": label, "field": key, "align": "right"} for key, label in (
            ("step", _("Step")), ("loss", _("Loss")), ("eval_loss", _("Eval loss")), ("learning_rate", _("LR")),
            ("grad_norm", _("Grad norm")), ("tokens_per_s", _("Tokens/s")))]

        def cell(value: float | None, digits: str) -> str:
            return "" if value is None else format(value, digits)

        rows = [{"step": m.step, "loss": cell(m.loss, ".4f"), "eval_loss": cell(m.eval_loss, ".4f"),
                 "learning_rate": cell(m.learning_rate, ".2e"), "grad_norm": cell(m.grad_norm, ".3f"),
                 "tokens_per_s": cell(m.tokens_per_s, ",.0f")} for m in reversed(self.metrics[-METRIC_ROWS:])]
        ui.table(columns=columns, rows=rows, row_key="step", pagination=10).props("dense flat").classes(
            "w-full").mark("metrics")

    @ui.refreshable_method
    def checkpoint_list(self) -> None:
        if not self.job.checkpoints:
            ui.label(_("No checkpoint yet: one is saved every {n} steps.",
                       n=self.job.params.get("save_steps", "?"))).classes("text-secondary")
            return
        for checkpoint in reversed(self.job.checkpoints):
            with ui.row().classes("w-full items-center gap-2 no-wrap"):
                ui.icon("save", size="1.1rem").classes("text-secondary")
                ui.label(_("Step {step}", step=checkpoint.step)).classes("text-weight-medium")
                ui.label(format_time(checkpoint.created_at)).classes("text-caption text-secondary")

    def parameter_grid(self) -> None:
        with ui.element("div").classes("w-full grid grid-cols-2 gap-x-4 gap-y-1"):
            for name, value in self.job.params.items():
                if self.job.method == "full" and name in LORA_ONLY:
                    continue
                shown = "—" if value is None else ", ".join(value) if isinstance(value, list) else str(value)
                ui.label(_(PARAM_LABELS.get(name, name))).classes("text-caption text-secondary")
                ui.label(shown).classes("text-caption lp-token")
