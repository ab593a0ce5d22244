"""Deployments of fine-tuned models: `POST /api/v1/training/jobs/{id}/deploy`, `GET /api/v1/deployments`,
`DELETE /api/v1/deployments/{id}`. A running deployment's model is `local/<name>` in `/api/v1/models`, chat, compare
and the gateway."""

from __future__ import annotations

from fastapi import APIRouter, status
from fastapi.responses import PlainTextResponse

from backend.api.deps import ClientIp, CurrentUser, SessionDep
from backend.models.deployment import DeploymentPublic
from backend.services import deployments

router = APIRouter(tags=["deployments"])


@router.post("/training/jobs/{job_id}/deploy", status_code=status.HTTP_202_ACCEPTED, response_model=DeploymentPublic)
def deploy(job_id: int, user: CurrentUser, session: SessionDep, ip: ClientIp) -> DeploymentPublic:
    """Start a server for the model of a job that succeeded (its owner or an admin): status `starting` while the
    adapter is merged and the model loaded, then `running` (poll `GET /deployments/{id}`). A job deployed already
    answers with its deployment; 409 when DEPLOY_MAX models run already or the job's files are gone."""
    deployment = deployments.deploy(session, user=user, job_id=job_id, ip=ip)
    return deployments.read_public(session, user=user, deployment_id=deployment.id)  # type: ignore[arg-type]


@router.get("/deployments")
def list_deployments(user: CurrentUser, session: SessionDep, job_id: int | None = None
                     ) -> dict[str, list[DeploymentPublic]]:
    """Your deployments (every one for an admin), newest first, with their status: starting, running, stopped,
    failed (with the reason)."""
    return {"data": deployments.list_public(session, user=user, job_id=job_id)}


@router.get("/deployments/{deployment_id}", response_model=DeploymentPublic)
def read_deployment(deployment_id: int, user: CurrentUser, session: SessionDep) -> DeploymentPublic:
    return deployments.read_public(session, user=user, deployment_id=deployment_id)


@router.get("/deployments/{deployment_id}/log", response_class=PlainTextResponse)
def read_log(deployment_id: int, user: CurrentUser, session: SessionDep) -> str:
    """The end of the server's log (the merge, the model loading, errors)."""
    return deployments.read_log(session, user=user, deployment_id=deployment_id)


@router.delete("/deployments/{deployment_id}", response_model=DeploymentPublic)
def undeploy(deployment_id: int, user: CurrentUser, session: SessionDep, ip: ClientIp) -> DeploymentPublic:
    """Stop the server; the model leaves the model lists. The deployment stays listed as `stopped`; deploying the
    job again brings the model back under the same name."""
    deployment = deployments.undeploy(session, user=user, deployment_id=deployment_id, ip=ip)
    return deployments.read_public(session, user=user, deployment_id=deployment.id)  # type: ignore[arg-type]
