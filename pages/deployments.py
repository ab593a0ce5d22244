"""Deployed models on the Training pages: a job's Deploy panel (deploy, follow it while it starts, chat with it,
compare it, undeploy) and the list of deployments above the jobs."""

from __future__ import annotations

from typing import Any

from nicegui import app, ui

from backend.errors import DomainError
from backend.i18n import N_
from backend.models.deployment import DeploymentPublic, DeploymentStatus
from backend.models.training import JobStatus, TrainingJobPublic
from backend.models.user import Role, User
from backend.services import deployments
from pages.chat import LAST_MODEL_KEY
from pages.compare import HANDOFF_KEY
from pages.service import call, query, show_error
from ui.i18n import _
from ui.widgets import confirm, format_time, section

POLL_SECONDS = 2.0

STATUS_LABELS = {"starting": N_("starting"), "running": N_("running"), "stopped": N_("stopped"),
                 "failed": N_("failed")}
STATUS_COLORS = {"starting": "primary", "running": "positive", "stopped": "grey-7", "failed": "negative"}


def status_badge(status: str) -> None:
    ui.badge(_(STATUS_LABELS.get(status, status)), color=STATUS_COLORS.get(status, "grey-7")).mark(
        "deployment-status")


def chat_with(model: str) -> None:
    app.storage.user[LAST_MODEL_KEY] = model  # a new conversation starts with it
    ui.navigate.to("/chat")


def compare_with(model: str) -> None:
    app.storage.user[HANDOFF_KEY] = {"models": [model]}
    ui.navigate.to("/compare")


async def undeploy(deployment: DeploymentPublic, user: User, ip: str | None, button: ui.button | None = None) -> bool:
    if not await confirm(_("Stop serving {model}? Chats with it stop working until it is deployed again.",
                           model=deployment.model), ok=_("Undeploy")):
        return False
    if button is not None:
        button.props("loading")
    try:
        await call(deployments.undeploy, user=user, deployment_id=deployment.id, ip=ip)
    except DomainError as error:
        show_error(error)
        return False
    finally:
        if button is not None:
            button.props(remove="loading")
    ui.notify(_("{model} is undeployed", model=deployment.model), type="info", position="top")
    return True


class DeployPanel:
    """A job's deployment: what deploying does, the Deploy button, the status while it starts, then the model's
    name with Chat and Compare, and Undeploy."""

    def __init__(self, user: User, ip: str | None, job: TrainingJobPublic) -> None:
        self.user = user
        self.ip = ip
        self.job = job
        self.deployment: DeploymentPublic | None = None
        self.timer: ui.timer | None = None

    def build(self) -> None:
        found = query(deployments.list_public, user=self.user, job_id=self.job.id, refresh=False)
        self.deployment = found[0] if found else None
        with section(_("Deployment"), icon="rocket_launch") as self.card:
            self.card.mark("deploy-panel")
            self.body()
        self._show_card()
        self.timer = ui.timer(POLL_SECONDS, self.poll, active=self._starting())

    def _show_card(self) -> None:
        """Only for a job that succeeded (or was deployed): a queued or failed job has nothing to deploy."""
        self.card.set_visibility(self.job.status == JobStatus.succeeded or self.deployment is not None)

    def _starting(self) -> bool:
        return self.deployment is not None and self.deployment.status == DeploymentStatus.starting

    async def poll(self) -> None:
        try:
            found = await call(deployments.list_public, user=self.user, job_id=self.job.id)
        except DomainError:
            return
        deployment = found[0] if found else None
        if deployment != self.deployment:
            self.deployment = deployment
            self.body.refresh()
        if self.timer is not None:
            self.timer.active = self._starting()

    def job_changed(self, job: TrainingJobPublic) -> None:
        if job.status != self.job.status:
            self.job = job
            self.body.refresh()
            self._show_card()

    @ui.refreshable_method
    def body(self) -> None:
        deployment = self.deployment
        if deployment is None or deployment.status in (DeploymentStatus.stopped, DeploymentStatus.failed):
            self.offer(deployment)
            return
        with ui.row().classes("w-full items-center gap-2"):
            status_badge(deployment.status)
            ui.label(deployment.model).classes("text-weight-medium lp-token").mark("deployed-model")
            ui.space()
            if deployment.status == DeploymentStatus.running:
                ui.button(_("Chat with it"), icon="chat", on_click=lambda: chat_with(deployment.model)).props(
                    "unelevated color=primary").mark("chat-with-deployed")
                ui.button(_("Compare"), icon="compare_arrows",
                          on_click=lambda: compare_with(deployment.model)).props("flat").mark("compare-deployed")
            stop = ui.button(_("Undeploy"), icon="stop_circle").props("flat color=negative").mark("undeploy")
            stop.on_click(lambda: self.undeploy(deployment, stop))
        if deployment.status == DeploymentStatus.starting:
            with ui.row().classes("items-center gap-2"):
                ui.spinner(size="1.2rem")
                ui.label(_("Starting: the adapter is merged into its base if needed, then the model loads. This "
                           "takes from seconds to minutes, depending on its size.")).classes("text-secondary")
        else:
            ui.label(_("Serving since {time}. Everyone can choose {model} in Chat and Compare, and call it through "
                       "the gateway (/v1/chat/completions).", time=format_time(deployment.started_at),
                       model=deployment.model)).classes("text-secondary")

    def offer(self, deployment: DeploymentPublic | None) -> None:
        if deployment is not None and deployment.status == DeploymentStatus.failed:
            with ui.row().classes("items-center gap-2"):
                status_badge(deployment.status)
                ui.label(deployment.model).classes("lp-token")
            ui.label(deployment.error or "").classes("text-negative text-caption lp-token lp-prewrap").mark(
                "deployment-error")
        elif deployment is not None:
            with ui.row().classes("items-center gap-2"):
                status_badge(deployment.status)
                ui.label(_("{model} was undeployed {time}.", model=deployment.model,
                           time=format_time(deployment.stopped_at))).classes("text-secondary")
        if self.job.status != JobStatus.succeeded:
            ui.label(_("A job can be deployed once it has succeeded.")).classes("text-secondary")
            return
        ui.label(_("Serve this model on the portal's machine and chat with it: it appears as local/… in Chat, "
                   "Compare and the gateway, for everyone. A LoRA adapter is merged into its base first.")).classes(
            "text-secondary")
        if self.job.owner == self.user.username or self.user.role == Role.admin:
            button = ui.button(_("Deploy again") if deployment else _("Deploy"), icon="rocket_launch").props(
                "unelevated color=primary").mark("deploy")
            button.on_click(lambda: self.deploy(button))

    async def deploy(self, button: ui.button) -> None:
        button.props("loading")
        try:
            await call(deployments.deploy, user=self.user, job_id=self.job.id, ip=self.ip)
        except DomainError as error:
            button.props(remove="loading")
            show_error(error)
            return
        await self.poll()

    async def undeploy(self, deployment: DeploymentPublic, button: ui.button) -> None:
        if await undeploy(deployment, self.user, self.ip, button):
            await self.poll()


