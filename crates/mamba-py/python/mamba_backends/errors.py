"""The exceptions: the reference's names and attributes, and one subclass per error kind.

Every error a backend raises is a `ModelBackendError` (so ``except ModelBackendError``
catches all of them), of the subclass of its kind, with the reference's attributes
(``model``, ``status_code``, ``response_body``, ``retryable``, ``cause``; ``retry_after`` on
all of them, not only on `RateLimitError`) and ours: ``kind`` (a string to branch on),
``request_id`` and ``code``. Attributes a given error has no value for are ``None`` (the
reference raises ``AttributeError`` for them).

Differences from the reference, on purpose: `AuthenticationError` is a `ModelBackendError`
(there it is only an `AgentError`), so one ``except`` catches every backend failure;
`TimeoutError` and `ConnectError` also derive from Python's own ``TimeoutError`` and
``ConnectionError``; `ConfigurationError` (a bad URL or option) derives from ``ValueError``.
No message, repr or attribute holds the API key.

Also different from the reference: ``response_body`` is the server's whole error body (the
reference keeps only its message there); messages are the core's (``authentication failed
(HTTP 401): ...``), not the reference's prefixes (``Authentication failed: ...``); ``cause`` is
``None`` (the core's error chain is in the message).
"""

from __future__ import annotations

import builtins
from typing import Any, ClassVar, Dict, Optional, Sequence, Tuple


