"""Model profiles: what is known about a model family, from the Rust core's registry.

`ModelProfile` has the reference's fields (name, provider, context window, output limit,
capabilities, default temperature, costs, extra) and ours after them. There is one registry
per process, the Rust core's, so a profile registered here is the one every backend built
afterwards resolves.

Differences from the reference, on purpose:

* The longest matching prefix wins (the reference takes the first in insertion order, so
  ``gpt-4o-mini-2024-07-18`` could resolve to ``gpt-4o``), and a ``vendor/`` prefix is ignored.
* A model nothing is known about gets a permissive ``default`` profile (tools on), not one
  that silently drops tools; its context window and output limit are ``None`` (unknown).
* ``default_temperature`` defaults to ``None``: no temperature is sent unless the caller, or
  a profile that sets one, asks (the reference always sends 0.7, overriding the server's).
* The built-in table is ours (more families); ``list_profiles()`` names them.
* A profile never drops what the caller asked for: tools are sent even with a profile that
  says ``supports_tools=False`` (the server says no, as an error, if it cannot).
* ``get_profile()`` and ``backend.profile`` return a copy: change a profile with
  ``register_profile()``, not by assigning to a returned one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from . import _native


@dataclass
class ModelProfile:
    """What is known about a model family.

    Attributes:
        name: The profile's name, also the model-name prefix it matches.
        provider: Who makes or serves the model (``openai``, ``meta``, ``qwen``, ...).
        context_window: Context window in tokens, when known.
        max_output_tokens: Longest answer in tokens, when known.
        supports_tools: Calls tools.
        supports_vision: Reads images.
        supports_streaming: Streams.
        default_temperature: A temperature to send when the caller sets none; ``None`` lets
            the server use its own default.
        cost_per_1k_input: USD per 1000 input tokens, when known.
        cost_per_1k_output: USD per 1000 output tokens, when known.
        extra: Anything else.
        aliases: Other prefixes naming the same family.
        supports_json_schema: Follows a JSON Schema ``response_format``.
        reasoning: Produces reasoning before its answer.
        thinking_tags: Writes its reasoning as ``<think>...</think>`` in the content.
        uses_max_completion_tokens: Needs ``max_completion_tokens`` (OpenAI o-series, gpt-5).
    """

    name: str
    provider: str
    context_window: Optional[int]
    max_output_tokens: Optional[int]
    supports_tools: bool = True
    supports_vision: bool = False
    supports_streaming: bool = True
    default_temperature: Optional[float] = None
    cost_per_1k_input: Optional[float] = None
    cost_per_1k_output: Optional[float] = None
    extra: Dict[str, Any] = field(default_factory=dict)
    aliases: List[str] = field(default_factory=list)
    supports_json_schema: bool = True
    reasoning: bool = False
    thinking_tags: bool = False
    uses_max_completion_tokens: bool = False

    def _fields(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


_FIELDS = {f.name for f in dataclasses.fields(ModelProfile)}


def _profile(fields: Dict[str, Any]) -> ModelProfile:
    return ModelProfile(**{k: v for k, v in fields.items() if k in _FIELDS})


def get_profile(model_name: str) -> ModelProfile:
    """The profile of ``model_name``: exact name or alias, else the longest matching prefix,
    else the permissive ``default`` profile."""
    if not isinstance(model_name, str):
        raise TypeError(f"model_name must be a str, got {type(model_name).__name__}")
    return _profile(_native.profile_fields(model_name))


def register_profile(profile: ModelProfile) -> None:
    """Adds a profile, or replaces the one with the same name."""
    if not isinstance(profile, ModelProfile):
        raise TypeError(f"profile must be a ModelProfile, got {type(profile).__name__}")
    _native.register_profile_fields(profile._fields())


def list_profiles() -> List[str]:
    """The names of every registered profile, built-in ones first."""
    return [f["name"] for f in _native.profile_names()]


def get_profiles_by_provider(provider: str) -> List[ModelProfile]:
    """The registered profiles of one provider (case-insensitive)."""
    if not isinstance(provider, str):
        raise TypeError(f"provider must be a str, got {type(provider).__name__}")
    wanted = provider.lower()
    return [_profile(f) for f in _native.profile_names() if str(f["provider"]).lower() == wanted]
