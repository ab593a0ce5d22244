"""`/api/v1/providers` and `/api/v1/models`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status

from backend.api.deps import AdminUser, ClientIp, CurrentUser, SessionDep
from backend.models.provider import ModelPublic, ModelUpdate, ProviderCreate, ProviderPublic, ProviderUpdate
from backend.models.user import Role
from backend.providers.registry import PRESETS
from backend.services import providers

router = APIRouter(tags=["providers"])


@router.get("/providers")
def list_providers(_admin: AdminUser, session: SessionDep) -> dict[str, list[ProviderPublic]]:
    return {"data": [providers.to_public(session, p) for p in providers.list_providers(session)]}


@router.get("/providers/presets")
def list_presets(_admin: AdminUser) -> dict[str, list[dict[str, Any]]]:
    return {"data": [vars(p) for p in PRESETS]}


@router.post("/providers", status_code=status.HTTP_201_CREATED, response_model=ProviderPublic)
def create_provider(body: ProviderCreate, admin: AdminUser, session: SessionDep, ip: ClientIp) -> ProviderPublic:
    provider = providers.create_provider(session, actor=admin, data=body, ip=ip)
    return providers.to_public(session, provider)


@router.get("/providers/{provider_id}", response_model=ProviderPublic)
def get_provider(provider_id: int, _admin: AdminUser, session: SessionDep) -> ProviderPublic:
    return providers.to_public(session, providers.get_provider(session, provider_id=provider_id))


@router.patch("/providers/{provider_id}", response_model=ProviderPublic)
def update_provider(provider_id: int, body: ProviderUpdate, admin: AdminUser, session: SessionDep,
                    ip: ClientIp) -> ProviderPublic:
    provider = providers.update_provider(session, actor=admin, provider_id=provider_id, data=body, ip=ip)
    return providers.to_public(session, provider)


@router.delete("/providers/{provider_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_provider(provider_id: int, admin: AdminUser, session: SessionDep, ip: ClientIp) -> Response:
    providers.delete_provider(session, actor=admin, provider_id=provider_id, ip=ip)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/providers/{provider_id}/test")
async def test_provider(provider_id: int, admin: AdminUser, session: SessionDep, ip: ClientIp) -> dict[str, Any]:
    result = await providers.test_provider(session, actor=admin, provider_id=provider_id, ip=ip)
    answer: dict[str, Any] = {"ok": result.ok, "latency_ms": result.latency_ms}
    if result.error:
        answer["error"] = result.error
    return answer


@router.post("/providers/{provider_id}/sync")
async def sync_provider(provider_id: int, admin: AdminUser, session: SessionDep,
                        ip: ClientIp) -> dict[str, list[ModelPublic]]:
    await providers.sync_models(session, actor=admin, provider_id=provider_id, ip=ip)
    return {"models": providers.list_models(session, include_disabled=True, provider_id=provider_id)}


@router.get("/models")
def list_models(user: CurrentUser, session: SessionDep, all: bool = False) -> dict[str, list[ModelPublic]]:
    """The enabled models; `?all=true` shows admins every model, disabled ones too."""
    include_disabled = all and user.role == Role.admin
    return {"data": providers.list_models(session, include_disabled=include_disabled)}


@router.patch("/models/{model_ref:path}", response_model=ModelPublic)
def update_model(model_ref: str, body: ModelUpdate, admin: AdminUser, session: SessionDep,
                 ip: ClientIp) -> ModelPublic:
    return providers.update_model(session, actor=admin, model_ref=model_ref, data=body, ip=ip)
