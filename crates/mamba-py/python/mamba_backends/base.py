"""`ModelBackend`: the abstract base of every backend, the reference's interface.

Subclass it for a backend of your own; the backends of this package are instances of it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, AsyncIterator, Dict, List, Optional, TypeVar

from ._types import ModelResponse, StreamChunk


_Backend = TypeVar("_Backend", bound="ModelBackend")


class ModelBackend(ABC):
    """Abstract base class for model backends (as ``mamba_agents.backends.ModelBackend``)."""

    @property
    @abstractmethod
    def name(self) -> str:
        """The backend's name."""

    @property
    @abstractmethod
    def model(self) -> str:
        """The model identifier."""

    @abstractmethod
    async def complete(
        self,
        messages: List[Dict[str, Any]],
        *,
        tools: Optional[List[Dict[str, Any]]] = None,
        temperature: Optional[float] = None,
        max_tokens: Optional[int] = None,
        **kwargs: Any,
    ) -> ModelResponse:
        """Generates a whole answer."""

    @abstractmethod
    def stream(
        self,
        messages: List[Dict[str, Any]],
        *,
        tools: Optional[List[Dict[str, Any]]] = None,
        temperature: Optional[float] = None,
        max_tokens: Optional[int] = None,
        **kwargs: Any,
    ) -> AsyncIterator[StreamChunk]:
        """Generates an answer as chunks (``async for chunk in backend.stream(...)``).

        An ``async def`` generator implements it, as in the reference."""

    @abstractmethod
    async def health_check(self) -> bool:
        """Whether the backend is reachable and working."""

    async def close(self) -> None:
        """Releases connections. The default does nothing."""
        return None

    async def __aenter__(self: _Backend) -> _Backend:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()
