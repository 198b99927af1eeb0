"""Every public method of `mamba_backends` against mamba-mock (the `mock` fixture).

Covers: complete; stream (chunks in order, the finish chunk and the last chunk final as in
the reference, usage on the last chunk, `assembled_tool_calls`); tool calls whole and
streamed (each delta carries its ``index``; the argument pieces of one index concatenate to
the whole arguments); reasoning whole and streamed; health_check (True on the mock, False on
a closed port); list_models; embed (lists, and a float32 ndarray with ``numpy=True``); close
and ``async with``; the name/model/profile properties and repr; the factories' defaults;
presets(); BackendPool failover from a dead endpoint to the mock; and the profile registry
(get_profile with the longest prefix winning, register_profile, list_profiles,
get_profiles_by_provider).
"""

from __future__ import annotations

import json
import socket
from typing import Any, Dict, List

import pytest

import mamba_backends as mb

USER = [{"role": "user", "content": "Hello there"}]


def closed_port_url() -> str:
    """A base URL on 127.0.0.1 where nothing listens."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/v1"


def backend(server: Any, model: str = "mock-model", **kwargs: Any) -> mb.OpenAICompatibleBackend:
    kwargs.setdefault("max_retries", 0)
    return mb.OpenAICompatibleBackend(model, base_url=server.base_url, **kwargs)


async def collect(stream: Any) -> List[mb.StreamChunk]:
    return [c async for c in stream]


# -- complete -------------------------------------------------------------------------------


async def test_complete_text_usage_model_finish(mock):
    b = backend(mock({"rules": [{"reply": {"text": "Paris.", "usage": {"prompt_tokens": 11, "completion_tokens": 2}}}]}))
    r = await b.complete(USER)
    assert isinstance(r, mb.ModelResponse)
    assert r.content == "Paris."
    assert r.usage == {"input_tokens": 11, "output_tokens": 2, "total_tokens": 13}
    assert r.model == "mock-model"
    assert r.finish_reason == "stop"
    assert r.tool_calls is None
    assert r.reasoning is None
    await b.close()


async def test_complete_model_named_by_server(mock):
    b = backend(mock({"rules": [{"reply": {"text": "x", "model": "served-name"}}]}))
    assert (await b.complete(USER)).model == "served-name"


async def test_complete_finish_reason_length(mock):
    b = backend(mock({"rules": [{"reply": {"text": "cut", "finish_reason": "length"}}]}))
    assert (await b.complete(USER, max_tokens=1)).finish_reason == "length"


async def test_complete_accepts_tuple_of_messages(mock):
    b = backend(mock())
    r = await b.complete(({"role": "system", "content": "be brief"}, {"role": "user", "content": "echo me"}))
    assert r.content == "echo me"


# -- stream ---------------------------------------------------------------------------------


async def test_stream_chunks_final_and_usage(mock):
    b = backend(mock({"rules": [{"reply": {"text": "one two three", "usage": {"prompt_tokens": 4, "completion_tokens": 3}}}]}))
    chunks = await collect(b.stream(USER))
    assert all(isinstance(c, mb.StreamChunk) for c in chunks)
    assert "".join(c.content for c in chunks) == "one two three"
    # Word by word: more than one chunk with text.
    assert sum(1 for c in chunks if c.content) >= 3
    # As the reference: the chunk with the finish reason is final, and so is the last one.
    finish = [c for c in chunks if c.finish_reason is not None]
    assert finish and all(c.is_final for c in finish)
    assert finish[0].finish_reason == "stop"
    last = chunks[-1]
    assert last.is_final
    assert last.usage == {"input_tokens": 4, "output_tokens": 3, "total_tokens": 7}
    assert last.assembled_tool_calls is None
    # Nothing before the finish chunk is final.
    first_final = next(i for i, c in enumerate(chunks) if c.is_final)
    assert all(c.content == "" for c in chunks[first_final + 1 :])
    await b.close()


async def test_stream_equals_complete(mock):
    b = backend(mock())
    whole = await b.complete([{"role": "user", "content": "the same words both ways"}])
    text = "".join([c.content async for c in b.stream([{"role": "user", "content": "the same words both ways"}])])
    assert text == whole.content == "the same words both ways"


async def test_stream_is_an_async_iterator_with_aclose(mock):
    b = backend(mock({"rules": [{"reply": {"text": "a b c d e f"}}]}))
    stream = b.stream(USER)
    assert isinstance(stream, mb.ChunkStream)
    assert stream.__aiter__() is stream
    first = await stream.__anext__()
    assert isinstance(first, mb.StreamChunk)
    await stream.aclose()
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()
    async with b.stream(USER) as s:
        assert [c.content async for c in s]


# -- tool calls -----------------------------------------------------------------------------

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}

TWO_CALLS = {
    "rules": [
        {
            "reply": {
                "tool_calls": [
                    {"name": "get_weather", "arguments": {"city": "Paris", "note": "a long argument to split in pieces"}},
                    {"id": "call_custom", "name": "get_time", "arguments": {"zone": "Europe/Paris"}},
                ]
            }
        }
    ]
}


async def test_tool_calls_whole(mock):
    b = backend(mock(TWO_CALLS))
    r = await b.complete(USER, tools=[WEATHER_TOOL])
    assert r.content == ""
    assert r.finish_reason == "tool_calls"
    assert r.tool_calls == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris", "note": "a long argument to split in pieces"}, separators=(",", ":"))},
        },
        {"id": "call_custom", "type": "function", "function": {"name": "get_time", "arguments": '{"zone":"Europe/Paris"}'}},
    ]
    assert json.loads(r.tool_calls[0]["function"]["arguments"])["city"] == "Paris"


async def test_tool_calls_streamed(mock):
    b = backend(mock(TWO_CALLS))
    chunks = await collect(b.stream(USER, tools=[WEATHER_TOOL]))
    deltas: List[Dict[str, Any]] = [d for c in chunks for d in (c.tool_calls or [])]
    assert deltas, "no tool-call deltas in the stream"
    assert all("index" in d for d in deltas)
    args: Dict[int, str] = {}
    names: Dict[int, str] = {}
    ids: Dict[int, str] = {}
    for d in deltas:
        args[d["index"]] = args.get(d["index"], "") + d["function"].get("arguments", "")
        if "name" in d["function"]:
            names[d["index"]] = d["function"]["name"]
        if "id" in d:
            ids[d["index"]] = d["id"]
            assert d["type"] == "function"
    assert set(args) == {0, 1}
    # The arguments were streamed in several pieces, and each piece counts once.
    assert sum(1 for d in deltas if d["index"] == 0) > 2
    assert json.loads(args[0]) == {"city": "Paris", "note": "a long argument to split in pieces"}
    assert json.loads(args[1]) == {"zone": "Europe/Paris"}
    assert names == {0: "get_weather", 1: "get_time"}
    assert ids == {0: "call_1", 1: "call_custom"}
    last = chunks[-1]
    assert last.is_final
    assert last.assembled_tool_calls == [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": args[0]}},
        {"id": "call_custom", "type": "function", "function": {"name": "get_time", "arguments": args[1]}},
    ]
    assert any(c.finish_reason == "tool_calls" and c.is_final for c in chunks)
    # Same as the whole answer.
    whole = await b.complete(USER, tools=[WEATHER_TOOL])
    assert whole.tool_calls == last.assembled_tool_calls


# -- reasoning ------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
async def test_reasoning_whole_and_streamed(mock, field):
    script = {"rules": [{"reply": {"text": "42", "reasoning": "six times seven", "reasoning_field": field}}]}
    b = backend(mock(script))
    r = await b.complete(USER)
    assert (r.content, r.reasoning) == ("42", "six times seven")
    chunks = await collect(b.stream(USER))
    assert "".join(c.reasoning for c in chunks) == "six times seven"
    assert "".join(c.content for c in chunks) == "42"


# -- health, models, embeddings --------------------------------------------------------------


async def test_health_check(mock):
    b = backend(mock())
    assert await b.health_check() is True
    dead = mb.OpenAICompatibleBackend("m", base_url=closed_port_url(), max_retries=0, timeout=2)
    assert await dead.health_check() is False


async def test_list_models(mock):
    b = backend(mock({"models": ["alpha", "beta"]}))
    assert await b.list_models() == ["alpha", "beta"]
    assert await backend(mock()).list_models() == ["mock-model"]


async def test_embed_lists(mock):
    b = backend(mock(), model="embed-model")
    vectors = await b.embed(["first text", "second text", "first text"])
    assert isinstance(vectors, list) and len(vectors) == 3
    assert all(isinstance(v, list) and v and all(isinstance(x, float) for x in v) for v in vectors)
    assert len({len(v) for v in vectors}) == 1
    assert vectors[0] == vectors[2] and vectors[0] != vectors[1]
    one = await b.embed("first text")
    assert one == [vectors[0]]
    short = await b.embed(["first text"], dimensions=8)
    assert len(short[0]) == 8
    assert len(await b.embed(("a", "b"), model="other-embedder")) == 2


async def test_embed_numpy(mock):
    np = pytest.importorskip("numpy")
    b = backend(mock())
    array = await b.embed(["a", "b"], numpy=True)
    assert isinstance(array, np.ndarray)
    assert array.dtype == np.float32
    assert array.shape[0] == 2 and array.shape[1] > 0
    plain = await b.embed(["a", "b"])
    assert np.allclose(array, np.asarray(plain, dtype=np.float32))


# -- lifecycle and properties ------------------------------------------------------------------


async def test_close_and_async_with(mock):
    server = mock()
    async with backend(server) as b:
        assert isinstance(b, mb.OpenAICompatibleBackend)
        assert (await b.complete(USER)).content == "Hello there"
    # Closing twice is fine; a closed backend refuses requests, as the reference's closed client.
    await b.close()
    await b.close()
    with pytest.raises(RuntimeError, match="closed"):
        await b.complete(USER)
    with pytest.raises(RuntimeError, match="closed"):
        b.stream(USER)


async def test_close_closes_idle_connections(recording):
    from recording_server import Reply

    recording.set(Reply.json({"choices": [{"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}))
    b = mb.OpenAICompatibleBackend("m", base_url=recording.base_url, max_retries=0)
    assert (await b.complete(USER)).content == "ok"
    assert recording.open_connections == 1
    await b.close()
    assert recording.wait_until(lambda: recording.open_connections == 0, 2), "close() left the connection open"


async def test_properties_and_repr(mock):
    server = mock()
    b = backend(server, model="gpt-4o-mini-2024-07-18", api_key="sk-props-SECRET-123")
    assert isinstance(b, mb.ModelBackend)
    assert b.name == "openai_compatible"
    assert b.model == "gpt-4o-mini-2024-07-18"
    assert isinstance(b.profile, mb.ModelProfile)
    assert b.profile.name == "gpt-4o-mini"
    assert b.profile == mb.get_profile("gpt-4o-mini-2024-07-18")
    text = repr(b)
    assert "gpt-4o-mini-2024-07-18" in text and "127.0.0.1" in text
    assert "sk-props-SECRET-123" not in text + str(b)
    given = mb.ModelProfile(name="mine", provider="me", context_window=1000, max_output_tokens=10)
    assert backend(server, profile=given).profile is given


def test_factories_defaults():
    o = mb.create_ollama_backend("llama3.2")
    assert (o.name, o.model) == ("openai_compatible", "llama3.2")
    assert "localhost:11434" in repr(o)
    v = mb.create_vllm_backend("meta-llama/Llama-3.2-3B-Instruct")
    assert v.model == "meta-llama/Llama-3.2-3B-Instruct"
    assert "localhost:8000" in repr(v)
    lm = mb.create_lmstudio_backend()
    assert lm.model == "local-model"
    assert "localhost:1234" in repr(lm)
    assert isinstance(mb.create_vllm_backend("m", api_key="k"), mb.OpenAICompatibleBackend)
    default = mb.OpenAICompatibleBackend("gpt-4o")
    assert "api.openai.com" in repr(default)


async def test_factory_against_the_mock(mock):
    server = mock()
    o = mb.create_ollama_backend("llama3.2", base_url=server.base_url, max_retries=0)
    assert (await o.complete(USER)).content == "Hello there"


def test_presets():
    table = mb.presets()
    assert isinstance(table, list) and len(table) >= 17
    names = {name for name, _, _ in table}
    assert {"openai", "ollama", "vllm"} <= names
    for name, url, key_required in table:
        assert isinstance(name, str) and isinstance(url, str) and isinstance(key_required, bool)
    by_name = {name: (url, key) for name, url, key in table}
    assert by_name["ollama"] == ("http://localhost:11434/v1", False)
    assert by_name["openai"] == ("https://api.openai.com/v1", True)
    p = mb.OpenAICompatibleBackend("llama3.2", preset="ollama")
    assert "localhost:11434" in repr(p)
    with pytest.raises(ValueError, match="preset"):
        mb.OpenAICompatibleBackend("m", preset="no-such-preset")


# -- pool -----------------------------------------------------------------------------------


async def test_pool_failover(mock):
    server = mock({"rules": [{"reply": {"text": "from the mock"}}]})
    dead = mb.OpenAICompatibleBackend("mock-model", base_url=closed_port_url(), max_retries=0, timeout=2)
    live = backend(server)
    pool = mb.BackendPool([dead, live], failure_threshold=1, cool_down=30)
    assert isinstance(pool, mb.ModelBackend)
    assert pool.name == "pool(openai_compatible)"
    assert pool.model == "mock-model"
    for _ in range(4):
        assert (await pool.complete(USER)).content == "from the mock"
    text = "".join([c.content async for c in pool.stream(USER)])
    assert text == "from the mock"
    assert await pool.health_check() is True
    await pool.close()


async def test_pool_fallbacks(mock):
    server = mock({"rules": [{"reply": {"text": "fallback answered"}}]})
    dead = mb.OpenAICompatibleBackend("mock-model", base_url=closed_port_url(), max_retries=0, timeout=2)
    pool = mb.BackendPool([dead], fallbacks=[backend(server)])
    assert (await pool.complete(USER)).content == "fallback answered"


def test_pool_refuses_non_backends():
    with pytest.raises(TypeError, match="backends"):
        mb.BackendPool("not a list")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"backends\[0\]"):
        mb.BackendPool([object()])  # type: ignore[list-item]


# -- profiles -------------------------------------------------------------------------------


def test_get_profile_longest_prefix_wins():
    p = mb.get_profile("gpt-4o-mini-2024-07-18")
    assert p.name == "gpt-4o-mini"
    assert p.provider == "openai"
    assert mb.get_profile("gpt-4o-2024-08-06").name == "gpt-4o"
    assert mb.get_profile("gpt-4o").name == "gpt-4o"


def test_get_profile_unknown_is_permissive():
    p = mb.get_profile("totally-unknown-model-xyz")
    assert p.name == "default"
    assert p.supports_tools is True
    assert p.default_temperature is None


def test_register_and_list_profiles():
    base = mb.ModelProfile(name="pytest-family", provider="PyTestCorp", context_window=4096, max_output_tokens=512)
    longer = mb.ModelProfile(
        name="pytest-family-large", provider="pytestcorp", context_window=32768, max_output_tokens=2048, supports_vision=True
    )
    mb.register_profile(base)
    mb.register_profile(longer)
    assert mb.get_profile("pytest-family-large-v2").name == "pytest-family-large"
    assert mb.get_profile("pytest-family-large-v2").context_window == 32768
    assert mb.get_profile("pytest-family-small").name == "pytest-family"
    got = mb.get_profile("pytest-family")
    assert got == base
    names = mb.list_profiles()
    assert "pytest-family" in names and "pytest-family-large" in names and "gpt-4o-mini" in names
    # Replacing keeps one entry.
    mb.register_profile(mb.ModelProfile(name="pytest-family", provider="pytestcorp", context_window=8192, max_output_tokens=512))
    assert mb.list_profiles().count("pytest-family") == 1
    assert mb.get_profile("pytest-family").context_window == 8192
    mine = mb.get_profiles_by_provider("PYTESTCORP")
    assert {p.name for p in mine} == {"pytest-family", "pytest-family-large"}
    openai = mb.get_profiles_by_provider("openai")
    assert openai and all(p.provider.lower() == "openai" for p in openai)
    assert "gpt-4o-mini" in {p.name for p in openai}
    assert mb.get_profiles_by_provider("nobody-makes-this") == []


def test_registered_profile_is_used_by_new_backends():
    mb.register_profile(mb.ModelProfile(name="pytest-used", provider="x", context_window=100, max_output_tokens=7))
    b = mb.OpenAICompatibleBackend("pytest-used-1", base_url="http://127.0.0.1:9/v1")
    assert b.profile.name == "pytest-used"
    assert b.profile.max_output_tokens == 7


def test_profile_functions_refuse_wrong_types():
    with pytest.raises(TypeError, match="model_name"):
        mb.get_profile(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="profile"):
        mb.register_profile({"name": "x"})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="provider"):
        mb.get_profiles_by_provider(None)  # type: ignore[arg-type]


# -- the built-in model ------------------------------------------------------------------------


def _local_model_file() -> str:
    import os

    from mamba_backends import _native

    if os.environ.get("MAMBA_SKIP_LOCAL_MODEL") == "1":
        pytest.skip("MAMBA_SKIP_LOCAL_MODEL=1")
    path = os.environ.get("MAMBA_MODEL_FILE") or _native.default_model_file()
    if not path or not os.path.isfile(path):
        pytest.fail("the built-in model is not in the cache: run scripts/fetch-model.sh (or set MAMBA_SKIP_LOCAL_MODEL=1)")
    return str(path)


async def test_local_model():
    path = _local_model_file()
    b = await mb.local(path, context=512)
    assert isinstance(b, mb.LocalBackend) and isinstance(b, mb.ModelBackend)
    assert b.name == "local"
    assert b.model
    r = await b.complete([{"role": "user", "content": "Say hi"}], max_tokens=3, temperature=0)
    assert r.content and r.finish_reason == "length"
    assert r.usage is not None and r.usage["output_tokens"] == 3
    chunks = [c async for c in b.stream([{"role": "user", "content": "Say hi"}], max_tokens=3, temperature=0)]
    assert "".join(c.content for c in chunks) == r.content
    assert chunks[-1].is_final
    await b.close()


async def test_local_missing_file_is_a_configuration_error(tmp_path):
    with pytest.raises(mb.ConfigurationError) as info:
        await mb.local(str(tmp_path / "none.gguf"))
    assert "does not exist" in str(info.value)
