"""Turning what the SDKs and the network raise into `ProviderError`s with messages a user can act on."""

from __future__ import annotations

import ssl

import httpx
import httpx2

from backend.i18n import N_
from backend.providers.base import (
    STREAM_CUT,
    AuthenticationFailed,
    BadRequest,
    ConnectionFailed,
    NotFound,
    ProviderError,
    RateLimited,
    Timeout,
    UpstreamUnavailable,
)

KEY_REFUSED = N_("{provider} refused the API key: check the key on the Models page")
RATE_LIMITED = N_("{provider} is rate limiting requests; wait a moment and try again")
SERVER_ERROR = N_("{provider} failed with an internal error (HTTP {status}); try again later")
BAD_REQUEST = N_("{provider} rejected the request: {reason}")
MODEL_NOT_FOUND = N_("{provider} does not know this model or path; sync the model list or check the base URL")
TIMED_OUT = N_("{provider} did not answer within {seconds} s; try again, or raise the provider's timeout")
UNREACHABLE = N_("Cannot reach {provider} at {url}: is the address right and the server running?")
TLS_FAILED = N_("The TLS (https) connection to {provider} failed: {reason}")
FAILED_MID_STREAM = N_("{provider} failed in the middle of the answer: {reason}; what arrived is kept")
NOT_THIS_KIND = N_("{provider} did not answer like an {kind} server: check the kind and base URL")


def _in_chain(error: BaseException, kinds: tuple[type[BaseException], ...]) -> bool:
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, kinds):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _tls_problem(error: BaseException) -> ssl.SSLError | None:
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def from_status(status: int, *, provider: str, detail: str, retry_after: float | None = None) -> ProviderError:
    if status in (401, 403):
        return AuthenticationFailed(KEY_REFUSED, provider=provider, detail=detail)
    if status == 429:
        return RateLimited(RATE_LIMITED, provider=provider, retry_after=retry_after, detail=detail)
    if status == 404:
        return NotFound(MODEL_NOT_FOUND, provider=provider, detail=detail)
    if 400 <= status < 500:
        return BadRequest(BAD_REQUEST, provider=provider, reason=detail[:300], detail=detail)
    return UpstreamUnavailable(SERVER_ERROR, provider=provider, status=status, detail=detail)


def from_transport(error: BaseException, *, provider: str, url: str, timeout: float, streaming: bool) -> ProviderError:
    """A network-level failure (no HTTP status): before the answer began, or in the middle of it."""
    if _in_chain(error, (httpx.TimeoutException, httpx2.TimeoutException, TimeoutError)):
        return Timeout(TIMED_OUT, provider=provider, seconds=int(timeout), detail=str(error))
    tls = _tls_problem(error)
    if tls is not None:
        return UpstreamUnavailable(TLS_FAILED, provider=provider, reason=str(tls.reason or tls), detail=str(tls))
    if streaming:
        return UpstreamUnavailable(STREAM_CUT, provider=provider, detail=repr(error))
    return ConnectionFailed(UNREACHABLE, provider=provider, url=url, detail=repr(error))