class AgentError(Exception):
    """Base of every error, as in mamba-agents: ``message``, ``cause`` and ``details``."""

    _defaults: ClassVar[Dict[str, Any]] = {}

    def __init__(self, message: str, *, cause: Optional[BaseException] = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.cause = cause
        self.details = details
        for name, value in {**self._defaults, **details}.items():
            setattr(self, name, value)

    def __str__(self) -> str:
        if self.cause:
            return f"{self.message} (caused by: {self.cause})"
        return self.message

    def __reduce__(self) -> Any:
        return (_rebuild, (type(self), self.message, self.cause, self.details))


def _rebuild(cls: "type[AgentError]", message: str, cause: Optional[BaseException], details: Dict[str, Any]) -> AgentError:
    return cls(message, cause=cause, **details)


class ModelBackendError(AgentError):
    """A model backend failed: the server answered with an error, or could not be reached.

    Attributes:
        model: The model asked.
        status_code: The HTTP status, when the server answered.
        response_body: The server's error body, when it sent one.
        retryable: Whether the same request may succeed if sent again.
        retry_after: Seconds the server asked to wait, when it said.
        kind: The error kind (``"rate_limited"``, ``"context_overflow"``, ...).
        request_id: The server's request id, when it sent one.
        code: The server's error code, when it sent one.
        cause: The underlying exception, when there is one.
    """

    _defaults: ClassVar[Dict[str, Any]] = {
        "model": None,
        "status_code": None,
        "response_body": None,
        "retryable": False,
        "retry_after": None,
        "kind": None,
        "request_id": None,
        "code": None,
    }
    model: Optional[str]
    status_code: Optional[int]
    response_body: Optional[str]
    retryable: bool
    retry_after: Optional[float]
    kind: Optional[str]
    request_id: Optional[str]
    code: Optional[str]


class RateLimitError(ModelBackendError):
    """The server asked to slow down (HTTP 429); ``retry_after`` says for how long, when known."""

    _defaults: ClassVar[Dict[str, Any]] = {**ModelBackendError._defaults, "retryable": True}

    def __init__(self, message: str, **kwargs: Any) -> None:
        kwargs.setdefault("retryable", True)
        super().__init__(message, **kwargs)


class AuthenticationError(ModelBackendError):
    """The key is missing, wrong or expired (HTTP 401)."""


class PermissionDeniedError(ModelBackendError):
    """The key may not use this model or endpoint (HTTP 403)."""


class QuotaExceededError(ModelBackendError):
    """The account's quota or credit is used up; waiting does not help."""


class ContextOverflowError(ModelBackendError):
    """The conversation is longer than the model's context window.

    Also has the attributes of mamba-agents' own ``ContextOverflowError``: ``current_tokens``,
    ``max_tokens`` (``None``: the server's message says them) and ``compaction_attempted``
    (``False``)."""

    _defaults: ClassVar[Dict[str, Any]] = {
        **ModelBackendError._defaults,
        "current_tokens": None,
        "max_tokens": None,
        "compaction_attempted": False,
    }


class ModelNotFoundError(ModelBackendError):
    """The server does not serve this model."""


class InvalidRequestError(ModelBackendError):
    """The server refused the request as malformed (HTTP 400, 422)."""


class UnsupportedError(ModelBackendError):
    """The server (or this backend) does not support what was asked."""


class ServerError(ModelBackendError):
    """The server failed (HTTP 5xx)."""


class UnavailableError(ModelBackendError):
    """The server is overloaded or starting (HTTP 503, 529)."""


class TimeoutError(ModelBackendError, builtins.TimeoutError):
    """No answer in time (connect, first byte, or between bytes).

    Also a builtin ``TimeoutError``, and has the attributes of mamba-agents' own:
    ``timeout_seconds`` and ``operation`` (``None``). Not in ``__all__``, so
    ``from mamba_backends import *`` does not shadow the builtin."""

    _defaults: ClassVar[Dict[str, Any]] = {**ModelBackendError._defaults, "timeout_seconds": None, "operation": None}


class ConnectError(ModelBackendError, builtins.ConnectionError):
    """The server could not be reached (refused, unresolvable, TLS failed)."""


class DecodeError(ModelBackendError):
    """The server's answer was not what the API promises."""


class StreamError(ModelBackendError):
    """A stream broke: it ended or was cut before its end. (An error event in the middle of a
    stream is raised as the error of its kind, read from the event: `ServerError`,
    `RateLimitError`, `ContextOverflowError`, ...)"""


class ConfigurationError(ModelBackendError, ValueError):
    """A setting is invalid (URL, header, option). Also a ``ValueError``, with the attributes of
    mamba-agents' own: ``config_key``, ``expected``, ``actual`` (``None``)."""

    _defaults: ClassVar[Dict[str, Any]] = {
        **ModelBackendError._defaults,
        "config_key": None,
        "expected": None,
        "actual": None,
    }


class RefusalError(ModelBackendError):
    """The model refused to answer (a ``refusal``, or the content filter stopped it); the
    refusal's text is in the message. Not retryable."""


class TruncatedError(ModelBackendError):
    """Structured output was cut by the token limit before its JSON was complete: raise
    ``max_tokens`` or ask for less."""


class InvalidOutputError(ModelBackendError):
    """Structured output still failed to parse or validate after the last attempt; the
    message holds the last validation error, and ``attempts`` every attempt's
    ``(text, error)`` (the text as the model wrote it, the parse or validation error)."""

    _defaults: ClassVar[Dict[str, Any]] = {**ModelBackendError._defaults, "attempts": ()}
    attempts: Sequence[Tuple[str, Optional[str]]]


#: The exception class of each error kind of the Rust core.
ERRORS_BY_KIND: Dict[str, type] = {
    "authentication": AuthenticationError,
    "permission_denied": PermissionDeniedError,
    "rate_limited": RateLimitError,
    "quota_exceeded": QuotaExceededError,
    "context_overflow": ContextOverflowError,
    "model_not_found": ModelNotFoundError,
    "invalid_request": InvalidRequestError,
    "unsupported": UnsupportedError,
    "server": ServerError,
    "unavailable": UnavailableError,
    "timeout": TimeoutError,
    "connect": ConnectError,
    "decode": DecodeError,
    "stream": StreamError,
    "config": ConfigurationError,
    "refusal": RefusalError,
    "truncated": TruncatedError,
    "invalid_output": InvalidOutputError,
}
