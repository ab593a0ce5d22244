"""Providers and their models: CRUD with encrypted keys, connection tests, model-list sync, resolution of
`"<provider>/<model>"` ids into a client and a request."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from functools import partial
from typing import Any
from urllib.parse import urlparse

from sqlalchemy import delete, event
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import UOWTransaction
from sqlmodel import Session, col, func, select

from backend.config import get_settings
from backend.db import session_scope
from backend.errors import Conflict, Invalid, NotFound
from backend.models.base import utcnow
from backend.models.provider import (
    CAPABILITIES,
    PARAMETER_NAMES,
    PROVIDER_NAME_PATTERN,
    ModelPublic,
    ModelUpdate,
    Provider,
    ProviderCreate,
    ProviderModel,
    ProviderPublic,
    ProviderUpdate,
)
from backend.models.user import User
from backend.providers.base import BaseClient, ModelInfo, ProviderConfig, TestResult
from backend.providers.registry import CLIENTS, PRESETS_BY_KEY, make_client
from backend.security.crypto import DecryptionFailed, decrypt_secret, encrypt_secret, mask_secret
from backend.services import audit, refresh_ahead
from backend.services.capabilities import guess_capabilities, guess_context_length

# The provider of deployed fine-tuned models (backend/services/deployments.py): the portal keeps it, each of its models
# with a server (an endpoint) of its own. Admins may enable, rename and tune its models, not reconfigure it.
LOCAL_PROVIDER = "local"

# --- validation -----------------------------------------------------------------------------------------------


def _validate_name(name: str) -> str:
    name = name.strip()
    if not re.fullmatch(PROVIDER_NAME_PATTERN, name):
        raise Invalid("A provider name is 1 to 40 letters, digits, '.', '_' or '-' (it starts model ids: name/model)")
    if name.lower() == LOCAL_PROVIDER:
        raise Invalid("The name {name} is kept for deployed fine-tuned models", name=LOCAL_PROVIDER)
    return name


def _not_managed(provider: Provider) -> None:
    if provider.name == LOCAL_PROVIDER:
        raise Invalid("{name} holds the deployed fine-tuned models: deploy and undeploy them on the Training page",
                      name=LOCAL_PROVIDER)


def _validate_kind(kind: str) -> str:
    if kind not in CLIENTS:
        raise Invalid("Unknown provider kind {kind}; choose one of {kinds}", kind=kind, kinds=", ".join(CLIENTS))
    return kind


def _validate_url(url: str) -> str:
    url = url.strip().rstrip("/")
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise Invalid("The base URL must be an http:// or https:// address, e.g. https://api.openai.com/v1")
    return url


def _name_taken(session: Session, name: str, *, other_than: int | None = None) -> bool:
    query = select(Provider.id).where(func.lower(Provider.name) == name.lower())
    if other_than is not None:
        query = query.where(Provider.id != other_than)
    return session.exec(query).first() is not None


# --- providers ------------------------------------------------------------------------------------------------


def to_public(session: Session, provider: Provider) -> ProviderPublic:
    count = session.exec(
        select(func.count()).select_from(ProviderModel).where(ProviderModel.provider_id == provider.id)
    ).one()
    return ProviderPublic(
        **provider.model_dump(exclude={"api_key_encrypted"}),
        has_api_key=provider.api_key_encrypted is not None,
        models=count,
    )


def list_providers(session: Session) -> list[Provider]:
    return list(session.exec(select(Provider).order_by(col(Provider.name))).all())


def get_provider(session: Session, *, provider_id: int) -> Provider:
    provider = session.get(Provider, provider_id)
    if provider is None:
        raise NotFound("No such provider")
    return provider


def create_provider(session: Session, *, actor: User, data: ProviderCreate, ip: str | None = None) -> Provider:
    preset = PRESETS_BY_KEY.get(data.preset or "")
    if data.preset and preset is None:
        raise Invalid("Unknown preset {preset}", preset=data.preset)
    kind = _validate_kind(data.kind or (preset.kind if preset else ""))
    base_url = _validate_url(data.base_url or (preset.base_url if preset else ""))
    name = _validate_name(data.name)
    if _name_taken(session, name):
        raise Conflict("A provider named {name} exists already", name=name)
    provider = Provider(name=name, kind=kind, base_url=base_url, timeout_seconds=data.timeout_seconds,
                        max_retries=data.max_retries)
    _set_key(provider, data.api_key)
    session.add(provider)
    session.flush()
    audit.record(session, action="provider.create", user=actor, target=f"provider:{provider.id} {name}", ip=ip,
                 detail={"kind": kind, "base_url": base_url, "api_key": provider.api_key_hint})
    forget_resolved()
    session.commit()
    return provider


def _set_key(provider: Provider, api_key: str | None) -> None:
    if api_key is None:
        return
    api_key = api_key.strip()
    if not api_key:
        provider.api_key_encrypted = provider.api_key_hint = None
        return
    provider.api_key_encrypted = encrypt_secret(api_key, secret_key=get_settings().effective_secret_key)
    provider.api_key_hint = mask_secret(api_key)


def update_provider(
    session: Session, *, actor: User, provider_id: int, data: ProviderUpdate, ip: str | None = None
) -> Provider:
    provider = get_provider(session, provider_id=provider_id)
    changes = data.model_dump(exclude_unset=True)
    detail: dict[str, Any] = {}
    if any(changes.get(field) is not None for field in ("name", "base_url", "api_key")):
        _not_managed(provider)
    if changes.get("name") is not None:
        name = _validate_name(changes["name"])
        if name != provider.name and _name_taken(session, name, other_than=provider.id):
            raise Conflict("A provider named {name} exists already", name=name)
        if name != provider.name:
            detail["name"] = {"from": provider.name, "to": name}
            provider.name = name
    if changes.get("base_url") is not None:
        provider.base_url = _validate_url(changes["base_url"])
        detail["base_url"] = provider.base_url
    for field in ("timeout_seconds", "max_retries", "enabled"):
        if changes.get(field) is not None and changes[field] != getattr(provider, field):
            setattr(provider, field, changes[field])
            detail[field] = changes[field]
    if "api_key" in changes:
        _set_key(provider, changes["api_key"])
        detail["api_key"] = provider.api_key_hint or "removed"
    provider.updated_at = utcnow()
    session.add(provider)
    audit.record(session, action="provider.update", user=actor, target=f"provider:{provider.id} {provider.name}",
                 ip=ip, detail=detail)
    forget_resolved()
    session.commit()
    return provider


def delete_provider(session: Session, *, actor: User, provider_id: int, ip: str | None = None) -> None:
    provider = get_provider(session, provider_id=provider_id)
    _not_managed(provider)
    session.exec(delete(ProviderModel).where(col(ProviderModel.provider_id) == provider.id))  # type: ignore[call-overload]
    session.delete(provider)
    audit.record(session, action="provider.delete", user=actor, target=f"provider:{provider.id} {provider.name}",
                 ip=ip)
    forget_resolved()
    session.commit()


def provider_config(provider: Provider) -> ProviderConfig:
    api_key = None
    if provider.api_key_encrypted:
        try:
            api_key = decrypt_secret(provider.api_key_encrypted, secret_key=get_settings().effective_secret_key)
        except DecryptionFailed as error:
            raise Invalid("The API key of {name} cannot be decrypted (SECRET_KEY changed?); enter it again",
                          name=provider.name) from error
    return ProviderConfig(name=provider.name, base_url=provider.base_url, api_key=api_key,
                          timeout=provider.timeout_seconds, max_retries=provider.max_retries)


@asynccontextmanager
async def _client(provider: Provider) -> AsyncIterator[BaseClient]:
    """A client of its own for an admin action (the cached ones serve chat calls), closed afterwards."""
    client = make_client(provider.kind, provider_config(provider))
    try:
        yield client
    finally:
        await client.aclose()


async def test_provider(session: Session, *, actor: User, provider_id: int, ip: str | None = None) -> TestResult:
    """Try the connection (list the models) and remember the outcome."""
    provider = get_provider(session, provider_id=provider_id)
    _not_managed(provider)
    async with _client(provider) as client:
        result = await client.test()
    provider.last_test_at = utcnow()
    provider.last_test_ok = result.ok
    provider.last_test_latency_ms = result.latency_ms
    provider.last_test_error = result.error[:1000] if result.error else None
    session.add(provider)
    audit.record(session, action="provider.test", user=actor, target=f"provider:{provider.id} {provider.name}",
                 ip=ip, detail={"ok": result.ok, "latency_ms": result.latency_ms, "error": result.error})
    session.commit()
    return result


async def sync_models(session: Session, *, actor: User, provider_id: int, ip: str | None = None) -> list[ProviderModel]:
    """Fetch the provider's model list: new models are added (capabilities guessed), vanished ones marked
    unavailable; what admins set (enabled, names, capabilities, defaults) is kept."""
    provider = get_provider(session, provider_id=provider_id)
    _not_managed(provider)
    async with _client(provider) as client:
        listed = await client.list_models()
    models = _merge_models(session, provider, listed)
    provider.last_synced_at = utcnow()
    session.add(provider)
    audit.record(session, action="provider.sync", user=actor, target=f"provider:{provider.id} {provider.name}",
                 ip=ip, detail={"models": len(listed)})
    forget_resolved()
    session.commit()
    return models


def _merge_models(session: Session, provider: Provider, listed: Sequence[ModelInfo]) -> list[ProviderModel]:
    existing = {m.model_id: m for m in session.exec(
        select(ProviderModel).where(ProviderModel.provider_id == provider.id)).all()}
    seen = set()
    for info in listed:
        seen.add(info.id)
        model = existing.get(info.id)
        if model is None:
            model = ProviderModel(
                provider_id=provider.id,  # type: ignore[arg-type]
                model_id=info.id,
                display_name=info.display_name,
                capabilities=guess_capabilities(info.id),
                context_length=info.context_length or guess_context_length(info.id),
            )
            existing[info.id] = model
        else:
            model.available = True
            if info.context_length and not model.context_length:
                model.context_length = info.context_length
        model.updated_at = utcnow()
        session.add(model)
    for model_id, model in existing.items():
        if model_id not in seen and model.available:
            model.available = False
            session.add(model)
    session.flush()
    return sorted(existing.values(), key=lambda m: m.model_id)


# --- models ---------------------------------------------------------------------------------------------------


def model_public(provider: Provider, model: ProviderModel) -> ModelPublic:
    return ModelPublic(
        id=f"{provider.name}/{model.model_id}",
        provider=provider.name,
        name=model.display_name or model.model_id,
        model_id=model.model_id,
        enabled=model.enabled,
        available=model.available,
        capabilities=list(model.capabilities),
        context_length=model.context_length,
        default_params=dict(model.default_params),
        pk=model.id,  # type: ignore[arg-type]
    )


def list_models(
    session: Session, *, include_disabled: bool = False, provider_id: int | None = None
) -> list[ModelPublic]:
    """The models people may use: enabled, on an enabled provider, still listed upstream. Admins may see all."""
    query = select(Provider, ProviderModel).join(ProviderModel, col(ProviderModel.provider_id) == Provider.id)
    if not include_disabled:
        query = query.where(col(Provider.enabled).is_(True), col(ProviderModel.enabled).is_(True),
                            col(ProviderModel.available).is_(True))
    if provider_id is not None:
        query = query.where(Provider.id == provider_id)
    rows = session.exec(query.order_by(col(Provider.name), col(ProviderModel.model_id))).all()
    return [model_public(provider, model) for provider, model in rows]


def _find_model(session: Session, model_ref: str) -> tuple[Provider, ProviderModel]:
    """`model_ref` is a public id `"<provider>/<model>"` or a numeric key."""
    if model_ref.isdigit():
        model = session.get(ProviderModel, int(model_ref))
        provider = session.get(Provider, model.provider_id) if model else None
        if model is None or provider is None:
            raise NotFound("No such model")
        return provider, model
    provider_name, _, model_id = model_ref.partition("/")
    row = session.exec(
        select(Provider, ProviderModel)
        .join(ProviderModel, col(ProviderModel.provider_id) == Provider.id)
        .where(Provider.name == provider_name, ProviderModel.model_id == model_id)
    ).first()
    if row is None:
        raise NotFound("No model {model}; see the list of models", model=model_ref)
    return row


def update_model(
    session: Session, *, actor: User, model_ref: str, data: ModelUpdate, ip: str | None = None
) -> ModelPublic:
    provider, model = _find_model(session, model_ref)
    changes = data.model_dump(exclude_unset=True)
    if "capabilities" in changes and changes["capabilities"] is not None:
        unknown = set(changes["capabilities"]) - set(CAPABILITIES)
        if unknown:
            raise Invalid("Unknown capabilities: {names}; known are {known}", names=", ".join(sorted(unknown)),
                          known=", ".join(CAPABILITIES))
        model.capabilities = [c for c in CAPABILITIES if c in changes["capabilities"]]
    if "default_params" in changes and changes["default_params"] is not None:
        model.default_params = _validate_params(changes["default_params"])
    if "display_name" in changes:
        model.display_name = (changes["display_name"] or "").strip()[:200] or None
    if changes.get("enabled") is not None:
        model.enabled = changes["enabled"]
    if "context_length" in changes:
        model.context_length = changes["context_length"]
    model.updated_at = utcnow()
    session.add(model)
    audit.record(session, action="model.update", user=actor, target=f"model:{provider.name}/{model.model_id}",
                 ip=ip, detail={k: v for k, v in changes.items()})
    forget_resolved()
    session.commit()
    return model_public(provider, model)


def set_models_enabled(session: Session, *, actor: User, provider_id: int, enabled: bool,
                       ip: str | None = None) -> int:
    provider = get_provider(session, provider_id=provider_id)
    models = session.exec(select(ProviderModel).where(ProviderModel.provider_id == provider.id)).all()
    for model in models:
        model.enabled = enabled
        session.add(model)
    audit.record(session, action="model.update", user=actor, target=f"provider:{provider.id} {provider.name}",
                 ip=ip, detail={"enabled": enabled, "models": len(models)})
    forget_resolved()
    session.commit()
    return len(models)


def _validate_params(params: dict[str, Any]) -> dict[str, Any]:
    unknown = set(params) - set(PARAMETER_NAMES)
    if unknown:
        raise Invalid("Unknown parameters: {names}; known are {known}", names=", ".join(sorted(unknown)),
                      known=", ".join(PARAMETER_NAMES))
    clean: dict[str, Any] = {}
    limits = {"temperature": (0.0, 2.0), "top_p": (0.0, 1.0), "max_tokens": (1, 1_000_000)}
    for name, value in params.items():
        if value is None:
            continue
        low, high = limits[name]
        if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
            raise Invalid("{name} must be a number from {low} to {high}", name=name, low=low, high=high)
        clean[name] = int(value) if name == "max_tokens" else float(value)
    return clean


@dataclass(frozen=True)
class ResolvedModel:
    public: ModelPublic
    config: ProviderConfig
    kind: str


# model ref → (expiry, resolution). Every call of a busy gateway needs this; changes made here clear it at once
# (and again once committed, below), and the short lifetime bounds how long another instance's change takes to arrive.
_RESOLVED_TTL = 5.0
_resolved: dict[str, tuple[float, ResolvedModel]] = {}
_resolved_generation = 0  # bumped by every clear: a resolution read before a change is not kept after it


def forget_resolved() -> None:
    global _resolved_generation
    _resolved_generation += 1
    _resolved.clear()


def resolved_from_cache(model_ref: str) -> ResolvedModel | None:
    """`resolve_model`'s answer while it is cached (no database: callers on the event loop can skip a thread). Used
    in the second half of its lifetime, it is read again in the background (from the event loop)."""
    cached = _resolved.get(model_ref)
    now = time.monotonic()
    if cached is None or cached[0] <= now:
        return None
    if refresh_ahead.due(cached[0], _RESOLVED_TTL, now):
        refresh_ahead.in_background(("model", model_ref), partial(_refresh_resolved, model_ref))
    return cached[1]


def _refresh_resolved(model_ref: str) -> None:
    with session_scope() as session:
        try:
            _resolve_model(session, model_ref)
        except NotFound:
            _resolved.pop(model_ref, None)


def resolve_model(session: Session, *, model_ref: str) -> ResolvedModel:
    """What a chat call needs to reach `model_ref`, if people may use it."""
    if (cached := resolved_from_cache(model_ref)) is not None:
        return cached
    return _resolve_model(session, model_ref)


def _resolve_model(session: Session, model_ref: str) -> ResolvedModel:
    """From the database, and into the cache."""
    generation = _resolved_generation
    provider, model = _find_model(session, model_ref)
    if not (provider.enabled and model.enabled and model.available):
        raise NotFound("No model {model}; see the list of models", model=model_ref)
    config = provider_config(provider)
    if model.endpoint:  # a deployed model's own server
        config = replace(config, base_url=model.endpoint)
    resolved = ResolvedModel(public=model_public(provider, model), config=config, kind=provider.kind)
    if generation == _resolved_generation:
        if len(_resolved) > 1000:
            _resolved.clear()
        _resolved[model_ref] = (time.monotonic() + _RESOLVED_TTL, resolved)
    return resolved


_CHANGED = "resolved_models_changed"


@event.listens_for(OrmSession, "after_flush")
def _note_changes(session: OrmSession, _flush: UOWTransaction) -> None:
    if not session.info.get(_CHANGED) and any(
        isinstance(obj, Provider | ProviderModel) for obj in (*session.new, *session.dirty, *session.deleted)
    ):
        session.info[_CHANGED] = True


@event.listens_for(OrmSession, "after_commit")
def _forget_after_commit(session: OrmSession) -> None:
    # The services clear the cache before they commit; a resolution read between that and the commit would keep
    # the old state for a lifetime. Cleared once more after the commit, it cannot.
    if session.info.pop(_CHANGED, False):
        forget_resolved()
