"""What goes on the wire, seen by the recording server (the `recording` fixture).

Covers: the request line and the body of complete and stream (model, messages, stream,
temperature, max_tokens, tools), ``**kwargs`` merged into the body as the reference does,
message dicts sent as written (content parts, tool messages, assistant tool calls, unknown
keys), no temperature when none is given (the
reference's defect 4: it always sends 0.7), the ``Authorization: Bearer`` header only with a
key, pydantic's SecretStr as the key, extra headers, and that a request the recording server
answers with a canned SSE stream is parsed as written.
"""

from __future__ import annotations

import asyncio

from typing import Any, Dict, List

import pytest
from recording_server import Reply, chunk, completion, text_events

import mamba_backends as mb

USER = [{"role": "user", "content": "Hi"}]


def backend(server: Any, model: str = "rec-model", **kwargs: Any) -> mb.OpenAICompatibleBackend:
    kwargs.setdefault("max_retries", 0)
    return mb.OpenAICompatibleBackend(model, base_url=server.base_url, **kwargs)


async def test_complete_request_line_and_body(recording):
    recording.set(Reply.json(completion("hello")))
    b = backend(recording)
    r = await b.complete(USER, temperature=0.3, max_tokens=17, tools=[TOOL])
    assert r.content == "hello"
    req = recording.last()
    assert (req.method, req.path) == ("POST", "/v1/chat/completions")
    assert req.headers["content-type"].startswith("application/json")
    body = req.json
    assert body["model"] == "rec-model"
    assert body["messages"] == USER
    assert body.get("stream", False) is False
    assert body["temperature"] == 0.3
    assert body.get("max_tokens", body.get("max_completion_tokens")) == 17
    assert body["tools"] == [TOOL]


async def test_stream_body_asks_for_a_stream(recording):
    recording.set(Reply.sse(text_events(["a", "b"])))
    b = backend(recording)
    chunks = [c async for c in b.stream(USER, max_tokens=5)]
    assert "".join(c.content for c in chunks) == "ab"
    assert chunks[-1].is_final
    body = recording.last().json
    assert body["stream"] is True
    assert body["messages"] == USER
    assert body.get("max_tokens", body.get("max_completion_tokens")) == 5


async def test_a_stream_sends_nothing_until_iterated(recording):
    b = backend(recording)
    stream = b.stream(USER)
    del stream
    await asyncio.sleep(0.1)
    assert recording.total_connections == 0
    stream = b.stream(USER)
    recording.set(Reply.sse(text_events(["x"])))
    assert [c.content async for c in stream][1] == "x"
    assert len(recording.requests) == 1


async def test_no_temperature_when_none_given(recording):
    """The reference sends its profile's 0.7 when the caller gives none (SEED.md defect 4)."""
    b = backend(recording)
    await b.complete(USER)
    assert "temperature" not in recording.last().json
    recording.push(Reply.sse(text_events(["x"])))
    [c async for c in b.stream(USER)]
    assert "temperature" not in recording.last().json
    await b.complete(USER, temperature=0)
    assert recording.last().json["temperature"] == 0


async def test_kwargs_merged_into_the_body(recording):
    b = backend(recording)
    await b.complete(
        USER,
        top_p=0.5,
        user="u-1",
        seed=7,
        response_format={"type": "json_object"},
        stop=["END"],
        logit_bias={"50256": -100},
        metadata={"nested": {"list": [1, 2.5, None, True]}},
    )
    body = recording.last().json
    assert body["top_p"] == 0.5
    assert body["user"] == "u-1"
    assert body["seed"] == 7
    assert body["response_format"] == {"type": "json_object"}
    assert body["stop"] == ["END"]
    assert body["logit_bias"] == {"50256": -100}
    assert body["metadata"] == {"nested": {"list": [1, 2.5, None, True]}}
    recording.set(Reply.sse(text_events(["x"])))
    [c async for c in b.stream(USER, top_p=0.25, custom_field="kept")]
    body = recording.last().json
    assert body["top_p"] == 0.25 and body["custom_field"] == "kept"


TOOL: Dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}

HISTORY: List[Dict[str, Any]] = [
    {"role": "system", "content": "You are terse."},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in this image?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        ],
    },
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
    {"role": "assistant", "content": "It is 18C."},
    {"role": "user", "content": "Thanks"},
]


def _same_message(sent: Dict[str, Any], written: Dict[str, Any]) -> None:
    """``sent`` carries every key of ``written`` with its value (``content: None`` may be left out)."""
    for key, value in written.items():
        if key == "content" and value is None:
            assert sent.get("content") in (None, ""), sent
            continue
        assert sent.get(key) == value, (key, sent, written)


async def test_messages_sent_as_written(recording):
    b = backend(recording)
    await b.complete(HISTORY, tools=[TOOL])
    sent = recording.last().json["messages"]
    assert len(sent) == len(HISTORY)
    for s, w in zip(sent, HISTORY):
        _same_message(s, w)


