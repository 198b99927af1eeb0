"""The package against the live peers (`scripts/peers/up.sh`), through the `live` fixture.

Mirrors crates/mamba-backends/tests/integration/live.rs for the Python API:

* llama.cpp (llama-cpp-python serving SmolLM2-135M-Instruct as ``smollm2-135m-instruct``,
  ``MAMBA_LIVE_LLAMACPP_URL``): a whole answer with usage, the same prompt streamed at
  temperature 0 giving the same text, and its health.
* the keyed llama.cpp (``MAMBA_LIVE_LLAMACPP_KEY_URL``, key ``MAMBA_LIVE_LLAMACPP_KEY``): no
  key and a wrong key are AuthenticationError (401) naming no key; the right key answers.
* the embedding llama.cpp (``MAMBA_LIVE_LLAMACPP_EMBED_URL``): one finite 576-value vector per
  text, similar texts closer; as a float32 array with ``numpy=True``.
* LiteLLM (``MAMBA_LIVE_LITELLM_URL``, key ``MAMBA_LIVE_LITELLM_KEY``): complete and stream with
  usage through its ``smollm2`` route, its ``mock-tools`` model's tool call, and a 401 without
  the key.
* Prism (``MAMBA_LIVE_PRISM_URL``, no ``/v1``) validating requests against the official OpenAI
  spec: complete and stream with tools, kwargs and a tool-call history are accepted (its
  answer is the spec's example, model ``"string"``), and a body the spec rejects is a 422.

A missing peer fails its test; ``MAMBA_SKIP_PEERS=1`` skips them.
"""

from __future__ import annotations

import math
import os
from typing import Any, List

import pytest

import mamba_backends as mb

LLAMA_MODEL = "smollm2-135m-instruct"
CAPITAL = [{"role": "user", "content": "What is the capital of France?"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "City name, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location"],
        },
    },
}


def peer(url: str, model: str, preset: str, api_key: Any = None, **kwargs: Any) -> mb.OpenAICompatibleBackend:
    """A peer's backend: a long timeout (a small model on CPU), no retries."""
    return mb.OpenAICompatibleBackend(model, base_url=url, api_key=api_key, preset=preset, timeout=120, max_retries=0, **kwargs)


def cosine(a: List[float], b: List[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


async def test_llamacpp_complete_stream_health(live):
    b = peer(live("LLAMACPP"), LLAMA_MODEL, "llama-cpp")
    r = await b.complete(CAPITAL, max_tokens=24, temperature=0.0)
    assert r.content
    assert r.usage is not None and r.usage["output_tokens"] > 0
    assert r.finish_reason in ("stop", "length")
    chunks = [c async for c in b.stream(CAPITAL, max_tokens=24, temperature=0.0)]
    assert chunks[-1].is_final
    assert sum(1 for c in chunks if c.finish_reason is not None) >= 1
    text = "".join(c.content for c in chunks)
    # Same seedless temperature-0 prompt: the streamed text equals the whole answer.
    assert text == r.content
    assert await b.health_check() is True
    await b.close()


async def test_llamacpp_wrong_key_is_401(live):
    url = live("LLAMACPP_KEY")
    key = os.environ.get("MAMBA_LIVE_LLAMACPP_KEY", "")
    for given in (None, "sk-wrong-pytest-key-77"):
        with pytest.raises(mb.AuthenticationError) as info:
            await peer(url, LLAMA_MODEL, "llama-cpp", api_key=given).complete(CAPITAL, max_tokens=4)
        e = info.value
        assert e.status_code == 401 and e.kind == "authentication"
        assert "sk-wrong-pytest-key-77" not in str(e) + repr(e) + repr(vars(e))
    right = peer(url, LLAMA_MODEL, "llama-cpp", api_key=key)
    assert (await right.complete(CAPITAL, max_tokens=4)).finish_reason is not None
    assert await right.health_check() is True


async def test_llamacpp_embeddings(live):
    b = peer(live("LLAMACPP_EMBED"), LLAMA_MODEL, "llama-cpp")
    texts = [
        "The capital of France is Paris.",
        "Paris is the capital of France.",
        "Rust has no garbage collector.",
        "a",
        "b",
    ]
    vectors = await b.embed(texts)
    assert len(vectors) == 5
    assert all(len(v) == 576 and all(math.isfinite(x) for x in v) for v in vectors)
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2])
    np = pytest.importorskip("numpy")
    array = await b.embed(texts[:2], numpy=True)
    assert array.dtype == np.float32 and array.shape == (2, 576)


async def test_litellm_complete_stream_tools(live):
    url = live("LITELLM")
    key = os.environ.get("MAMBA_LIVE_LITELLM_KEY", "")
    b = peer(url, "smollm2", "litellm", api_key=key)
    r = await b.complete(CAPITAL, max_tokens=20, temperature=0.0)
    assert r.content
    assert r.usage is not None and r.usage["total_tokens"] > 0
    chunks = [c async for c in b.stream(CAPITAL, max_tokens=20, temperature=0.0)]
    assert "".join(c.content for c in chunks)
    assert chunks[-1].is_final
    # LiteLLM synthesises usage for include_usage.
    assert chunks[-1].usage is not None and chunks[-1].usage["total_tokens"] > 0
    tools = peer(url, "mock-tools", "litellm", api_key=key)
    t = await tools.complete(CAPITAL, tools=[WEATHER_TOOL])
    assert t.tool_calls == [
        {"id": "call_mock_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'}}
    ]
    assert t.finish_reason == "tool_calls"
    assert await b.health_check() is True
    with pytest.raises(mb.AuthenticationError):
        await peer(url, "smollm2", "litellm").complete(CAPITAL)


async def test_prism_accepts_the_requests(live):
    # The chat-completions API: the OpenAI preset alone would pick the Responses API.
    b = peer(live("PRISM"), "gpt-4o", "openai", api_key="sk-prism", api="chat")
    history = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'}}],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "assistant", "content": "It is 18C."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this image?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            ],
        },
    ]
    for messages in (CAPITAL, history):
        for kwargs in ({}, {"temperature": 0.5, "max_tokens": 50, "top_p": 0.9, "seed": 7}, {"tools": [WEATHER_TOOL], "tool_choice": "auto"}):
            r = await b.complete(messages, **kwargs)
            assert r.model == "string", kwargs
            text = "".join([c.content async for c in b.stream(messages, **kwargs)])
            assert text == r.content, kwargs
    # The check works: a request the spec rejects is a 422 naming the field.
    with pytest.raises(mb.InvalidRequestError) as info:
        await b.complete(CAPITAL, top_p="high")
    assert info.value.status_code == 422
    assert "top_p" in str(info.value)