class DeploymentList:
    """Above the jobs: the deployments one may see (one's own; admins all), while there are any."""

    def __init__(self, user: User, ip: str | None) -> None:
        self.user = user
        self.ip = ip
        self.shown: list[DeploymentPublic] = []

    def build(self) -> None:
        self.shown = query(deployments.list_public, user=self.user, refresh=False)
        self.body(self.shown)

    async def poll(self) -> None:
        found = await call(deployments.list_public, user=self.user)
        if found is not None and found != self.shown:  # None: the portal is shutting down
            self.shown = found
            self.body.refresh(found)

    @ui.refreshable_method
    def body(self, found: list[DeploymentPublic]) -> None:
        active = [d for d in found if d.status in (DeploymentStatus.starting, DeploymentStatus.running)]
        if not active:
            return
        with section(_("Deployed models"), icon="rocket_launch") as card:
            card.mark("deployments")
            for deployment in active:
                self.row(deployment)

    def row(self, deployment: DeploymentPublic) -> None:
        with ui.row().classes("w-full items-center gap-2").mark(f"deployment-{deployment.id}"):
            status_badge(deployment.status)
            ui.label(deployment.model).classes("text-weight-medium lp-token")
            details: list[Any] = [deployment.job_name]
            if self.user.role == Role.admin:
                details.append(_("by {owner}", owner=deployment.owner))
            if deployment.started_at and deployment.status == DeploymentStatus.running:
                details.append(_("since {time}", time=format_time(deployment.started_at)))
            ui.link(" · ".join(details), f"/training/{deployment.job_id}").classes(
                "text-caption text-secondary lp-token")
            ui.space()
            if deployment.status == DeploymentStatus.running:
                ui.button(icon="chat", on_click=lambda d=deployment: chat_with(d.model)).props(
                    "flat round dense").tooltip(_("Chat with it"))
            stop = ui.button(icon="stop_circle").props("flat round dense color=negative").mark(
                f"undeploy-{deployment.id}")
            stop.tooltip(_("Undeploy"))
            stop.on_click(lambda d=deployment, b=stop: self.undeploy(d, b))

    async def undeploy(self, deployment: DeploymentPublic, button: ui.button) -> None:
        if await undeploy(deployment, self.user, self.ip, button):
            await self.poll()
