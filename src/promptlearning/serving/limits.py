"""Request limits and the error a request that breaks one gets: an HTTP status and the limit it names.

Limits keep one client from taking the server down (huge bodies, endless queues, requests that never end);
each error names the limit and the flag that raises it, so the fix is in the message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from promptlearning.errors import PromptLearningError


class RequestError(PromptLearningError):
    """A request the server refuses: ``status`` is its HTTP status, ``limit`` the limit it broke (if any)."""

    def __init__(self, message: str, status: int = 400, limit: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.limit = limit


@dataclass(frozen=True)
class ServingLimits:
    """How the engine batches and what a request may ask; every field is a `promptlearning serve` flag."""

    max_batch_size: int = 32  # rows per forward
    max_wait_ms: float = 5.0  # how long the first queued row waits for others before a forward runs
    max_texts: int = 64  # texts per request
    max_chars: int = 2000  # characters per text
    max_queue: int = 1024  # rows waiting, all requests together
    timeout_s: float = 30.0  # from arrival to answer
    max_new_tokens: int = 64  # generation length per request

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "max_texts", "max_chars", "max_queue", "max_new_tokens"):
            if int(getattr(self, name)) < 1:
                raise RequestError(f"--{name.replace('_', '-')} must be >= 1 (got {getattr(self, name)})")
        if self.max_wait_ms < 0 or self.timeout_s <= 0:
            raise RequestError(f"--max-wait-ms must be >= 0 and --timeout-s > 0 (got {self.max_wait_ms}, "
                               f"{self.timeout_s})")

    def check_texts(self, texts: Sequence[object]) -> None:
        """Refuse a request whose texts break the limits (413) or are not texts at all (422)."""
        if not texts:
            raise RequestError("give at least one text in `texts`", 422)
        if len(texts) > self.max_texts:
            raise RequestError(f"{len(texts)} texts exceed max_texts={self.max_texts}; send fewer per request "
                               "(or start the server with a larger --max-texts)", 413, "max_texts")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise RequestError(f"text {i} is not a string; send `texts` as a list of strings", 422)
            if len(text) > self.max_chars:
                raise RequestError(f"text {i} has {len(text)} characters, over max_chars={self.max_chars}; shorten "
                                   "it (or start the server with a larger --max-chars)", 413, "max_chars")

    def max_body_bytes(self) -> int:
        """The largest request body worth reading: every text at its longest (4 bytes a character in UTF-8)
        plus room for the JSON around them."""
        return self.max_texts * (self.max_chars * 4 + 256) + 65536
