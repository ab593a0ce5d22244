"""A training run as its own process: `python -m jobs.worker JOB_ID`.

The scheduler starts it with stdout and stderr going to the job's `train.log` and the job already marked running on
a device (`CUDA_VISIBLE_DEVICES` names it). It trains with the job's recipe and writes progress, metrics and
checkpoints to the database as it goes; asked to stop (cancel in the portal, or SIGTERM), it saves a checkpoint and
ends `cancelled`. A crash here never touches the portal; if this process dies without saying how it ended, the
scheduler sees that and resumes the job from its latest checkpoint.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Sequence
from typing import Any

from sqlmodel import select
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.utils import logging as transformers_logging

from backend import db
from backend.config import get_settings
from backend.errors import Invalid
from backend.models.base import utcnow
from backend.models.dataset import DatasetVersion
from backend.models.tracking import SwanLabMode
from backend.models.training import JobStatus, TrainingJob
from backend.services import datasets, tracking, training
from jobs.recipes import train

log = logging.getLogger("jobs.worker")

PROGRESS_INTERVAL = 1.0  # seconds between progress writes (and cancel checks) when steps are fast


class PortalCallback(TrainerCallback):
    """Progress, metrics and checkpoints into the database; a cancel request becomes a checkpoint and a stop."""

    def __init__(self, job: TrainingJob, stop: threading.Event) -> None:
        self.job = job
        self.stop = stop
        self.output_dir = training.job_dir(job)
        self.last_write = 0.0
        self.last_log_time = time.monotonic()
        self.last_log_tokens = 0

    def _stop_asked(self, state: TrainerState, *, force: bool = False) -> bool:
        now = time.monotonic()
        if not force and now - self.last_write < PROGRESS_INTERVAL and state.global_step < state.max_steps:
            return self.stop.is_set()
        self.last_write = now
        with db.session_scope() as session:
            asked = training.record_progress(session, job_id=self.job.id,  # type: ignore[arg-type]
                                             step=state.global_step, epoch=float(state.epoch or 0.0),
                                             total_steps=state.max_steps)
        if asked:
            self.stop.set()
        return self.stop.is_set()

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       **kwargs: Any) -> None:
        with db.session_scope() as session:
            training.start_run(session, job_id=self.job.id, pid=os.getpid(),  # type: ignore[arg-type]
                               step=state.global_step, total_steps=state.max_steps)
        self.last_log_time = time.monotonic()
        self.last_log_tokens = state.num_input_tokens_seen
        log.info("training: step %d of %d", state.global_step, state.max_steps)

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    **kwargs: Any) -> None:
        if self._stop_asked(state):
            log.info("stop requested: saving a checkpoint at step %d", state.global_step)
            control.should_save = True
            control.should_training_stop = True

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        logs = logs or {}
        values: dict[str, float | None] = {}
        if "loss" in logs:
            now = time.monotonic()
            tokens = state.num_input_tokens_seen - self.last_log_tokens
            elapsed = now - self.last_log_time
            self.last_log_time, self.last_log_tokens = now, state.num_input_tokens_seen
            values = {"loss": logs.get("loss"), "learning_rate": logs.get("learning_rate"),
                      "grad_norm": logs.get("grad_norm"), "epoch": logs.get("epoch"),
                      "tokens_per_s": tokens / elapsed if elapsed > 0 and tokens > 0 else None}
        if "eval_loss" in logs:
            values["eval_loss"] = logs["eval_loss"]
        if not values:
            return
        with db.session_scope() as session:
            training.record_metric(session, job_id=self.job.id, step=state.global_step,  # type: ignore[arg-type]
                                   values=values)
        shown = " ".join(f"{k}={v:.4g}" for k, v in values.items() if v is not None)
        log.info("step %d/%d %s", state.global_step, state.max_steps, shown)

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                **kwargs: Any) -> None:
        with db.session_scope() as session:
            training.record_checkpoints(session, job=self.job, found=train.checkpoints_of(self.output_dir))
        self._stop_asked(state, force=True)
        log.info("checkpoint at step %d", state.global_step)


class CloudRunLink(TrainerCallback):
    """Notes where the run is in the SwanLab cloud, for the job page (after SwanLab's callback started the run)."""

    def __init__(self, output_dir: str) -> None:
        self.output_dir = output_dir

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       **kwargs: Any) -> None:
        import swanlab

        try:
            url = swanlab.get_run().url
        except (RuntimeError, ValueError):  # no run, or not an online one
            return
        path = tracking.cloud_link_file(self.output_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(url + "\n", encoding="utf-8")
        log.info("SwanLab run: %s", url)


def cloud_login(login: tracking.CloudLogin) -> bool:
    """Log in to the SwanLab server in this process, the key kept in memory (not in the environment, which child
    processes inherit); False when that fails."""
    import requests
    import swanlab
    from swanlab.exceptions import AuthenticationError

    try:
        swanlab.login(api_key=login.api_key, host=login.host, relogin=True, save=False)
    except (AuthenticationError, requests.RequestException) as error:
        log.warning("SwanLab cloud login at %s failed (%s): this run logs locally instead", login.host, error)
        return False
    return True


def tracking_callbacks(job: TrainingJob) -> list[TrainerCallback]:
    """SwanLab's transformers callback (its run starts with the training) in the mode admins chose: local, or the
    cloud after a login (local when the login fails: a run is not lost to a tracking server); none when tracking is
    off. Not `report_to="swanlab"`: that crashes in transformers unless a SwanLab run was started first."""
    name, description = f"{job.name} #{job.id}", f"{job.method} of {job.base_model}"
    with db.session_scope() as session:
        try:
            options = tracking.run_options(session, name=name, description=description)
        except Invalid as error:  # cloud mode, but the key cannot be used (SECRET_KEY changed)
            log.warning("SwanLab cloud mode: %s; this run logs locally instead", error)
            options = tracking.run_options(session, name=name, description=description, mode=SwanLabMode.local)
        if options.login is not None and not cloud_login(options.login):
            options = tracking.run_options(session, name=name, description=description, mode=SwanLabMode.local)
    if not options:
        return []
    os.environ.pop("SWANLAB_PROJECT", None)  # SwanLab reads SWANLAB_PROJECT_NAME; this one crashes `swanlab.init`
    from swanlab.integration.transformers import SwanLabCallback

    callbacks: list[TrainerCallback] = [SwanLabCallback(**options.callback)]
    if options.login is not None:
        callbacks.append(CloudRunLink(job.output_dir))
    return callbacks


def finish_tracking(*, state: str, error: str | None = None) -> None:
    """Close the SwanLab run if one was started (the callback leaves it open after training)."""
    import swanlab

    try:
        swanlab.get_run()
    except RuntimeError:  # tracking off, or the run failed before training began
        return
    swanlab.finish(state=state, error=error)  # type: ignore[arg-type]


def run_spec(job: TrainingJob, version: DatasetVersion) -> train.RunSpec:
    params = training.clean_params(job.params, method=job.method)
    if params["eval_ratio"] is not None:
        eval_ratio, seed = float(params["eval_ratio"]), int(params["seed"])
    else:  # the dataset version's own train/validation split
        eval_ratio, seed = version.validation_ratio, version.split_seed
    return train.RunSpec(method=job.method, base_model=training.resolve_base_model(job.base_model_path or
                                                                                    job.base_model),
                         rows=datasets.version_file(version), output_dir=training.job_dir(job), params=params,
                         eval_ratio=eval_ratio, split_seed=seed, merge=job.merge, resume=job.resume)


def load_job(job_id: int) -> tuple[TrainingJob, DatasetVersion]:
    with db.session_scope() as session:
        job = session.get(TrainingJob, job_id)
        if job is None:
            raise LookupError(f"no training job {job_id}")
        version = session.exec(select(DatasetVersion).where(DatasetVersion.dataset_id == job.dataset_id,
                                                            DatasetVersion.version == job.dataset_version)).first()
        if version is None:
            raise LookupError(f"dataset {job.dataset_id} version {job.dataset_version} of job {job_id} is gone")
        if job.status != JobStatus.running:  # started by hand rather than by the scheduler
            job.status = JobStatus.running
            job.started_at = job.started_at or utcnow()
            job.host = training.this_host()
        job.pid = os.getpid()
        session.add(job)
        session.commit()
        return job, version


def run_job(job_id: int, *, stop: threading.Event | None = None,
            callbacks: Sequence[TrainerCallback] = ()) -> JobStatus:
    """Run the job to its end in this process; returns how it ended (also written to the database)."""
    stop = stop or threading.Event()
    try:
        job, version = load_job(job_id)
        spec = run_spec(job, version)
        log.info("job %d %r: %s of %s on dataset %s v%d, %s", job_id, job.name, job.method, spec.base_model,
                 job.dataset_id, job.dataset_version, "resuming" if spec.resume else "from the start")
        log.info("parameters: %s", spec.params)
        result = train.run(spec, callbacks=[PortalCallback(job, stop), *tracking_callbacks(job), *callbacks])
    except Exception as error:
        traceback.print_exc()
        finish_tracking(state="crashed", error=f"{type(error).__name__}: {error}")
        with db.session_scope() as session:
            training.finish_job(session, job_id=job_id, status=JobStatus.failed,
                                error=f"{type(error).__name__}: {error}")
        return JobStatus.failed
    status = JobStatus.cancelled if result.stopped else JobStatus.succeeded
    finish_tracking(state="aborted" if result.stopped else "success")
    with db.session_scope() as session:
        training.finish_job(session, job_id=job_id, status=status, step=result.step,
                            output=None if result.stopped else result.output, merged=result.merged)
    log.info("job %d %s at step %d", job_id, status.value, result.step)
    return status


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].isdigit():
        print("usage: python -m jobs.worker JOB_ID", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The log is for people: no migration chatter, progress bars or deprecation notices of the libraries.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    transformers_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # stop like a cancel: checkpoint first
    db.init_db(get_settings().effective_database_url)
    status = run_job(int(argv[0]), stop=stop)
    return 1 if status == JobStatus.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
