"""`BackendPool` and the built-in model (`local`)."""

from __future__ import annotations

from typing import List, Optional, Sequence

from . import _native
from ._backend import NativeBackedBackend


def _natives(backends: Sequence[NativeBackedBackend], arg: str) -> "List[_native.NativeBackend]":
    out: "List[_native.NativeBackend]" = []
    for i, b in enumerate(backends):
        if not isinstance(b, NativeBackedBackend):
            raise TypeError(f"{arg}[{i}] must be a backend of mamba_backends, got {type(b).__name__}")
        out.append(b._native)
    return out


class BackendPool(NativeBackedBackend):
    """Several endpoints of one model as one backend.

    Requests go to the least busy healthy endpoint; one that fails ``failure_threshold``
    times in a row is skipped for ``cool_down`` seconds; a retryable failure moves the
    request to the next endpoint, and the ``fallbacks`` answer when every endpoint failed.

    Args:
        backends: The endpoints (backends of this package).
        fallbacks: Backends tried, in order, when every endpoint failed retryably.
        failure_threshold: Failures in a row before an endpoint is skipped.
        cool_down: Seconds an endpoint is skipped.
    """

    def __init__(
        self,
        backends: Sequence[NativeBackedBackend],
        *,
        fallbacks: Optional[Sequence[NativeBackedBackend]] = None,
        failure_threshold: Optional[int] = None,
        cool_down: Optional[float] = None,
    ) -> None:
        if isinstance(backends, (str, bytes)) or not isinstance(backends, Sequence):
            raise TypeError("backends must be a list of backends")
        self._native = _native.NativeBackend.pool(
            _natives(backends, "backends"),
            fallbacks=_natives(fallbacks, "fallbacks") if fallbacks is not None else None,
            failure_threshold=failure_threshold,
            cool_down=float(cool_down) if cool_down is not None else None,
        )


class LocalBackend(NativeBackedBackend):
    """The built-in model, run in this process (create it with ``await local()``)."""

    def __init__(self, native: "_native.NativeBackend") -> None:
        self._native = native


async def local(model_file: Optional[str] = None, *, threads: Optional[int] = None, context: Optional[int] = None) -> LocalBackend:
    """The built-in model: a GGUF file run in this process, no server needed.

    Args:
        model_file: The GGUF file. Default: ``MAMBA_MODEL_FILE``, else the default model
            (SmolLM2-135M-Instruct) from the cache shared with ``mamba-llm``
            (``~/.cache/mamba``), downloaded there once (94 MiB) when missing.
        threads: Compute threads (default: all cores).
        context: Context window in tokens (default 2048, or the model's if smaller).
    """
    return LocalBackend(await _native.load_local(model_file, threads=threads, context=context))
