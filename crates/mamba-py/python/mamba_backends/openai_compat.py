"""`OpenAICompatibleBackend` and the factories, as in ``mamba_agents.backends.openai_compat``.

Beyond the reference: ``preset=`` (the server family's URL, fields and quirks), ``api=``
(chat completions, the Responses API, or ``"auto"``), retries (``max_retries``, default 2,
with backoff and ``Retry-After``), separate total and connect timeouts, extra headers.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from . import _native
from ._backend import NativeBackedBackend
from .profiles import ModelProfile

_OPENAI_URL = "https://api.openai.com/v1"


def _secret(api_key: Any) -> Optional[str]:
    if api_key is None:
        return None
    if hasattr(api_key, "get_secret_value"):
        api_key = api_key.get_secret_value()
    if not isinstance(api_key, str):
        raise TypeError("api_key must be a str, an object with get_secret_value() (pydantic's SecretStr), or None")
    return api_key


def _number(value: Any, arg: str) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{arg} must be a number of seconds, got {type(value).__name__}")
    return float(value)


class OpenAICompatibleBackend(NativeBackedBackend):
    """A backend for any server that speaks the OpenAI chat-completions API.

    Args:
        model: Model identifier.
        base_url: API base URL. With a ``preset`` and no ``base_url``, the preset's URL.
        api_key: The key (``str`` or pydantic ``SecretStr``). Kept in Rust, never shown.
        timeout: Seconds allowed to connect, for the first byte of the answer, and between
            bytes (the reference's one timeout; a stream lasts as long as it keeps sending).
        profile: A model profile; default: the registry's for ``model``.
        preset: A server family (``"ollama"``, ``"vllm"``, ``"azure"``, ...; see `presets()`).
        api: ``"chat"`` (default), ``"responses"`` or ``"auto"`` (Responses API, falling back
            to chat when the server has none).
        max_retries: Retries of a retryable failure (default 2; 0 turns them off).
        total_timeout: Seconds allowed for a whole request, stream included.
        connect_timeout: Seconds allowed to connect.
        headers: Extra HTTP headers.
        include_usage: Ask streams for usage (``stream_options``); default: the preset's.
        drop_unsupported: Drop fields the server rejects instead of refusing the request.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str = _OPENAI_URL,
        api_key: Any = None,
        timeout: float = 60.0,
        profile: Optional[ModelProfile] = None,
        preset: Optional[str] = None,
        api: Optional[str] = None,
        max_retries: Optional[int] = None,
        total_timeout: Optional[float] = None,
        connect_timeout: Optional[float] = None,
        headers: Optional[Dict[str, str]] = None,
        include_usage: Optional[bool] = None,
        drop_unsupported: bool = False,
    ) -> None:
        if not isinstance(model, str):
            raise TypeError(f"model must be a str, got {type(model).__name__}")
        if not isinstance(base_url, str):
            raise TypeError(f"base_url must be a str, got {type(base_url).__name__}")
        if profile is not None and not isinstance(profile, ModelProfile):
            raise TypeError(f"profile must be a ModelProfile, got {type(profile).__name__}")
        if preset is not None and not isinstance(preset, str):
            raise TypeError(f"preset must be a str, got {type(preset).__name__}")
        if max_retries is not None:
            if isinstance(max_retries, bool) or not isinstance(max_retries, int):
                raise TypeError(f"max_retries must be an int, got {type(max_retries).__name__}")
            if not 0 <= max_retries <= 0xFFFF_FFFF:
                raise ValueError(f"max_retries must be an int >= 0, got {max_retries!r}")
        url: Optional[str] = base_url
        if preset is not None and base_url == _OPENAI_URL:
            url = None
        self._profile_given = profile
        self._native = _native.NativeBackend.openai(
            model,
            base_url=url,
            api_key=_secret(api_key),
            timeout=_number(timeout, "timeout"),
            profile=profile._fields() if profile is not None else None,
            preset=preset,
            api=api,
            max_retries=max_retries,
            total_timeout=_number(total_timeout, "total_timeout"),
            connect_timeout=_number(connect_timeout, "connect_timeout"),
            headers=headers,
            include_usage=include_usage,
            drop_unsupported=drop_unsupported,
        )

    @property
    def name(self) -> str:
        """``"openai_compatible"``, as the reference."""
        return "openai_compatible"


def create_ollama_backend(model: str, *, base_url: str = "http://localhost:11434/v1", **kwargs: Any) -> OpenAICompatibleBackend:
    """A backend for Ollama (its preset: its fields, errors and health probe)."""
    kwargs.setdefault("preset", "ollama")
    return OpenAICompatibleBackend(model=model, base_url=base_url, api_key=None, **kwargs)


def create_vllm_backend(
    model: str, *, base_url: str = "http://localhost:8000/v1", api_key: Optional[str] = None, **kwargs: Any
) -> OpenAICompatibleBackend:
    """A backend for vLLM (its preset)."""
    kwargs.setdefault("preset", "vllm")
    return OpenAICompatibleBackend(model=model, base_url=base_url, api_key=api_key, **kwargs)


def create_lmstudio_backend(
    model: str = "local-model", *, base_url: str = "http://localhost:1234/v1", **kwargs: Any
) -> OpenAICompatibleBackend:
    """A backend for LM Studio (its preset)."""
    kwargs.setdefault("preset", "lm-studio")
    return OpenAICompatibleBackend(model=model, base_url=base_url, api_key=None, **kwargs)


def presets() -> List[Tuple[str, str, bool]]:
    """The presets: ``(name, default base URL, whether a key is required)``."""
    return list(_native.preset_names())
