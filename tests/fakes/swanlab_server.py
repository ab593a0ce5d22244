"""A fake SwanLab server: the login `swanlab.login` makes (SwanLab 0.10), on a real HTTP server on 127.0.0.1.

    with FakeSwanLab(api_key="sk-good").start() as server:
        swanlab.login(api_key="sk-good", host=server.url, save=False)
        assert server.logins[-1].headers["authorization"] == "sk-good"

`POST /api/login/api_key` with the bare key in `authorization` answers `{sid, expiredAt, userInfo}` for the right key
and 401 `{code, message}` (what SwanLab's error bodies look like) for any other. Tests may set `delay` (seconds before
answering: a slow server) or `status` (answer every login with that error status instead). Anything else is a 404.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .scenario import RecordedRequest
from .server import FakeServer

LOGIN_PATH = "/api/login/api_key"


class FakeSwanLab(FakeServer):
    def __init__(self, *, api_key: str = "swanlab-test-key", username: str = "tester", **server_kw: Any) -> None:
        self.api_key = api_key
        self.username = username
        self.delay = 0.0
        self.status: int | None = None
        self.requests: list[RecordedRequest] = []
        routes = [Route(LOGIN_PATH, self.login, methods=["POST"]),
                  Route("/{path:path}", self.unknown, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])]
        super().__init__(Starlette(routes=routes), **server_kw)

    @property
    def logins(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == LOGIN_PATH]

    async def record(self, request: Request) -> RecordedRequest:
        rec = RecordedRequest(method=request.method, path=request.url.path, query=dict(request.query_params),
                              headers={k.lower(): v for k, v in request.headers.items()}, body=await request.body(),
                              json=None)
        self.requests.append(rec)
        return rec

    async def login(self, request: Request) -> Response:
        rec = await self.record(request)
        if self.delay:
            await self.sleep(self.delay)
        if self.status is not None:
            return JSONResponse({"code": "ERROR", "message": "the server is having a bad day"}, status_code=self.status)
        if rec.headers.get("authorization") != self.api_key:
            return JSONResponse({"code": "UNAUTHORIZED", "message": "api key is invalid"}, status_code=401)
        expires = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        return JSONResponse({"sid": "fake-session", "expiredAt": expires,
                             "userInfo": {"username": self.username, "name": self.username.title()}})

    async def unknown(self, request: Request) -> Response:
        await self.record(request)
        return JSONResponse({"code": "NOT_FOUND", "message": f"no route {request.url.path}"}, status_code=404)


def start_swanlab(**kw: Any) -> FakeSwanLab:
    """A started fake SwanLab server. Keywords: api_key ("swanlab-test-key"), username ("tester")."""
    return FakeSwanLab(**kw).start()
