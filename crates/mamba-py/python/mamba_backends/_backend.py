"""`NativeBackedBackend`: the `ModelBackend` every backend of this package is, on the Rust core.

Each method converts its arguments in Rust while it holds the GIL (so wrong input raises
``TypeError``/``ValueError`` naming the argument before any request), then awaits a future the
Rust runtime completes without the GIL. A stream hands over every chunk already received in
one wake-up; cancelling the task that awaits, or dropping the stream (``break`` out of
``async for``), drops the request and frees its connection. Results come back through one
wake-up channel per event loop (see ``src/bridge.rs``): no Rust thread ever takes the GIL.
"""

from __future__ import annotations

import asyncio
import weakref
import json
from typing import (
    Any,
    AsyncIterator,
    Callable,
    Dict,
    List,
    Mapping,
    Optional,
    Protocol,
    Sequence,
    Tuple,
    Type,
    TypeVar,
    Union,
    overload,
)

from . import _native
from ._types import ModelResponse, StreamChunk
from .base import ModelBackend
from .errors import InvalidOutputError
from .profiles import ModelProfile, _profile


T = TypeVar("T")


class PydanticModel(Protocol):
    """What `NativeBackedBackend.extract` needs of a model class: Pydantic v2's
    ``model_json_schema`` and ``model_validate`` (any ``pydantic.BaseModel`` subclass)."""

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> Dict[str, Any]: ...

    @classmethod
    def model_validate(cls, *args: Any, **kwargs: Any) -> Any: ...


_Model = TypeVar("_Model", bound=PydanticModel)

#: The names `extract` takes for ``mode``.
EXTRACT_MODES = ("auto", "json_schema", "json_object", "tool", "prompt")

_wakers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _native.LoopWaker]" = weakref.WeakKeyDictionary()


def _waker(loop: asyncio.AbstractEventLoop) -> "_native.LoopWaker":
    """The loop's wake-up channel from the Rust runtime, made on first use."""
    waker = _wakers.get(loop)
    if waker is None:
        # Wakers of closed loops still referenced elsewhere hold two descriptors each: a closed
        # loop no longer watches its waker, so dropping ours closes them.
        for closed in [other for other in _wakers if other.is_closed()]:
            del _wakers[closed]
        waker = _native.LoopWaker()
        loop.add_reader(waker.fileno(), waker.drain)
        _wakers[loop] = waker
    return waker


def _start(start: Callable[["_native.LoopWaker", "asyncio.Future[T]"], "_native.Task"]) -> "Tuple[asyncio.Future[T], _native.Task]":
    """Starts Rust work with ``start(waker, future)`` on the running loop: the future its
    result resolves, and the task that aborts it."""
    loop = asyncio.get_running_loop()
    future: "asyncio.Future[T]" = loop.create_future()
    return future, start(_waker(loop), future)


async def run(start: Callable[["_native.LoopWaker", "asyncio.Future[T]"], "_native.Task"]) -> T:
    """Starts Rust work with ``start(waker, future)`` and awaits its result; cancelling the
    awaiting task aborts the work (the request and its connection go with it)."""
    future, task = _start(start)
    try:
        return await future
    except BaseException:
        task.abort()
        raise


_U32_MAX = 0xFFFF_FFFF


