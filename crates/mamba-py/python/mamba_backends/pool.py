"""`BackendPool` and the built-in model (`local`)."""

from __future__ import annotations

import os
from typing import List, Optional, Sequence, Union

from . import _native
from ._backend import NativeBackedBackend, _int_arg, run


def _natives(backends: Sequence[NativeBackedBackend], arg: str) -> "List[_native.NativeBackend]":
    out: "List[_native.NativeBackend]" = []
    for i, b in enumerate(backends):
        if not isinstance(b, NativeBackedBackend):
            raise TypeError(f"{arg}[{i}] must be a backend of mamba_backends, got {type(b).__name__}")
        out.append(b._native)
    return out


def _seconds(value: Optional[float], arg: str) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{arg} must be a number of seconds, got {type(value).__name__}")
    return float(value)


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
            failure_threshold=_int_arg(failure_threshold, "failure_threshold"),
            cool_down=_seconds(cool_down, "cool_down"),
        )


class LocalBackend(NativeBackedBackend):
    """The built-in model, run in this process (create it with ``await local()``)."""

    def __init__(self, native: "_native.NativeBackend") -> None:
        self._native = native


async def local(
    model_file: Optional[Union[str, "os.PathLike[str]"]] = None, *, threads: Optional[int] = None, context: Optional[int] = None
) -> LocalBackend:
    """The built-in model: a GGUF file run in this process, no server needed.

    Args:
        model_file: The GGUF file. Default: ``MAMBA_MODEL_FILE``, else the default model
            (SmolLM2-135M-Instruct) from the cache shared with ``mamba-llm``
            (``~/.cache/mamba``), downloaded there once (94 MiB) when missing.
        threads: Compute threads (default: all cores).
        context: Context window in tokens (default 2048, or the model's if smaller).
    """
    if model_file is not None and not isinstance(model_file, (str, os.PathLike)):
        raise TypeError(f"model_file must be a str or a path, got {type(model_file).__name__}")
    threads = _int_arg(threads, "threads")
    context = _int_arg(context, "context")
    native: "_native.NativeBackend" = await run(
        lambda w, f: _native.load_local(w, f, model_file, threads=threads, context=context)
    )
    return LocalBackend(native)
