"""Domain errors that services raise; routers and pages turn them into statuses or notifications.

The message is an English message id with `{placeholders}`, translated where it reaches a person.
"""

from __future__ import annotations

from backend.i18n import gettext


class DomainError(Exception):
    status_code = 400

    def __init__(self, message: str, **params: object) -> None:
        super().__init__(message.format(**params) if params else message)
        self.message = message
        self.params = params

    def translated(self, language: str | None = None) -> str:
        return gettext(self.message, language=language, **self.params)

    def extra(self) -> dict[str, object] | None:
        """More fields for the API's error body (beside `detail`), where a message alone is not enough."""
        return None


class Invalid(DomainError):
    status_code = 400


class Unauthorized(DomainError):
    status_code = 401


class Forbidden(DomainError):
    status_code = 403


class NotFound(DomainError):
    status_code = 404


class Conflict(DomainError):
    status_code = 409


class TooLarge(DomainError):
    status_code = 413


class TooManyRequests(DomainError):
    status_code = 429

    def __init__(self, message: str, *, retry_after: int, **params: object) -> None:
        super().__init__(message, retry_after=retry_after, **params)
        self.retry_after = retry_after