async def test_unknown_message_keys_kept(recording):
    b = backend(recording)
    messages = [
        {"role": "user", "content": "Hi", "name": "bob", "x_trace": {"id": 7}},
        {"role": "assistant", "content": "Hello", "cache_control": {"type": "ephemeral"}},
        {"role": "user", "content": "again"},
    ]
    await b.complete(messages)
    assert recording.last().json["messages"] == messages


async def test_authorization_only_with_a_key(recording):
    await backend(recording).complete(USER)
    assert "authorization" not in recording.last().headers
    await backend(recording, api_key="").complete(USER)
    assert "authorization" not in recording.last().headers
    await backend(recording, api_key="sk-wire-KEY-0001").complete(USER)
    assert recording.last().headers["authorization"] == "Bearer sk-wire-KEY-0001"


async def test_secretstr_key(recording):
    pydantic = pytest.importorskip("pydantic")
    secret = pydantic.SecretStr("sk-secretstr-KEY-0002")
    b = backend(recording, api_key=secret)
    await b.complete(USER)
    assert recording.last().headers["authorization"] == "Bearer sk-secretstr-KEY-0002"
    assert "sk-secretstr-KEY-0002" not in repr(b)


async def test_extra_headers(recording):
    await backend(recording, headers={"X-Trace": "abc"}).complete(USER)
    assert recording.last().headers["x-trace"] == "abc"


async def test_health_check_and_list_models_requests(recording):
    recording.set(Reply.json({"object": "list", "data": [{"id": "m1", "object": "model"}, {"id": "m2", "object": "model"}]}))
    b = backend(recording, api_key="sk-wire-KEY-0003")
    assert await b.list_models() == ["m1", "m2"]
    req = recording.last()
    assert (req.method, req.path) == ("GET", "/v1/models")
    assert req.headers["authorization"] == "Bearer sk-wire-KEY-0003"
    assert await b.health_check() is True


async def test_embed_request(recording):
    recording.set(
        Reply.json(
            {
                "object": "list",
                "data": [{"object": "embedding", "index": 1, "embedding": [0.5, 0.25]}, {"object": "embedding", "index": 0, "embedding": [1.0, 0.0]}],
                "model": "emb",
                "usage": {"prompt_tokens": 2, "total_tokens": 2},
            }
        )
    )
    b = backend(recording, model="emb")
    # Answered out of order: returned in input order.
    assert await b.embed(["a", "b"], dimensions=2) == [[1.0, 0.0], [0.5, 0.25]]
    req = recording.last()
    assert (req.method, req.path) == ("POST", "/v1/embeddings")
    assert req.json["input"] == ["a", "b"]
    assert req.json["model"] == "emb"
    assert req.json["dimensions"] == 2
    recording.set(Reply.json({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.0, 1.0]}], "model": "other-embedder"}))
    assert await b.embed("c", model="other-embedder") == [[0.0, 1.0]]
    assert recording.last().json["model"] == "other-embedder"
    assert recording.last().json["input"] in (["c"], "c")


