"""mamba_backends: the ``mamba_agents.backends`` API on a Rust core.

A drop-in for the reference package's backends: change the import line, keep the code::

    from mamba_backends import OpenAICompatibleBackend

    backend = OpenAICompatibleBackend(model="my-model", base_url="http://localhost:8000/v1")
    response = await backend.complete([{"role": "user", "content": "Hello"}])

Same names, signatures, dataclasses and exceptions as the reference, with its known defects
fixed (see the README's Python section), plus presets, the Responses API, retries,
embeddings, pools and the built-in model. Requests run on one shared Rust runtime with the
GIL released.
"""

from __future__ import annotations

from . import _native
from ._backend import ChunkStream, NativeBackedBackend
from ._types import ModelResponse, StreamChunk
from .base import ModelBackend
from .errors import (
    ERRORS_BY_KIND,
    AgentError,
    AuthenticationError,
    ConfigurationError,
    ConnectError,
    ContextOverflowError,
    DecodeError,
    InvalidOutputError,
    InvalidRequestError,
    ModelBackendError,
    ModelNotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    RefusalError,
    ServerError,
    StreamError,
    TimeoutError,
    TruncatedError,
    UnavailableError,
    UnsupportedError,
)
from .openai_compat import (
    OpenAICompatibleBackend,
    create_lmstudio_backend,
    create_ollama_backend,
    create_vllm_backend,
    presets,
)
from .pool import BackendPool, LocalBackend, local
from .profiles import ModelProfile, get_profile, get_profiles_by_provider, list_profiles, register_profile

_native.init_types(ModelResponse, StreamChunk, ERRORS_BY_KIND, ModelBackendError)

__version__: str = _native.__version__

__all__ = [
    "AgentError",
    "AuthenticationError",
    "BackendPool",
    "ChunkStream",
    "ConfigurationError",
    "ConnectError",
    "ContextOverflowError",
    "DecodeError",
    "InvalidOutputError",
    "InvalidRequestError",
    "LocalBackend",
    "ModelBackend",
    "ModelBackendError",
    "ModelNotFoundError",
    "ModelProfile",
    "ModelResponse",
    "NativeBackedBackend",
    "OpenAICompatibleBackend",
    "PermissionDeniedError",
    "QuotaExceededError",
    "RateLimitError",
    "RefusalError",
    "ServerError",
    "StreamChunk",
    "StreamError",
    "TruncatedError",
    "UnavailableError",
    "UnsupportedError",
    "create_lmstudio_backend",
    "create_ollama_backend",
    "create_vllm_backend",
    "get_profile",
    "get_profiles_by_provider",
    "list_profiles",
    "local",
    "presets",
    "register_profile",
]
