"""Deploying a fine-tuned model: a managed OpenAI-compatible server (`transformers serve`) for a job that succeeded,
registered under the `local` provider so that the model is `local/<name>` in chat, compare and the gateway.

Each deployment is a process of its own (`python -m jobs.serve …`, in a session of its own, output in
`DATA_DIR/deployments/<id>/serve.log`): it merges a LoRA adapter into its base when the job did not, then becomes
`transformers serve` for the model on a free port of the loopback interface. The server has no authentication of its
own, so it never listens beyond 127.0.0.1: people reach it through the portal (chat, compare, the gateway), which
checks who they are and counts what they use.

Statuses: `starting` (merging, loading) → `running` (answers `/health`; the model is listed) → `stopped`
(undeployed) | `failed` (did not come up in time, or died). The queue's scheduler looks every few seconds
(`watch`); the list does too when someone reads it. A portal that stops cleanly stops its servers and starts them
again on its next start; one that dies leaves them running, and its successor adopts them.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import orjson
import psutil
from sqlmodel import Session, col, func, select

from backend.config import get_settings
from backend.errors import Conflict, Invalid, NotFound
from backend.models.base import utcnow
from backend.models.deployment import ACTIVE_DEPLOYMENT, Deployment, DeploymentPublic, DeploymentStatus
from backend.models.provider import Provider, ProviderModel
from backend.models.training import JobStatus, TrainingJob
from backend.models.user import Role, User
from backend.services import audit, providers, training
from backend.services.capabilities import guess_capabilities

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LOG_NAME = "serve.log"
STOP_TIMEOUT = 10.0  # seconds for a server to stop after SIGTERM, before SIGKILL
HEALTH_TIMEOUT = 1.0
LOG_TAIL = 1500  # characters of the server's log kept as the reason it failed

_lock = threading.Lock()
_processes: dict[int, subprocess.Popen[bytes]] = {}  # deployment id → the server this portal started
_adopted = False  # whether this portal has looked for the servers a previous one left


def deployments_dir() -> Path:
    return get_settings().data_dir / "deployments"


def folder_of(deployment: Deployment) -> Path:
    return deployments_dir() / str(deployment.id)


def log_path(deployment: Deployment) -> Path:
    return folder_of(deployment) / LOG_NAME


def endpoint(deployment: Deployment) -> str | None:
    return f"http://127.0.0.1:{deployment.port}/v1" if deployment.port else None


# --- names --------------------------------------------------------------------------------------------------------


def slug(text: str) -> str:
    """A model id from a job name: lower case letters, digits, `.`, `_` and `-`."""
    value = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    return value[:60].rstrip("-._") or "model"


def _unique_name(session: Session, job: TrainingJob) -> str:
    name = slug(job.name)
    taken = session.exec(select(Deployment).where(Deployment.name == name)).first()
    return name if taken is None else f"{name}-{job.id}"


# --- the model it serves --------------------------------------------------------------------------------------------


def source_arguments(job: TrainingJob) -> list[str]:
    """What `jobs.serve` gets to find the model: the full fine-tuned weights or the merged model, or the base and the
    adapter to merge first."""
    data = get_settings().data_dir
    if job.method == "full" or job.merged_path:
        path = job.output_path if job.method == "full" else job.merged_path
        if not path or not (data / path).is_dir():
            raise Conflict("The model of {name} is gone from the disk; train it again", name=job.name)
        return ["--model", str(data / path)]
    if not job.output_path or not (data / job.output_path).is_dir():
        raise Conflict("The adapter of {name} is gone from the disk; train it again", name=job.name)
    base = Path(job.base_model_path or job.base_model)
    if not (base / "config.json").is_file():
        raise Conflict("The base model of {name} is not at {path} any more", name=job.name, path=str(base))
    return ["--base", str(base), "--adapter", str(data / job.output_path),
            "--merged", str(training.job_dir(job) / "merged")]


def _context_length(job: TrainingJob) -> int | None:
    """The base model's context length, from its config (a fine-tune keeps it)."""
    try:
        config = orjson.loads((Path(job.base_model_path or job.base_model) / "config.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    value = config.get("max_position_embeddings") or config.get("text_config", {}).get("max_position_embeddings")
    return value if isinstance(value, int) and value > 0 else None


def local_provider(session: Session) -> Provider:
    """The provider deployed models belong to, made on the first deployment."""
    provider = session.exec(select(Provider).where(Provider.name == providers.LOCAL_PROVIDER)).first()
    if provider is None:
        provider = Provider(name=providers.LOCAL_PROVIDER, kind="openai", base_url="http://127.0.0.1", max_retries=0,
                            timeout_seconds=300.0)
        session.add(provider)
        session.flush()
    return provider


def _model_row(session: Session, deployment: Deployment) -> ProviderModel | None:
    provider = session.exec(select(Provider).where(Provider.name == providers.LOCAL_PROVIDER)).first()
    if provider is None:
        return None
    return session.exec(select(ProviderModel).where(ProviderModel.provider_id == provider.id,
                                                    ProviderModel.model_id == deployment.name)).first()


def _list_model(session: Session, deployment: Deployment, job: TrainingJob, *, available: bool) -> None:
    """Show (or hide) the deployed model under `local`; an admin's name, flags and defaults for it stay."""
    model = _model_row(session, deployment)
    if model is None:
        if not available:
            return
        model = ProviderModel(provider_id=local_provider(session).id, model_id=deployment.name,  # type: ignore[arg-type]
                              display_name=job.name, capabilities=guess_capabilities(job.base_model),
                              context_length=_context_length(job))
    model.available = available
    model.endpoint = endpoint(deployment) if available else None
    model.updated_at = utcnow()
    session.add(model)  # cached resolutions are forgotten when this commits (providers' ORM listener)


# --- processes ------------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_command(deployment: Deployment, job: TrainingJob, port: int) -> list[str]:
    return [sys.executable, "-m", "jobs.serve", *source_arguments(job), "--name", deployment.name,
            "--port", str(port), "--device", get_settings().deploy_device]


def _launch(session: Session, deployment: Deployment, job: TrainingJob, *, note: str) -> None:
    """Start the server of `deployment` (status `starting`), output appended to its log."""
    command = server_command(deployment, job, port := free_port())
    folder = folder_of(deployment)
    folder.mkdir(parents=True, exist_ok=True)
    settings = get_settings()
    env = dict(os.environ)
    env.update(PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")])))
    if settings.deploy_device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    with log_path(deployment).open("ab") as output:
        output.write(f"==== {utcnow():%Y-%m-%d %H:%M:%S} UTC: {note} (port {port}) ====\n".encode())
        output.flush()
        process = subprocess.Popen(command, cwd=folder, stdout=output, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    with _lock:
        _processes[deployment.id] = process  # type: ignore[index]
    deployment.status = DeploymentStatus.starting
    deployment.host = training.this_host()
    deployment.port, deployment.pid = port, process.pid
    deployment.attempts += 1
    deployment.error = None
    deployment.updated_at = utcnow()
    session.add(deployment)
    _list_model(session, deployment, job, available=False)
    session.commit()
    log.info("deployment %s (%s) starting on port %d, pid %d", deployment.id, deployment.name, port, process.pid)


def _is_server_of(deployment: Deployment) -> bool:
    """Whether the recorded pid is still this deployment's server (a reused pid belongs to something else)."""
    if deployment.pid is None or deployment.host != training.this_host():
        return False
    try:
        process = psutil.Process(deployment.pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        command = process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return "serve" in " ".join(command) and deployment.name in command and str(deployment.port) in command


def alive(deployment: Deployment) -> bool:
    with _lock:
        process = _processes.get(deployment.id)  # type: ignore[arg-type]
    if process is not None:
        return process.poll() is None
    return _is_server_of(deployment)


def _exit_reason(deployment: Deployment) -> str:
    with _lock:
        process = _processes.get(deployment.id)  # type: ignore[arg-type]
    code = process.returncode if process is not None else None
    if code is None:
        return "its process is gone"
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _log_tail(deployment: Deployment) -> str:
    text = training.tail(log_path(deployment), 8 * LOG_TAIL)
    lines = [line for line in text.splitlines() if line.strip() and "it/s]" not in line]  # no progress bars
    return "\n".join(lines)[-LOG_TAIL:]


def _terminate(deployment: Deployment) -> None:
    """Stop the server (SIGTERM to its process group, SIGKILL after STOP_TIMEOUT); nothing if it is not ours."""
    with _lock:
        process = _processes.pop(deployment.id, None)  # type: ignore[arg-type]
    if process is None and not _is_server_of(deployment):
        return
    pid = process.pid if process is not None else deployment.pid
    for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)  # type: ignore[arg-type]  # its own session: the merge step and the server go
        except (ProcessLookupError, PermissionError):
            return
        if process is not None:
            try:
                process.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue
        try:
            psutil.Process(pid).wait(wait)  # type: ignore[arg-type]
            return
        except psutil.NoSuchProcess:
            return
        except psutil.TimeoutExpired:
            continue


def healthy(deployment: Deployment) -> bool:
    if not deployment.port:
        return False
    try:
        return httpx.get(f"http://127.0.0.1:{deployment.port}/health", timeout=HEALTH_TIMEOUT).status_code == 200
    except httpx.HTTPError:
        return False


# --- what people do -------------------------------------------------------------------------------------------------


def _visible(session: Session, *, user: User, deployment_id: int) -> Deployment:
    deployment = session.get(Deployment, deployment_id)
    if deployment is None or (deployment.user_id != user.id and user.role != Role.admin):
        raise NotFound("No such deployment")
    return deployment


def _active_count(session: Session) -> int:
    return session.exec(select(func.count()).select_from(Deployment).where(
        col(Deployment.status).in_(ACTIVE_DEPLOYMENT))).one()


def deploy(session: Session, *, user: User, job_id: int, ip: str | None = None) -> Deployment:
    """Serve the model of a job that succeeded (its owner or an admin); a job deployed already is returned as is."""
    job = training.get_job(session, user=user, job_id=job_id)
    if job.status != JobStatus.succeeded:
        raise Conflict("Only a job that succeeded can be deployed; {name} is {status}", name=job.name,
                       status=job.status.value)
    deployment = session.exec(select(Deployment).where(Deployment.job_id == job.id)).first()
    if deployment is not None and deployment.status in ACTIVE_DEPLOYMENT:
        return deployment
    limit = get_settings().deploy_max
    if _active_count(session) >= limit:
        raise Conflict("{count} models are deployed already, the most this portal runs at once (DEPLOY_MAX); "
                       "undeploy one first", count=limit)
    source_arguments(job)  # refused now, not in the server's log, when the model is gone
    if deployment is None:  # it belongs to the job's owner, whoever deploys it (the audit log names them)
        deployment = Deployment(job_id=job.id, user_id=job.user_id, name=_unique_name(session, job))  # type: ignore[arg-type]
        session.add(deployment)
        session.flush()
    deployment.attempts = 0
    deployment.stopped_at = None
    audit.record(session, action="job.deploy", user=user, target=f"job:{job.id}", ip=ip,
                 detail={"name": job.name, "model": f"{providers.LOCAL_PROVIDER}/{deployment.name}"})
    _launch(session, deployment, job, note=f"deployed by {user.username}")
    return deployment


def undeploy(session: Session, *, user: User, deployment_id: int, ip: str | None = None) -> Deployment:
    """Stop the server; the model leaves the lists. The deployment stays listed as stopped (deploy the job again to
    restart it)."""
    deployment = _visible(session, user=user, deployment_id=deployment_id)
    if deployment.status in ACTIVE_DEPLOYMENT:
        _terminate(deployment)
    _set_ended(session, deployment, DeploymentStatus.stopped, error=None)
    audit.record(session, action="job.undeploy", user=user, target=f"job:{deployment.job_id}", ip=ip,
                 detail={"model": f"{providers.LOCAL_PROVIDER}/{deployment.name}"})
    session.commit()
    return deployment


def _set_ended(session: Session, deployment: Deployment, status: DeploymentStatus, *, error: str | None) -> None:
    deployment.status = status
    deployment.error = error
    deployment.pid = None
    deployment.stopped_at = deployment.updated_at = utcnow()
    session.add(deployment)
    job = session.get(TrainingJob, deployment.job_id)
    if job is not None:
        _list_model(session, deployment, job, available=False)


# --- watching -------------------------------------------------------------------------------------------------------


def refresh(session: Session, deployment: Deployment) -> bool:
    """Move a deployment of this host on: running once it answers, failed when its process ended or it did not come
    up in time. Returns whether it changed."""
    if deployment.status not in ACTIVE_DEPLOYMENT or deployment.host != training.this_host():
        return False
    if not alive(deployment):
        reason = _exit_reason(deployment)
        with _lock:
            _processes.pop(deployment.id, None)  # type: ignore[arg-type]
        tail = _log_tail(deployment)
        message = ("The model server did not start ({reason})" if deployment.status == DeploymentStatus.starting
                   else "The model server stopped ({reason})").format(reason=reason)
        _set_ended(session, deployment, DeploymentStatus.failed, error=f"{message}:\n{tail}" if tail else message)
        session.commit()
        log.warning("deployment %s failed: %s", deployment.id, reason)
        return True
    if deployment.status == DeploymentStatus.running:
        return False
    job = session.get(TrainingJob, deployment.job_id)
    if healthy(deployment) and job is not None:
        deployment.status = DeploymentStatus.running
        deployment.started_at = deployment.updated_at = utcnow()
        session.add(deployment)
        merged = training.job_dir(job) / "merged"
        if job.method != "full" and not job.merged_path and (merged / "config.json").is_file():
            job.merged_path = str(merged.relative_to(get_settings().data_dir))  # merged once, kept for next time
            session.add(job)
        _list_model(session, deployment, job, available=True)
        session.commit()
        log.info("deployment %s (%s) is running", deployment.id, deployment.name)
        return True
    waited = (utcnow() - deployment.updated_at).total_seconds()
    if waited > get_settings().deploy_start_timeout:
        _terminate(deployment)
        _set_ended(session, deployment, DeploymentStatus.failed,
                   error=f"The model server did not answer within {waited:.0f} s (DEPLOY_START_TIMEOUT):\n"
                         f"{_log_tail(deployment)}")
        session.commit()
        return True
    return False


def _active_here(session: Session) -> list[Deployment]:
    return list(session.exec(select(Deployment).where(col(Deployment.status).in_(ACTIVE_DEPLOYMENT),
                                                      Deployment.host == training.this_host())).all())


def refresh_all(session: Session) -> None:
    for deployment in _active_here(session):
        refresh(session, deployment)


def adopt_or_restart(session: Session) -> list[int]:
    """At the portal's start: the servers a previous portal left running are kept; those gone are started again
    (the model comes back under the same name). Returns the ids restarted."""
    restarted = []
    for deployment in _active_here(session):
        if alive(deployment):
            continue
        job = session.get(TrainingJob, deployment.job_id)
        try:
            if job is None:
                raise Conflict("The job of this deployment is gone")
            _launch(session, deployment, job, note="started again after the portal restarted")
            restarted.append(deployment.id)
        except (Conflict, Invalid, OSError) as error:
            _set_ended(session, deployment, DeploymentStatus.failed, error=str(error))
            session.commit()
    return restarted  # type: ignore[return-value]


def watch() -> None:
    """The scheduler's look at the deployments (in a thread): adopt or restart once, then move them on."""
    global _adopted
    from backend.db import session_scope

    with session_scope() as session:
        if not _adopted:
            _adopted = True
            adopt_or_restart(session)
        refresh_all(session)


def stop_servers() -> None:
    """At a clean shutdown: stop the servers this portal started; they stay `running` in the database, so that the
    next start brings them back."""
    with _lock:
        started = list(_processes.items())
    for deployment_id, process in started:
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(STOP_TIMEOUT)
            except (ProcessLookupError, PermissionError):
                pass
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        with _lock:
            _processes.pop(deployment_id, None)


# --- reading --------------------------------------------------------------------------------------------------------


def public(deployment: Deployment, *, job_name: str, owner: str) -> DeploymentPublic:
    return DeploymentPublic(
        id=deployment.id, job_id=deployment.job_id, job_name=job_name, owner=owner,  # type: ignore[arg-type]
        model=f"{providers.LOCAL_PROVIDER}/{deployment.name}", status=deployment.status,
        url=endpoint(deployment) if deployment.status in ACTIVE_DEPLOYMENT else None, error=deployment.error,
        created_at=deployment.created_at, started_at=deployment.started_at, stopped_at=deployment.stopped_at)


def list_public(session: Session, *, user: User, job_id: int | None = None, refresh: bool = True
                ) -> list[DeploymentPublic]:
    """The deployments `user` made (admins: all), newest first, their statuses brought up to date (unless `refresh`
    is false: that asks a starting server over HTTP, which a page being built on the event loop must not wait for)."""
    if refresh:
        refresh_all(session)
    query = (select(Deployment, TrainingJob.name, User.username)
             .join(TrainingJob, col(TrainingJob.id) == Deployment.job_id)
             .join(User, col(User.id) == Deployment.user_id)
             .order_by(col(Deployment.id).desc()))
    if user.role != Role.admin:
        query = query.where(Deployment.user_id == user.id)
    if job_id is not None:
        query = query.where(Deployment.job_id == job_id)
    return [public(d, job_name=name, owner=owner) for d, name, owner in session.exec(query).all()]


def read_public(session: Session, *, user: User, deployment_id: int) -> DeploymentPublic:
    deployment = _visible(session, user=user, deployment_id=deployment_id)
    refresh(session, deployment)
    found = list_public(session, user=user, job_id=deployment.job_id)
    if not found:
        raise NotFound("No such deployment")
    return found[0]


def read_log(session: Session, *, user: User, deployment_id: int) -> str:
    return training.tail(log_path(_visible(session, user=user, deployment_id=deployment_id)), 16_000)


# --- a job with a deployment --------------------------------------------------------------------------------------


def _before_job_delete(session: Session, job: TrainingJob) -> None:
    """A deployed job is not deleted under its running server; a stopped deployment goes with its job."""
    deployment = session.exec(select(Deployment).where(Deployment.job_id == job.id)).first()
    if deployment is None:
        return
    if deployment.status in ACTIVE_DEPLOYMENT:
        raise Conflict("{name} is deployed as {model}: undeploy it first", name=job.name,
                       model=f"{providers.LOCAL_PROVIDER}/{deployment.name}")
    model = _model_row(session, deployment)
    if model is not None:
        session.delete(model)
    session.delete(deployment)
    session.flush()
    shutil.rmtree(folder_of(deployment), ignore_errors=True)


if _before_job_delete not in training.BEFORE_DELETE:
    training.BEFORE_DELETE.append(_before_job_delete)


def wait_until_settled(session: Session, deployment: Deployment, *, timeout: float) -> Deployment:
    """Refresh until the deployment is no longer starting or `timeout` seconds passed (scripts and tests)."""
    deadline = time.monotonic() + timeout
    while deployment.status == DeploymentStatus.starting and time.monotonic() < deadline:
        time.sleep(0.5)
        refresh(session, deployment)
    return deployment
