"""The answer types: the reference's dataclasses, with our fields after its own.

`ModelResponse` and `StreamChunk` have the reference's field names, order, types and
defaults, so positional construction, equality, repr and `dataclasses.asdict` behave as in
`mamba_agents.backends.base`. The fields we add come last, with defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional


@dataclass
class ModelResponse:
    """A whole answer.

    Attributes:
        content: The text; ``""`` when the model only called tools (the reference gives
            ``None`` there).
        tool_calls: The tool calls, complete, OpenAI-shaped
            (``{"id", "type": "function", "function": {"name", "arguments"}}``), or ``None``.
        usage: ``{"input_tokens", "output_tokens", "total_tokens"}``, when the server counted.
        model: The model that answered, as the server names it.
        finish_reason: Why it stopped (``"stop"``, ``"length"``, ``"tool_calls"``, ...).
        reasoning: The model's reasoning, when the server sent it apart from the answer
            (``reasoning_content``, ``reasoning``, or a leading ``<think>`` block).
    """

    content: str
    tool_calls: Optional[List[Dict[str, Any]]] = None
    usage: Optional[Dict[str, int]] = None
    model: Optional[str] = None
    finish_reason: Optional[str] = None
    reasoning: Optional[str] = None


@dataclass
class StreamChunk:
    """One piece of a streamed answer.

    A stream yields one chunk per server event that carried a choice, then a last chunk with
    ``is_final`` set (as the reference yields for ``data: [DONE]``), which carries the usage
    and the assembled tool calls. The chunk that says why the model stopped is final too, as
    in the reference, and carries the assembled tool calls as well; the usage comes only on
    the last chunk (servers send it after the finish), so read a stream to its end for it.

    Attributes:
        content: New text (``""`` when none).
        tool_calls: The tool-call pieces of this event, each with its ``index``; the
            ``function.arguments`` of the pieces of one index concatenate to the whole
            arguments, each piece once.
        is_final: True on the chunk with a finish reason and on the last chunk.
        usage: Token counts, on the last chunk when the server sent them.
        reasoning: New reasoning text (``""`` when none).
        finish_reason: Why the model stopped, on the chunk that says it and the last one.
        assembled_tool_calls: On the finish chunk and the last one: the whole tool calls,
            OpenAI-shaped.
    """

    content: str = ""
    tool_calls: Optional[List[Dict[str, Any]]] = None
    is_final: bool = False
    usage: Optional[Dict[str, int]] = None
    reasoning: str = ""
    finish_reason: Optional[str] = None
    assembled_tool_calls: Optional[List[Dict[str, Any]]] = None