def _int_arg(value: Any, arg: str, minimum: int = 1) -> Optional[int]:
    """``value`` checked as an int argument: ``None`` passes; a bool or a non-int is a
    ``TypeError``, a value out of range a ``ValueError``, each naming ``arg`` (the Rust
    conversion would raise ``OverflowError`` without saying which argument)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{arg} must be an int, got {type(value).__name__}")
    if not minimum <= value <= _U32_MAX:
        raise ValueError(f"{arg} must be an int from {minimum} to {_U32_MAX}, got {value}")
    return value


class ChunkStream(AsyncIterator[StreamChunk]):
    """The chunks of one streamed answer: ``async for chunk in backend.stream(...)``.

    The request is sent when the first chunk is awaited. ``await stream.aclose()`` (or
    ``async with``) ends it early and frees its connection; so does dropping the last
    reference, e.g. with ``break``.
    """

    __slots__ = ("_native", "_buffer", "_next", "_done", "_pending")

    def __init__(self, native: "_native.NativeStream") -> None:
        self._native = native
        self._buffer: List[StreamChunk] = []
        self._next = 0
        self._done = False
        self._pending: "Optional[asyncio.Future[List[StreamChunk]]]" = None

    def __aiter__(self) -> "ChunkStream":
        return self

    async def __anext__(self) -> StreamChunk:
        i = self._next
        if i < len(self._buffer):
            self._next = i + 1
            return self._buffer[i]
        if self._done:
            raise StopAsyncIteration
        future, _ = _start(self._native.next_batch)
        self._pending = future
        try:
            batch = await future
        except BaseException as error:
            # close() aborts the batch being awaited too.
            closed_meanwhile = self._done
            self._done = True
            self._native.close()
            if closed_meanwhile and isinstance(error, asyncio.CancelledError):
                # aclose() from another task cancelled this wait: the stream simply ended.
                raise StopAsyncIteration from None
            raise
        finally:
            self._pending = None
        if not batch or self._done:
            self._done = True
            raise StopAsyncIteration
        self._buffer = batch
        self._next = 1
        return batch[0]

    async def aclose(self) -> None:
        """Ends the stream now, also while another task awaits its next chunk (that task's
        ``async for`` then ends); its connection is closed."""
        self._done = True
        self._buffer = []
        self._native.close()
        pending = self._pending
        if pending is not None and not pending.done():
            pending.cancel()

    async def __aenter__(self) -> "ChunkStream":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()


class NativeBackedBackend(ModelBackend):
    """A backend of the Rust core (base of `OpenAICompatibleBackend`, `BackendPool` and the
    built-in model)."""

    _native: "_native.NativeBackend"
    _profile_given: Optional[ModelProfile] = None

    @property
    def name(self) -> str:
        """The backend's name: ``"openai_compatible"``, ``"pool(<its endpoints' names>)"`` or ``"local"``."""
        return self._native.name

    @property
    def model(self) -> str:
        """The model requests name."""
        return self._native.model

    @property
    def profile(self) -> ModelProfile:
        """The model profile in use: the one given, else the registry's for the model."""
        if self._profile_given is not None:
            return self._profile_given
        return _profile(self._native.profile_fields())

    async def complete(
        self,
        messages: List[Dict[str, Any]],
        *,
        tools: Optional[List[Dict[str, Any]]] = None,
        temperature: Optional[float] = None,
        max_tokens: Optional[int] = None,
        **kwargs: Any,
    ) -> ModelResponse:
        """A whole answer.

        Args:
            messages: The conversation, OpenAI-shaped dicts, sent as written (unknown keys,
                content parts and tool messages kept).
            tools: OpenAI tool dicts (``{"type": "function", "function": {...}}``).
            temperature: Sampling temperature; none is sent when ``None``.
            max_tokens: Longest answer in tokens (sent as the field the server wants).
            **kwargs: Further body fields, merged into the request body as given.

        Raises:
            ModelBackendError: Of the subclass of the failure's kind.
            TypeError, ValueError: For arguments of the wrong type or value, before any request.
        """
        native = self._native
        extra = kwargs or None
        return await run(lambda w, f: native.complete(w, f, messages, tools, temperature, max_tokens, extra))

    def stream(
        self,
        messages: List[Dict[str, Any]],
        *,
        tools: Optional[List[Dict[str, Any]]] = None,
        temperature: Optional[float] = None,
        max_tokens: Optional[int] = None,
        **kwargs: Any,
    ) -> ChunkStream:
        """The answer as chunks: ``async for chunk in backend.stream(messages)``.

        Arguments as for `complete`; wrong ones raise here, before any request. A stream cut
        before its end raises `StreamError` (the reference ended silently); an error event
        inside it raises the error of its kind (e.g. `ServerError` for a ``server_error``),
        after the chunks that came before it.
        """
        return ChunkStream(self._native.stream(messages, tools, temperature, max_tokens, kwargs or None))

    @overload
    async def extract(
        self,
        schema: Type[_Model],
        messages: List[Dict[str, Any]],
        *,
        attempts: int = 3,
        mode: str = "auto",
        name: Optional[str] = None,
        temperature: Optional[float] = None,
        max_tokens: Optional[int] = None,
        **kwargs: Any,
    ) -> _Model: ...

    @overload
    async def extract(
        self,
        schema: Mapping[str, Any],
        messages: List[Dict[str, Any]],
        *,
        attempts: int = 3,
        mode: str = "auto",
        name: Optional[str] = None,
        temperature: Optional[float] = None,
        max_tokens: Optional[int] = None,
        **kwargs: Any,
    ) -> Any: ...

    async def extract(
        self,
        schema: Union[Type[_Model], Mapping[str, Any]],
        messages: List[Dict[str, Any]],
        *,
        attempts: int = 3,
        mode: str = "auto",
        name: Optional[str] = None,
        temperature: Optional[float] = None,
        max_tokens: Optional[int] = None,
        **kwargs: Any,
    ) -> Any:
        """Structured output: an instance of the Pydantic model ``schema`` (or, for a dict JSON
        Schema, a value valid against it) read from the model's answer.

        The answer is parsed leniently (markdown fences, prose around the JSON, trailing
        commas... are repaired without another request), validated against the schema, and an
        invalid one is sent back with its validation errors, up to ``attempts`` requests.

        Args:
            schema: A Pydantic (v2) model class, whose ``model_json_schema()`` is asked for and
                whose ``model_validate`` builds the result; or a JSON Schema as a dict, and the
                result is the plain value (dict, list, str, ...).
            messages: The conversation, as for `complete`.
            attempts: Requests at most (at least 1).
            mode: How the schema is asked for: ``"auto"`` (the server's own form, from its
                preset), ``"json_schema"``, ``"json_object"``, ``"tool"`` (a forced tool call)
                or ``"prompt"`` (the schema in the prompt only).
            name: The schema's name on the wire (default: its ``title``, which Pydantic sets
                to the class name, else ``"output"``).
            temperature, max_tokens, **kwargs: As for `complete`.

        Raises:
            InvalidOutputError: Still invalid after the last attempt; ``attempts`` holds every
                attempt's ``(text, error)``. Also raised when the value is valid against the
                schema but the model class's own validators reject it (those errors are not
                sent back to the model).
            TruncatedError: The answer was cut by the token limit inside its JSON.
            RefusalError: The model refused.
            ConfigurationError: ``schema`` is not valid JSON Schema (before any request).
            ModelBackendError: Any other failure of the request, of its kind.
            TypeError, ValueError: For arguments of the wrong type or value, before any request.
        """
        model_class: Optional[Type[_Model]] = None
        if isinstance(schema, type):
            if not (hasattr(schema, "model_json_schema") and hasattr(schema, "model_validate")):
                raise TypeError(
                    f"schema must be a Pydantic model class (v2) or a dict JSON Schema, got the class {schema.__name__}"
                )
            model_class = schema
            json_schema: Dict[str, Any] = schema.model_json_schema()
        elif isinstance(schema, Mapping):
            json_schema = dict(schema)
        else:
            raise TypeError(
                f"schema must be a Pydantic model class (v2) or a dict JSON Schema, got {type(schema).__name__}"
            )
        _int_arg(attempts, "attempts")
        if not isinstance(mode, str) or mode.replace("-", "_") not in EXTRACT_MODES:
            raise ValueError(f"mode must be one of {', '.join(EXTRACT_MODES)}, got {mode!r}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str, got {type(name).__name__}")
        native = self._native
        extra = kwargs or None
        value: Any = await run(
            lambda w, f: native.extract_value(
                w, f, json_schema, messages, attempts, mode, name, temperature, max_tokens, extra
            )
        )
        if model_class is None:
            return value
        try:
            return model_class.model_validate(value)
        except ValueError as error:
            # Pydantic's ValidationError is a ValueError: validators beyond the schema.
            text = json.dumps(value)
            raise InvalidOutputError(
                f"the answer is valid against the schema but {model_class.__name__} rejected it: {error}",
                model=self.model,
                kind="invalid_output",
                attempts=[(text, str(error))],
            ) from error

    async def health_check(self) -> bool:
        """Whether the server answers its health probe (``GET /models`` or the preset's)."""
        return await run(self._native.health_check)

    async def list_models(self) -> List[str]:
        """The model ids the server lists."""
        return await run(self._native.list_models)

    async def embed(
        self,
        texts: Union[str, Sequence[str]],
        *,
        dimensions: Optional[int] = None,
        model: Optional[str] = None,
        numpy: bool = False,
    ) -> Any:
        """Embeddings of ``texts``, one vector per text, in order, batched by the server's
        limits.

        Args:
            texts: A text or a list of texts.
            dimensions: Shorter vectors, for models trained for it.
            model: The embedding model, when it differs from the backend's.
            numpy: Return a ``numpy.ndarray`` (float32, one row per text) instead of lists.
        """
        _int_arg(dimensions, "dimensions")
        if model is not None and not isinstance(model, str):
            raise TypeError(f"model must be a str, got {type(model).__name__}")
        if not isinstance(texts, (str, list)):
            try:
                texts = list(texts)
            except TypeError:
                raise TypeError(f"texts must be a str or a list of str, got {type(texts).__name__}") from None
        items = texts
        native = self._native
        vectors: List[List[float]] = await run(lambda w, f: native.embed(w, f, items, dimensions, model))
        if numpy:
            import numpy as np

            return np.asarray(vectors, dtype=np.float32)
        return vectors

    async def close(self) -> None:
        """Releases the backend's connections."""
        await run(self._native.close)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, target={self._native.target!r})"
