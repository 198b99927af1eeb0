"""Type stubs of the extension module `mamba_backends._native` (the Rust half)."""

import asyncio
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ._types import ModelResponse, StreamChunk

class LoopWaker:
    """The wake-up channel of one event loop."""
    def __init__(self) -> None: ...
    def fileno(self) -> int: ...
    def drain(self) -> None: ...

class Task:
    """The Rust work behind one future."""
    def abort(self) -> None: ...

__version__: str

def init_types(
    model_response: type, stream_chunk: type, errors: Mapping[str, type], base_error: type
) -> None: ...
def profile_fields(model: str) -> Dict[str, Any]: ...
def register_profile_fields(fields: Dict[str, Any]) -> None: ...
def profile_names() -> List[Dict[str, Any]]: ...
def preset_names() -> List[Tuple[str, str, bool]]: ...
def load_local(
    waker: LoopWaker,
    future: "asyncio.Future[NativeBackend]",
    model_file: Union[str, "os.PathLike[str]", None] = None,
    *,
    threads: Optional[int] = None,
    context: Optional[int] = None,
) -> Task: ...
def default_model_file() -> Optional[str]: ...

class NativeStream:
    def next_batch(self, waker: LoopWaker, future: "asyncio.Future[List[StreamChunk]]") -> Task: ...
    def close(self) -> None: ...

class NativeBackend:
    @staticmethod
    def openai(
        model: str,
        *,
        base_url: Optional[str] = None,
        api_key: Optional[str] = None,
        timeout: Optional[float] = None,
        profile: Optional[Dict[str, Any]] = None,
        preset: Optional[str] = None,
        api: Optional[str] = None,
        max_retries: Optional[int] = None,
        total_timeout: Optional[float] = None,
        connect_timeout: Optional[float] = None,
        headers: Optional[Mapping[str, str]] = None,
        include_usage: Optional[bool] = None,
        drop_unsupported: bool = False,
    ) -> NativeBackend: ...
    @staticmethod
    def pool(
        backends: List[NativeBackend],
        *,
        fallbacks: Optional[List[NativeBackend]] = None,
        failure_threshold: Optional[int] = None,
        cool_down: Optional[float] = None,
    ) -> NativeBackend: ...
    @property
    def name(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def target(self) -> str: ...
    def profile_fields(self) -> Dict[str, Any]: ...
    def complete(
        self,
        waker: LoopWaker,
        future: "asyncio.Future[ModelResponse]",
        messages: Sequence[Mapping[str, Any]],
        tools: Optional[Sequence[Mapping[str, Any]]] = None,
        temperature: Optional[float] = None,
        max_tokens: Optional[int] = None,
        kwargs: Optional[Dict[str, Any]] = None,
    ) -> Task: ...
    def stream(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Optional[Sequence[Mapping[str, Any]]] = None,
        temperature: Optional[float] = None,
        max_tokens: Optional[int] = None,
        kwargs: Optional[Dict[str, Any]] = None,
    ) -> NativeStream: ...
    def extract_value(
        self,
        waker: LoopWaker,
        future: "asyncio.Future[Any]",
        schema: Dict[str, Any],
        messages: Sequence[Mapping[str, Any]],
        attempts: Optional[int] = None,
        mode: Optional[str] = None,
        name: Optional[str] = None,
        temperature: Optional[float] = None,
        max_tokens: Optional[int] = None,
        kwargs: Optional[Dict[str, Any]] = None,
    ) -> Task: ...
    def health_check(self, waker: LoopWaker, future: "asyncio.Future[bool]") -> Task: ...
    def list_models(self, waker: LoopWaker, future: "asyncio.Future[List[str]]") -> Task: ...
    def embed(
        self,
        waker: LoopWaker,
        future: "asyncio.Future[List[List[float]]]",
        texts: Union[str, List[str]],
        dimensions: Optional[int] = None,
        model: Optional[str] = None,
    ) -> Task: ...
    def close(self, waker: LoopWaker, future: "asyncio.Future[None]") -> Task: ...