async def test_canned_stream_with_usage_and_tool_deltas(recording):
    events = [
        chunk({"role": "assistant", "content": None, "tool_calls": [{"index": 0, "id": "c9", "type": "function", "function": {"name": "f", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
        chunk({}, "tool_calls"),
        {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "rec-model", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}},
    ]
    recording.set(Reply.sse(events))
    chunks = [c async for c in backend(recording).stream(USER, tools=[TOOL])]
    args = "".join(d["function"].get("arguments", "") for c in chunks for d in (c.tool_calls or []))
    assert args == '{"a":1}'
    assert chunks[-1].is_final
    assert chunks[-1].usage == {"input_tokens": 9, "output_tokens": 4, "total_tokens": 13}
    assert chunks[-1].assembled_tool_calls == [{"id": "c9", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}]


# -- SSE framing the reference got wrong (SEED.md defect 8) ---------------------------------


async def test_sse_framing_variants(recording):
    """``data:`` without a space, an event split over several ``data:`` lines, comments,
    ``event:``/``id:`` fields and CRLF line ends are all read."""
    import json as _json

    first = _json.dumps(chunk({"role": "assistant", "content": "He"}))
    second = _json.dumps(chunk({"content": "llo"}), indent=1)  # a multi-line event
    raw = (
        ": a comment line\n\n"
        f"data:{first}\n\n"
        "event: message\nid: 2\n" + "".join(f"data: {line}\n" for line in second.splitlines()) + "\n"
        f"data: {_json.dumps(chunk({'content': ' world'}))}\r\n\r\n"
        f"data: {_json.dumps(chunk({}, 'stop'))}\n\n"
        "data: [DONE]\n\n"
    )
    recording.set(Reply(raw_stream=raw))
    chunks = [c async for c in backend(recording).stream(USER)]
    assert "".join(c.content for c in chunks) == "Hello world"
    assert chunks[-1].is_final


async def test_stream_error_body_is_read(recording):
    """A streaming request refused with an error body keeps the server's message (the
    reference parsed the unread body and lost it: SEED.md defect 5)."""
    recording.set(Reply.json({"error": {"message": "an internal failure happened here", "type": "server_error"}}, status=500))
    with pytest.raises(mb.ServerError) as info:
        [c async for c in backend(recording).stream(USER)]
    assert "an internal failure happened here" in str(info.value)
    recording.set(Reply.json({"error": "model 'x' not found"}, status=404))
    with pytest.raises(mb.ModelNotFoundError) as info2:
        [c async for c in backend(recording).stream(USER)]
    assert "model 'x' not found" in str(info2.value)


# -- retries (SEED.md defect 9: the reference never retried) --------------------------------


async def test_retries_a_rate_limit_then_answers(recording):
    recording.push(Reply.json({"error": {"message": "slow down", "type": "rate_limit"}}, status=429, headers={"Retry-After": "0"}))
    recording.set(Reply.json(completion("after the retry")))
    b = mb.OpenAICompatibleBackend("rec-model", base_url=recording.base_url)  # default: 2 retries
    assert (await b.complete(USER)).content == "after the retry"
    assert len(recording.requests) == 2
    assert recording.requests[0].json == recording.requests[1].json


async def test_retries_server_errors_up_to_max_retries(recording):
    failing = Reply.json({"error": {"message": "boom", "type": "server_error"}}, status=500, headers={"Retry-After": "0"})
    recording.push(failing, failing)
    recording.set(Reply.json(completion("third time")))
    b = backend(recording, max_retries=2)
    assert (await b.complete(USER)).content == "third time"
    assert len(recording.requests) == 3
    recording.push(failing, failing)
    with pytest.raises(mb.ServerError):
        await backend(recording, max_retries=1).complete(USER)
    assert len(recording.requests) == 5


async def test_no_retry_with_max_retries_zero_or_a_client_error(recording):
    recording.set(Reply.json({"error": {"message": "boom", "type": "server_error"}}, status=500))
    with pytest.raises(mb.ServerError):
        await backend(recording, max_retries=0).complete(USER)
    assert len(recording.requests) == 1
    recording.set(Reply.json({"error": {"message": "bad field", "type": "invalid_request_error"}}, status=400))
    with pytest.raises(mb.InvalidRequestError):
        await mb.OpenAICompatibleBackend("rec-model", base_url=recording.base_url, max_retries=3).complete(USER)
    assert len(recording.requests) == 2


# -- options beyond the reference -------------------------------------------------------------


async def test_include_usage_option(recording):
    recording.set(Reply.sse(text_events(["x"])))
    [c async for c in backend(recording, include_usage=True).stream(USER)]
    assert recording.last().json.get("stream_options") == {"include_usage": True}
    [c async for c in backend(recording, include_usage=False).stream(USER)]
    assert "stream_options" not in recording.last().json


async def test_responses_api(mock):
    server = mock()
    b = mb.OpenAICompatibleBackend("mock-model", base_url=server.base_url, api="responses", max_retries=0)
    r = await b.complete([{"role": "user", "content": "through responses"}])
    assert r.content == "through responses"
    text = "".join([c.content async for c in b.stream([{"role": "user", "content": "streamed too"}])])
    assert text == "streamed too"


async def test_responses_api_path(recording):
    recording.set(
        Reply.json(
            {
                "id": "resp_1",
                "object": "response",
                "model": "rec-model",
                "status": "completed",
                "output": [{"type": "message", "id": "m1", "role": "assistant", "status": "completed", "content": [{"type": "output_text", "text": "via responses", "annotations": []}]}],
                "usage": {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5},
            }
        )
    )
    b = backend(recording, api="responses")
    r = await b.complete(USER, max_tokens=9)
    assert r.content == "via responses"
    req = recording.last()
    assert req.path == "/v1/responses"
    assert req.json["model"] == "rec-model"
    assert req.json.get("max_output_tokens") == 9


async def test_total_timeout_ends_a_slow_stream(recording):
    recording.set(Reply.sse(text_events([f"w{i} " for i in range(50)]), event_delay=0.1))
    b = backend(recording, total_timeout=0.5)
    with pytest.raises(mb.TimeoutError):
        [c async for c in b.stream(USER)]


@pytest.mark.parametrize("status, healthy", [(200, True), (401, True), (403, True), (404, False), (500, False), (503, False)])
async def test_health_check_statuses(recording, status, healthy):
    """As the reference: GET /models answered 200, 401 or 403 means reachable."""
    body = {"object": "list", "data": []} if status == 200 else {"error": {"message": "x"}}
    recording.set(Reply.json(body, status=status))
    assert await backend(recording).health_check() is healthy
    assert recording.last().path == "/v1/models"


async def test_list_models_and_embed_errors_are_typed(recording):
    recording.set(Reply.json({"error": {"message": "bad key", "type": "invalid_request_error"}}, status=401))
    b = backend(recording, api_key="sk-wire-KEY-0004")
    with pytest.raises(mb.AuthenticationError):
        await b.list_models()
    with pytest.raises(mb.AuthenticationError):
        await b.embed(["a"])
    recording.set(Reply.json("not json"))
    with pytest.raises(mb.DecodeError):
        await b.list_models()
