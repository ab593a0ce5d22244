"""A problem found on one line of a file a user gave us, kept as a message id so that it is shown in the reader's
language."""

from __future__ import annotations

from dataclasses import dataclass, field

from backend.i18n import gettext


@dataclass(frozen=True)
class LineError:
    line: int  # 1-based
    message_id: str  # English, marked with N_; `text()` translates it
    params: dict[str, object] = field(default_factory=dict)

    def text(self, language: str | None = None) -> str:
        """The message in `language`, or in the current request's language (English outside a request)."""
        return gettext(self.message_id, language=language, **self.params)

    def public(self) -> dict[str, object]:
        return {"line": self.line, "message": self.text()}
