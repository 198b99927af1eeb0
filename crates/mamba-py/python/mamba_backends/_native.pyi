"""Type stubs of the extension module `mamba_backends._native` (the Rust half)."""

from typing import Any, Awaitable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ._types import ModelResponse, StreamChunk

__version__: str

def init_types(
    model_response: type, stream_chunk: type, errors: Mapping[str, type], base_error: type
) -> None: ...
def profile_fields(model: str) -> Dict[str, Any]: ...
def register_profile_fields(fields: Dict[str, Any]) -> None: ...
def profile_names() -> List[Dict[str, Any]]: ...
def preset_names() -> List[Tuple[str, str, bool]]: ...
def load_local(
    model_file: Optional[str] = None, *, threads: Optional[int] = None, context: Optional[int] = None
) -> Awaitable[NativeBackend]: ...
def default_model_file() -> Optional[str]: ...

class NativeStream:
    def next_batch(self) -> Awaitable[List[StreamChunk]]: ...
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
        messages: Sequence[Mapping[str, Any]],
        tools: Optional[Sequence[Mapping[str, Any]]] = None,
        temperature: Optional[float] = None,
        max_tokens: Optional[int] = None,
        kwargs: Optional[Dict[str, Any]] = None,
    ) -> Awaitable[ModelResponse]: ...
    def stream(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Optional[Sequence[Mapping[str, Any]]] = None,
        temperature: Optional[float] = None,
        max_tokens: Optional[int] = None,
        kwargs: Optional[Dict[str, Any]] = None,
    ) -> NativeStream: ...
    def health_check(self) -> Awaitable[bool]: ...
    def list_models(self) -> Awaitable[List[str]]: ...
    def embed(
        self, texts: Union[str, List[str]], dimensions: Optional[int] = None, model: Optional[str] = None
    ) -> Awaitable[List[List[float]]]: ...
    def close(self) -> Awaitable[None]: ...
