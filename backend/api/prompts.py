"""`/api/v1/prompts`: the prompt library (templates, versions, labels, rendering), format conversion, import and
export."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response, status
from starlette.concurrency import run_in_threadpool

from backend.api.deps import ClientIp, CurrentUser, SessionDep
from backend.models.prompt import (
    ChatTemplateRequest,
    ConvertRequest,
    ConvertResult,
    DiffResult,
    ImportRequest,
    ImportResult,
    LabelRequest,
    PromptCreate,
    PromptPublic,
    PromptSummary,
    PromptUpdate,
    PromptVersionPublic,
    RenderRequest,
    RenderResult,
)
from backend.services import prompt_formats, prompts

router = APIRouter(prefix="/prompts", tags=["prompts"])


@router.get("")
def list_prompts(user: CurrentUser, session: SessionDep, q: str | None = None, tag: str | None = None,
                 mine: bool = False) -> dict[str, list[PromptSummary]]:
    """The caller's prompts and the shared ones (an admin's: all), recently changed first."""
    return {"data": prompts.list_prompts(session, user=user, q=q, tag=tag, mine=mine)}


@router.post("", status_code=status.HTTP_201_CREATED, response_model=PromptPublic)
def create_prompt(body: PromptCreate, user: CurrentUser, session: SessionDep, ip: ClientIp) -> PromptPublic:
    """Variables are found in the messages (`{{ name }}`); `variables` only adds types, defaults, descriptions."""
    return prompts.prompt_public(session, prompts.create_prompt(session, user=user, data=body, ip=ip))


@router.post("/convert", response_model=ConvertResult)
def convert(body: ConvertRequest, _user: CurrentUser) -> ConvertResult:
    """`data` in format `from` as format `to` (openai, anthropic, sharegpt, alpaca, text); `warnings` names what
    the target format could not keep."""
    data, losses = prompt_formats.convert(source=body.from_, target=body.to, data=body.data)
    return ConvertResult(data=data, warnings=[loss.text() for loss in losses])


@router.post("/chat-template")
async def chat_template(body: ChatTemplateRequest, user: CurrentUser) -> dict[str, str]:
    """The text a local model would see: its tokenizer's chat template applied to `messages` (needs
    `transformers`; never downloads). `model_dir` as for training: a model directory or a model id in the local
    Hugging Face cache (an administrator may name any tokenizer directory)."""
    text = await run_in_threadpool(prompt_formats.chat_template_preview, user=user, model_dir=body.model_dir,
                                   messages=[m.model_dump() for m in body.messages],
                                   add_generation_prompt=body.add_generation_prompt)
    return {"text": text}


@router.get("/export")
def export_prompts(user: CurrentUser, session: SessionDep, ip: ClientIp,
                   format: Literal["json", "yaml"] = "json") -> Response:
    """The caller's own prompts (latest versions) as a JSON or YAML file that `/import` reads back."""
    filename, body = prompts.export_library(session, user=user, format=format, ip=ip)
    media_type = "application/json" if format == "json" else "application/yaml"
    return Response(body, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.post("/import", response_model=ImportResult)
def import_prompts(body: ImportRequest, user: CurrentUser, session: SessionDep, ip: ClientIp) -> ImportResult:
    """Prompts from an export: new names are created, known names get a new version when they differ."""
    return prompts.import_library(session, user=user, content=body.content, format=body.format, ip=ip)


@router.get("/{prompt_id}", response_model=PromptPublic)
def read_prompt(prompt_id: int, user: CurrentUser, session: SessionDep, version: int | None = None,
                label: str | None = None) -> PromptPublic:
    """The latest version, or `version`, or the one `label` points at."""
    return prompts.read_prompt(session, user=user, prompt_id=prompt_id, version=version, label=label)


@router.patch("/{prompt_id}", response_model=PromptPublic)
def update_prompt(prompt_id: int, body: PromptUpdate, user: CurrentUser, session: SessionDep,
                  ip: ClientIp) -> PromptPublic:
    """Changed `messages` or `variables` make a new version; name, description, tags and sharing change in place."""
    prompt = prompts.update_prompt(session, user=user, prompt_id=prompt_id, data=body, ip=ip)
    return prompts.prompt_public(session, prompt)


@router.delete("/{prompt_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_prompt(prompt_id: int, user: CurrentUser, session: SessionDep, ip: ClientIp) -> Response:
    prompts.delete_prompt(session, user=user, prompt_id=prompt_id, ip=ip)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{prompt_id}/copy", status_code=status.HTTP_201_CREATED, response_model=PromptPublic)
def copy_prompt(prompt_id: int, user: CurrentUser, session: SessionDep, ip: ClientIp) -> PromptPublic:
    """A private copy, in the caller's library, of a prompt they may read (a shared one, most often)."""
    return prompts.prompt_public(session, prompts.copy_prompt(session, user=user, prompt_id=prompt_id, ip=ip))


@router.get("/{prompt_id}/versions")
def list_versions(prompt_id: int, user: CurrentUser, session: SessionDep) -> dict[str, list[PromptVersionPublic]]:
    return {"data": prompts.list_versions(session, user=user, prompt_id=prompt_id)}


@router.get("/{prompt_id}/diff", response_model=DiffResult)
def diff_versions(prompt_id: int, user: CurrentUser, session: SessionDep,
                  from_version: Annotated[int, Query(alias="from")],
                  to_version: Annotated[int, Query(alias="to")]) -> DiffResult:
    """A unified diff between two versions (`?from=1&to=2`)."""
    return prompts.diff_versions(session, user=user, prompt_id=prompt_id, from_version=from_version,
                                 to_version=to_version)


@router.post("/{prompt_id}/versions/{version}/restore", response_model=PromptPublic)
def restore_version(prompt_id: int, version: int, user: CurrentUser, session: SessionDep,
                    ip: ClientIp) -> PromptPublic:
    """Roll back: the old version is saved again as the new latest one."""
    prompt = prompts.restore_version(session, user=user, prompt_id=prompt_id, version=version, ip=ip)
    return prompts.prompt_public(session, prompt)


@router.put("/{prompt_id}/labels/{label}", response_model=PromptPublic)
def set_label(prompt_id: int, label: str, body: LabelRequest, user: CurrentUser, session: SessionDep,
              ip: ClientIp) -> PromptPublic:
    """Point a label (e.g. `production`) at a version; it moves when it pointed elsewhere."""
    prompt = prompts.set_label(session, user=user, prompt_id=prompt_id, label=label, version=body.version, ip=ip)
    return prompts.prompt_public(session, prompt)


@router.delete("/{prompt_id}/labels/{label}", response_model=PromptPublic)
def remove_label(prompt_id: int, label: str, user: CurrentUser, session: SessionDep, ip: ClientIp) -> PromptPublic:
    prompt = prompts.remove_label(session, user=user, prompt_id=prompt_id, label=label, ip=ip)
    return prompts.prompt_public(session, prompt)


@router.post("/{prompt_id}/render", response_model=RenderResult)
def render_prompt(prompt_id: int, body: RenderRequest, user: CurrentUser, session: SessionDep) -> RenderResult:
    """The messages of the latest version (or `version`, or `label`'s) with `variables` filled in; a missing
    variable is named in the error, and a template that reaches for Python internals is refused."""
    return prompts.render(session, user=user, prompt_id=prompt_id, variables=body.variables, version=body.version,
                          label=body.label)
