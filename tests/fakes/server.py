"""Run an ASGI (Starlette) app with uvicorn in a background thread on 127.0.0.1 at a free port.

    with FakeServer(app) as server:
        httpx.get(server.url + "/ping")

The server owns an asyncio event, set when `stop()` begins, that endpoints can wait on (`wait_stopping`,
`sleep`) so that slow or stalled streams end promptly when the test is over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from types import TracebackType
from typing import Any, Self

import uvicorn


class CutConnection(Exception):
    """Raised inside a response to drop the connection mid-body; uvicorn then closes the socket.

    Its "Exception in ASGI application" log record is filtered out, it is expected."""


def _mentions_cut(exc: BaseException | None, depth: int = 0) -> bool:
    if exc is None or depth > 10:
        return False
    if isinstance(exc, CutConnection):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return any(_mentions_cut(e, depth + 1) for e in exc.exceptions)
    return _mentions_cut(exc.__cause__ or exc.__context__, depth + 1)


class _HideCuts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and _mentions_cut(record.exc_info[1]))


_hide_cuts = _HideCuts()


def _install_log_filter() -> None:
    logger = logging.getLogger("uvicorn.error")
    if _hide_cuts not in logger.filters:
        logger.addFilter(_hide_cuts)


class FakeServer:
    """A real HTTP server for tests; a context manager. `url` is like "http://127.0.0.1:PORT"."""

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        startup_timeout: float = 5.0,
        graceful_timeout: float = 0.5,
        http: str = "h11",
    ) -> None:
        self.app = app
        self.http = http  # "httptools" for benchmarks: what production servers (and the portal) use
        self.host = host
        self.port = port
        self.startup_timeout = startup_timeout
        self.graceful_timeout = graceful_timeout
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._error: BaseException | None = None

    # -- lifecycle

    @property
    def url(self) -> str:
        """The base URL; it stays valid after `stop()` (then refusing connections) and across a restart."""
        if not self.port:
            raise RuntimeError("the server was never started")
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Self:
        """Start serving (a no-op when running). After `stop()` it starts again on the same port."""
        if self._server is not None:
            return self
        _install_log_filter()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            http=self.http,  # type: ignore[arg-type]
            ws="none",
            timeout_graceful_shutdown=self.graceful_timeout,  # type: ignore[arg-type]  # a float works
        )
        server = uvicorn.Server(config)
        self._server = server
        self._stopping = asyncio.Event()

        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            await server.serve(sockets=[sock])

        def run() -> None:
            try:
                asyncio.run(serve())
            except BaseException as exc:  # reported by start()
                self._error = exc
            finally:
                with contextlib.suppress(OSError):
                    sock.close()

        self._thread = threading.Thread(target=run, name=f"fake-server-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"fake server did not start on {self.host}:{self.port}") from self._error
            time.sleep(0.005)
        while True:  # the listener is up; make sure a connection is accepted
            try:
                with socket.create_connection((self.host, self.port), timeout=1):
                    break
            except OSError as exc:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"fake server on {self.host}:{self.port} refuses connections") from exc
                time.sleep(0.01)
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop may be closing already
                loop.call_soon_threadsafe(stopping.set)
        server.should_exit = True
        thread.join(timeout=self.graceful_timeout + 3)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout=3)
        self._server = self._thread = self._loop = None
        self._stopping = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- for endpoints (run on the server's loop)

    @property
    def is_stopping(self) -> bool:
        return self._stopping is None or self._stopping.is_set()

    async def wait_stopping(self) -> None:
        """Wait until `stop()` is called."""
        if (stopping := self._stopping) is not None:
            await stopping.wait()

    async def sleep(self, seconds: float) -> None:
        """Sleep, but raise `CutConnection` at once if the server is stopping meanwhile."""
        stopping = self._stopping
        if stopping is None or stopping.is_set():
            raise CutConnection("server stopping")
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        try:
            await asyncio.wait_for(stopping.wait(), seconds)
        except TimeoutError:
            return
        raise CutConnection("server stopping")
