"""A typed tool-call loop: the model asks for tools, we run them and send the results back,
until it answers in text.

Run: ``python examples/tool_loop.py BASE_URL [MODEL]``. The tools are plain typed Python
functions; their JSON Schemas are written next to them.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any, Callable, Dict, List, Optional

from mamba_backends import ModelBackend, ModelBackendError, OpenAICompatibleBackend

Message = Dict[str, Any]
Tool = Callable[[Dict[str, Any]], str]


def get_weather(args: Dict[str, Any]) -> str:
    """The weather of ``args["city"]`` (a fixed answer for the example)."""
    city = str(args.get("city", "nowhere"))
    return json.dumps({"city": city, "temperature_c": 18, "sky": "sunny"})


def add(args: Dict[str, Any]) -> str:
    """``args["a"] + args["b"]``."""
    return str(float(args["a"]) + float(args["b"]))


TOOLS: Dict[str, Tool] = {"get_weather": get_weather, "add": add}

SCHEMAS: List[Dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The current weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Adds two numbers",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                "required": ["a", "b"],
            },
        },
    },
]


def run_tool(call: Dict[str, Any]) -> str:
    """Runs one OpenAI-shaped tool call; a bad call becomes an error text for the model."""
    function: Dict[str, Any] = call["function"]
    tool = TOOLS.get(str(function["name"]))
    if tool is None:
        return json.dumps({"error": f"no tool named {function['name']!r}"})
    try:
        args = json.loads(function.get("arguments") or "{}")
    except json.JSONDecodeError as e:
        return json.dumps({"error": f"the arguments are not JSON: {e}"})
    if not isinstance(args, dict):
        return json.dumps({"error": "the arguments must be a JSON object"})
    return tool(args)


async def tool_loop(backend: ModelBackend, question: str, *, max_rounds: int = 5) -> str:
    """Asks ``question``, running the tools the model calls, and returns its final answer."""
    messages: List[Message] = [
        {"role": "system", "content": "Use the tools when they help."},
        {"role": "user", "content": question},
    ]
    for _ in range(max_rounds):
        response = await backend.complete(messages, tools=SCHEMAS)
        if not response.tool_calls:
            return response.content
        messages.append({"role": "assistant", "content": response.content or None, "tool_calls": response.tool_calls})
        for call in response.tool_calls:
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": run_tool(call)})
    raise RuntimeError(f"no answer after {max_rounds} rounds of tool calls")


async def amain(base_url: str, model: str) -> str:
    async with OpenAICompatibleBackend(model=model, base_url=base_url) as backend:
        return await tool_loop(backend, "What is the weather in Paris?")


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: tool_loop.py BASE_URL [MODEL]", file=sys.stderr)
        return 2
    try:
        print(asyncio.run(amain(args[0], args[1] if len(args) > 1 else "my-model")))
    except ModelBackendError as e:
        print(f"the model failed: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
