"""The differential test: the same script against ours (`mamba_backends`) and the reference
(mamba-agents 0.1.7's `mamba_agents.backends`, the ``reference`` fixture), both pointed at the
same server: ``mamba-llm mock`` (the ``mock`` fixture) for answers, or the recording server of
``_diff_helpers`` where what goes on the wire, or byte-exact event streams, matter.

On well-formed answers the results are equal on the reference's fields
(``dataclasses.asdict`` restricted to its field names; our extra fields come after them).
Where equality cannot hold by design, the test names the documented difference and asserts
both sides exactly.

On the defects SEED.md lists ("Defects in the original"), each test drives both, asserts ours
is right and asserts the reference's actual wrong behaviour. The record:

  defect                                   | the reference (0.1.7)                          | ours
  -----------------------------------------+------------------------------------------------+------------------------------------------
  1 null content (tool-call answer)        | content is None                                | content == ""
  2 unknown model -> `default` profile     | supports_tools False; `tools` not sent         | permissive default; `tools` sent
  3 first prefix in insertion order wins   | gpt-4o-mini-2024-07-18 -> gpt-4o               | -> gpt-4o-mini (longest prefix)
  4 default temperature 0.7 always sent    | "temperature": 0.7 in every body               | no temperature unless asked
  5a stream error body never read          | httpx.ResponseNotRead (message lost, not ours) | InvalidRequestError with the message
  5b {"error": "text"} body                | AttributeError ('str' has no 'get')            | InvalidRequestError, message "text"
  6 Retry-After as an HTTP date            | ValueError (float conversion)                  | RateLimitError, retry_after ~ seconds left
  7 streamed tool-call fragments raw       | deltas as sent (no index added), no assembly   | deltas with index; assembled on last chunk
  8a `data:` without a space               | nothing at all (not even the final chunk)      | the text, finish, final chunk
  8b multi-line data                       | frame dropped (logged), only the final chunk   | the text
  8c `data: {"error": ...}` frame          | skipped; the stream "succeeds"                 | ServerError with the frame's message
  8d stream ends before [DONE]             | ends silently (no final chunk)                 | StreamError
  8e connection cut mid-body               | ModelBackendError (httpx RemoteProtocolError)  | StreamError (kind "stream")
  9 no retries; one timeout                | one 500 raises; no connect/total timeouts      | retried (2 requests, answer); both timeouts
"""

from __future__ import annotations

import dataclasses
import email.utils
import json
import socket
import time
from typing import Any, Callable, Dict, List, Tuple

import pytest

import mamba_backends as mb
from _diff_helpers import (
    SSE_HEADERS,
    Canned,
    RecordingServer,
    chat_json,
    chunk,
    extra_fields,
    ref_fields,
    ref_names,
    sse,
)

MESSAGES = [{"role": "user", "content": "a b c"}]
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]


async def _collect(backend: Any, messages: Any = None, **kw: Any) -> List[Any]:
    return [c async for c in backend.stream(messages or MESSAGES, **kw)]


async def _both(reference: Any, url: str, call: Callable[[Any], Any], model: str = "mock-model",
                ours: Any = None) -> Tuple[Any, Any]:
    """``call(backend)`` on the reference's backend and ours (with the ``ours`` keyword
    arguments), both on ``url``; each result or the exception raised."""
    out = []
    for lib, kw in ((reference, {}), (mb, ours or {})):
        backend = lib.OpenAICompatibleBackend(model, base_url=url, **kw)
        try:
            out.append(await call(backend))
        except Exception as e:  # the tests assert on it
            out.append(e)
        finally:
            await backend.close()
    return out[0], out[1]


def _ok(*values: Any) -> None:
    for v in values:
        if isinstance(v, BaseException):
            raise AssertionError(f"unexpected {type(v).__name__}: {v}") from v


# ---------------------------------------------------------------------------------------------
# Well-formed answers: equal on the reference's fields.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        {"text": "Hello there, world"},
        {"text": "héllo wörld 🌍 世界 ∑"},
        {"text": "cut short", "finish_reason": "length"},
        {"text": "filtered", "finish_reason": "content_filter"},
        {"text": "with tools", "tool_calls": [{"name": "f", "arguments": {"x": 1}},
                                             {"id": "call_z", "name": "g", "arguments": "{}"}]},
        {"text": "counted", "usage": {"prompt_tokens": 11, "completion_tokens": 22}},
        {"text": "other model", "model": "served-model-v2"},
    ],
    ids=["plain", "unicode", "length", "content_filter", "tool_calls", "usage", "model"],
)
async def test_complete_equal(reference, mock, reply):
    server = mock({"rules": [{"reply": reply}]})
    theirs, ours = await _both(reference, server.base_url, lambda b: b.complete(MESSAGES))
    _ok(theirs, ours)
    assert ref_fields(ours, reference.ModelResponse) == dataclasses.asdict(theirs)
    assert extra_fields(ours, reference.ModelResponse) == {"reasoning": None}
    assert ours.content == reply["text"]


async def test_complete_echo_of_unicode_message_equal(reference, mock):
    """The mock echoes the last user message: unicode goes out and comes back the same."""
    server = mock()
    messages = [{"role": "system", "content": "sé brief"}, {"role": "user", "content": "naïve café 🚀 日本語 \u00e9\n\"q\""}]
    theirs, ours = await _both(reference, server.base_url, lambda b: b.complete(messages))
    _ok(theirs, ours)
    assert ours.content == messages[1]["content"]
    assert ref_fields(ours, reference.ModelResponse) == dataclasses.asdict(theirs)


async def test_health_check_equal(reference, mock):
    server = mock()
    assert await _both(reference, server.base_url, lambda b: b.health_check()) == (True, True)
    with RecordingServer([Canned(status=401, pieces=[b'{"error": {"message": "key"}}'])]) as s:
        assert await _both(reference, s.base_url, lambda b: b.health_check()) == (True, True)
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    assert await _both(reference, closed, lambda b: b.health_check(),
                       ours={"max_retries": 0}) == (False, False)


async def test_complete_usage_absent_equal(reference, mock):
    body = json.loads(chat_json("no usage here", usage=False, model="mock-model"))
    server = mock({"rules": [{"reply": {"body": body}}]})
    theirs, ours = await _both(reference, server.base_url, lambda b: b.complete(MESSAGES))
    _ok(theirs, ours)
    assert theirs.usage is None and ours.usage is None
    assert ref_fields(ours, reference.ModelResponse) == dataclasses.asdict(theirs)


@pytest.mark.parametrize(
    "reply",
    [
        {"text": "one two three four five six"},
        {"text": "héllo wörld 🌍 世界", "chunk_chars": 1},
        {"text": "stopped early", "finish_reason": "length"},
    ],
    ids=["words", "unicode-per-char", "length"],
)
async def test_stream_equal_without_usage(reference, mock, reply):
    """Ours with ``include_usage=False`` sends what the reference sends (no stream_options):
    the chunks are equal one for one on the reference's fields, the last one included."""
    server = mock({"rules": [{"reply": reply}]})
    theirs, ours = await _both(reference, server.base_url, _collect, ours={"include_usage": False})
    _ok(theirs, ours)
    assert len(ours) == len(theirs) >= 4
    assert [ref_fields(c, reference.StreamChunk) for c in ours] == [dataclasses.asdict(c) for c in theirs]
    assert "".join(c.content for c in ours) == reply["text"]
    finish = reply.get("finish_reason", "stop")
    # Ours adds finish_reason on the chunk that says it and on the last one.
    assert [c.finish_reason for c in ours] == [None] * (len(ours) - 2) + [finish, finish]


async def test_stream_usage_documented_difference(reference, mock):
    """By default ours asks for usage (``stream_options.include_usage``), which the reference
    cannot (it crashes on ``"usage": null`` chunks and drops the ``choices: []`` usage event):
    our last chunk carries the usage, with ``total_tokens``; the reference's carries none.
    Every other chunk is equal on the reference's fields."""
    server = mock({"rules": [{"reply": {"text": "a b c", "usage": {"prompt_tokens": 5, "completion_tokens": 3}}}]})
    theirs, ours = await _both(reference, server.base_url, _collect)
    _ok(theirs, ours)
    assert len(ours) == len(theirs)
    assert [ref_fields(c, reference.StreamChunk) for c in ours[:-1]] == [dataclasses.asdict(c) for c in theirs[:-1]]
    assert theirs[-1].usage is None
    assert ours[-1].usage == {"input_tokens": 5, "output_tokens": 3, "total_tokens": 8}
    assert dataclasses.replace(ours[-1], usage=None) == mb.StreamChunk(is_final=True, finish_reason="stop")


async def test_stream_usage_on_finish_chunk_documented_difference(reference):
    """A server that puts usage on its finish chunk: the reference yields it on that chunk as
    ``{input_tokens, output_tokens}``; ours gives it on the last chunk (where our usage always
    is), with ``total_tokens`` too."""
    usage = {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}
    body = sse(chunk({"content": "hi"}), chunk({}, "stop", usage=usage))
    with RecordingServer([Canned(headers=SSE_HEADERS, pieces=body)]) as s:
        theirs, ours = await _both(reference, s.base_url, _collect, ours={"include_usage": False})
    _ok(theirs, ours)
    assert [c.usage for c in theirs] == [None, {"input_tokens": 4, "output_tokens": 2}, None]
    full = {"input_tokens": 4, "output_tokens": 2, "total_tokens": 6}
    assert [c.usage for c in ours] == [None, None, full]
    assert [c.content for c in ours] == [c.content for c in theirs] == ["hi", "", ""]
    assert [c.is_final for c in ours] == [c.is_final for c in theirs] == [False, True, True]


async def test_stream_tool_call_deltas_equal_when_indexed(reference, mock):
    """The mock's deltas carry ``index`` (as OpenAI's do): ours passes the same deltas."""
    server = mock({"rules": [{"reply": {"tool_calls": [{"name": "f", "arguments": {"x": 1, "y": "abcdefghijkl"}}]}}]})
    theirs, ours = await _both(reference, server.base_url, _collect, ours={"include_usage": False})
    _ok(theirs, ours)
    assert [ref_fields(c, reference.StreamChunk) for c in ours] == [dataclasses.asdict(c) for c in theirs]
    assert ours[-1].assembled_tool_calls == [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"x":1,"y":"abcdefghijkl"}'}}
    ]


async def test_wire_equal_on_given_fields(reference):
    """What goes out: model, messages, the caller's temperature and max_tokens, extra keyword
    arguments merged, the key as a bearer token. Documented difference: ours leaves out
    ``"stream": false`` (the API's default); in a stream it adds ``stream_options``."""
    with RecordingServer([Canned(pieces=[chat_json()])]) as s:
        for lib in (reference, mb):
            b = lib.OpenAICompatibleBackend("gpt-4o-mini", base_url=s.base_url + "/", api_key="sk-test")
            _ok(await b.complete(MESSAGES, temperature=0.2, max_tokens=17, top_p=0.5, seed=7, tools=TOOLS))
            await b.close()
        theirs, ours = s.requests
    assert theirs.path == ours.path == "/v1/chat/completions"
    for r in (theirs, ours):
        assert r.method == "POST"
        assert r.headers["authorization"] == "Bearer sk-test"
        assert r.headers["content-type"].startswith("application/json")
    assert theirs.json == {**ours.json, "stream": False}


async def test_wire_messages_kept_as_written(reference):
    """Messages go out as the caller wrote them, unknown keys included (as the reference)."""
    messages = [{"role": "user", "content": "x", "name": "bob", "x_custom": {"a": 1}}]
    with RecordingServer([Canned(pieces=[chat_json()])]) as s:
        for lib in (reference, mb):
            b = lib.OpenAICompatibleBackend("gpt-4o-mini", base_url=s.base_url)
            _ok(await b.complete(messages, temperature=0.5))
            await b.close()
        theirs, ours = s.requests
    assert ours.json["messages"] == theirs.json["messages"] == messages


async def test_factories_defaults(reference):
    for name, args in (("create_ollama_backend", ("llama3.2",)), ("create_vllm_backend", ("llama3.2",)),
                       ("create_lmstudio_backend", ())):
        theirs, ours = getattr(reference, name)(*args), getattr(mb, name)(*args)
        assert (ours.model, ours.name) == (theirs.model, theirs.name)
        assert ours._native.target == theirs._base_url
        await theirs.close()
        await ours.close()
    assert mb.create_lmstudio_backend().model == reference.create_lmstudio_backend().model == "local-model"


# Our profile table differs from the reference's by design; every difference, exactly.
# default_temperature: None everywhere (defect 4). Costs: today's gpt-4o prices. Claude
# "-latest" names resolve to the family profile (longest prefix). Providers name the model's
# maker. Output limits the reference guessed are unknown (None). llama3.2-vision calls no tools
# on Ollama; mistral does. `default`: permissive (defect 2).
_T = {"default_temperature": (0.7, None)}
_META = {**_T, "provider": ("ollama", "meta"), "max_output_tokens": (4096, None)}
PROFILE_DIFFERENCES: Dict[str, Dict[str, Tuple[Any, Any]]] = {
    "gpt-4o": {**_T, "cost_per_1k_input": (0.005, 0.0025), "cost_per_1k_output": (0.015, 0.01)},
    "gpt-4o-mini": _T,
    "gpt-4-turbo": _T,
    "gpt-3.5-turbo": _T,
    "claude-3-5-sonnet-latest": {**_T, "name": ("claude-3-5-sonnet-latest", "claude-3-5-sonnet")},
    "claude-3-opus-latest": {**_T, "name": ("claude-3-opus-latest", "claude-3-opus")},
    "claude-3-haiku-20240307": {**_T, "name": ("claude-3-haiku-20240307", "claude-3-haiku")},
    "llama3.2": _META,
    "llama3.2-vision": {**_META, "supports_tools": (True, False)},
    "mistral": {**_T, "provider": ("ollama", "mistral"), "max_output_tokens": (4096, None), "supports_tools": (False, True)},
    "codellama": _META,
    "qwen2.5-coder": {**_T, "provider": ("ollama", "qwen"), "max_output_tokens": (8192, None)},
    "default": {**_T, "context_window": (8192, None), "max_output_tokens": (2048, None),
                "supports_tools": (False, True), "supports_vision": (False, True)},
}


def test_get_profile_on_reference_names(reference):
    assert reference.list_profiles() == list(PROFILE_DIFFERENCES)
    for name in reference.list_profiles():
        theirs = dataclasses.asdict(reference.get_profile(name))
        ours = ref_fields(mb.get_profile(name), reference.ModelProfile)
        diff = {k: (theirs[k], ours[k]) for k in theirs if theirs[k] != ours[k]}
        assert diff == PROFILE_DIFFERENCES[name], name


@pytest.mark.parametrize("cls", ["ModelResponse", "StreamChunk", "ModelProfile"])
def test_dataclass_shapes(reference, cls):
    theirs, ours = getattr(reference, cls), getattr(mb, cls)
    names = ref_names(theirs)
    assert [f.name for f in dataclasses.fields(ours)][: len(names)] == names
    for t, o in zip(dataclasses.fields(theirs), dataclasses.fields(ours)):
        if (cls, t.name) == ("ModelProfile", "default_temperature"):
            assert (t.default, o.default) == (0.7, None)  # defect 4, by design
            continue
        assert o.default == t.default, t.name
        assert (o.default_factory is dataclasses.MISSING) == (t.default_factory is dataclasses.MISSING), t.name
    for f in dataclasses.fields(ours)[len(names):]:
        assert f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING, f.name


def test_dataclass_values_built_the_same_way(reference):
    calls = [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    usage = {"input_tokens": 1, "output_tokens": 2, "total_tokens": 3}
    for cls, args, ours_extra in (
        ("ModelResponse", ("hi", calls, usage, "m", "stop"), ", reasoning=None)"),
        ("ModelResponse", ("hi",), ", reasoning=None)"),
        ("StreamChunk", ("x", calls, True, usage), ", reasoning='', finish_reason=None, assembled_tool_calls=None)"),
        ("StreamChunk", (), ", reasoning='', finish_reason=None, assembled_tool_calls=None)"),
    ):
        theirs, ours = getattr(reference, cls)(*args), getattr(mb, cls)(*args)
        assert ref_fields(ours, getattr(reference, cls)) == dataclasses.asdict(theirs)
        assert repr(ours) == repr(theirs)[:-1] + ours_extra
        assert ours == getattr(mb, cls)(*args) and ours != getattr(mb, cls)("other")
        assert theirs == getattr(reference, cls)(*args)
    p_args = ("p", "acme", 1000, 100, False, True, False, 0.3, 0.1, 0.2, {"k": 1})
    theirs_p, ours_p = reference.ModelProfile(*p_args), mb.ModelProfile(*p_args)
    assert ref_fields(ours_p, reference.ModelProfile) == dataclasses.asdict(theirs_p)
    assert repr(ours_p).startswith(repr(theirs_p)[:-1] + ", aliases=[]")


@pytest.mark.parametrize("status", [401, 429, 500])
async def test_exceptions_for_status(reference, mock, status):
    """Names and attributes. Documented differences: ours also sets ``status_code`` and
    ``model`` on 401 and 429 (the reference sets none, so reading them raises AttributeError),
    keeps the whole error body in ``response_body`` (the reference: the message only), words
    the message as "<kind> (HTTP n): <server message>", and raises 500 as `ServerError`, a
    `ModelBackendError`; ``cause`` is None (no httpx exception to carry)."""
    headers = {"retry-after": "3"} if status == 429 else {}
    server = mock({"rules": [{"reply": {"status": status, "headers": headers}}]})
    theirs, ours = await _both(reference, server.base_url, lambda b: b.complete(MESSAGES), ours={"max_retries": 0})
    errors = reference.errors
    server_message = {401: "mock error: HTTP 401 (authentication_error)", 429: "mock error: HTTP 429 (rate_limit_error)",
                      500: "mock error: HTTP 500 (server_error)"}[status]
    expected = {401: ("AuthenticationError", "AuthenticationError", errors.AgentError, "Authentication failed: "),
                429: ("RateLimitError", "RateLimitError", errors.ModelBackendError, "Rate limit exceeded: "),
                500: ("ModelBackendError", "ServerError", errors.ModelBackendError, "API error (500): ")}[status]
    assert type(theirs).__name__ == expected[0] and isinstance(theirs, expected[2])
    assert type(ours).__name__ == expected[1] and isinstance(ours, mb.ModelBackendError)
    assert theirs.message == expected[3] + server_message
    assert ours.message.endswith(f"(HTTP {status}): {server_message}")
    assert ours.status_code == status and ours.model == "mock-model"
    assert json.loads(ours.response_body)["error"]["message"] == server_message
    assert ours.cause is None
    if status == 429:
        assert theirs.cause is None
    else:
        import httpx

        assert isinstance(theirs.cause, httpx.HTTPStatusError)
    if status == 401:
        with pytest.raises(AttributeError):
            theirs.status_code  # noqa: B018
        assert ours.retryable is False and isinstance(ours, mb.AuthenticationError)
    if status == 429:
        assert (theirs.model, theirs.retry_after, theirs.retryable) == (ours.model, ours.retry_after, ours.retryable) == ("mock-model", 3.0, True)
        with pytest.raises(AttributeError):
            theirs.status_code  # noqa: B018
    if status == 500:
        assert (theirs.model, theirs.status_code, theirs.retryable) == (ours.model, ours.status_code, ours.retryable)
        assert theirs.response_body == server_message


# ---------------------------------------------------------------------------------------------
# The defects of the reference (SEED.md): ours right, the reference's failure recorded.
# ---------------------------------------------------------------------------------------------


async def test_defect_1_null_content(reference, mock):
    """Defect 1: a tool-call answer's ``content: null`` is None in the reference, "" in ours."""
    server = mock({"rules": [{"reply": {"tool_calls": [{"name": "f", "arguments": {"x": 1}}]}}]})
    theirs, ours = await _both(reference, server.base_url, lambda b: b.complete(MESSAGES))
    _ok(theirs, ours)
    assert theirs.content is None
    assert ours.content == ""
    assert dataclasses.replace(ours, content=None, reasoning=None) == mb.ModelResponse(**dataclasses.asdict(theirs))


async def test_defect_2_unknown_model_keeps_tools(reference):
    """Defect 2: an unknown model gets the reference's ``default`` profile (no tools), so the
    tools are silently not sent; ours sends them."""
    assert reference.get_profile("qwen3:8b").name == "default"
    assert reference.get_profile("qwen3:8b").supports_tools is False
    assert mb.get_profile("some-unknown-model").supports_tools is True
    with RecordingServer([Canned(pieces=[chat_json()])]) as s:
        theirs, ours = await _both(reference, s.base_url, lambda b: b.complete(MESSAGES, tools=TOOLS),
                                   model="some-unknown-model")
        _ok(theirs, ours)
        sent_theirs, sent_ours = s.requests
    assert "tools" not in sent_theirs.json
    assert sent_ours.json["tools"] == TOOLS


def test_defect_3_longest_prefix(reference):
    """Defect 3: the reference takes the first prefix in insertion order."""
    assert reference.get_profile("gpt-4o-mini-2024-07-18").name == "gpt-4o"
    assert mb.get_profile("gpt-4o-mini-2024-07-18").name == "gpt-4o-mini"
    assert mb.OpenAICompatibleBackend("gpt-4o-mini-2024-07-18").profile.name == "gpt-4o-mini"


async def test_defect_4_no_default_temperature(reference):
    """Defect 4: the reference always sends 0.7; ours sends no temperature unless asked."""
    with RecordingServer([Canned(pieces=[chat_json()])]) as s:
        theirs, ours = await _both(reference, s.base_url, lambda b: b.complete(MESSAGES), model="gpt-4o")
        _ok(theirs, ours)
        sent_theirs, sent_ours = s.requests
    assert sent_theirs.json["temperature"] == 0.7
    assert "temperature" not in sent_ours.json


async def test_defect_5a_stream_error_body_read(reference, mock):
    """Defect 5: on a stream the reference never reads the error body before parsing it: the
    call fails with httpx.ResponseNotRead (no backend error, no message); ours raises the
    error of its kind with the server's message."""
    import httpx

    body = {"error": {"message": "temperature must be at most 2", "type": "invalid_request_error"}}
    server = mock({"rules": [{"reply": {"status": 400, "body": body}}]})
    theirs, ours = await _both(reference, server.base_url, _collect)
    assert isinstance(theirs, httpx.ResponseNotRead)
    assert not isinstance(theirs, reference.errors.AgentError)
    assert isinstance(ours, mb.InvalidRequestError)
    assert ours.status_code == 400 and "temperature must be at most 2" in str(ours)


@pytest.mark.parametrize("streaming", [False, True], ids=["complete", "stream"])
async def test_defect_5b_error_body_as_text(reference, mock, streaming):
    """Defect 5: ``{"error": "text"}`` (Ollama, vLLM) raises AttributeError in the reference
    (ResponseNotRead on a stream); ours raises a backend error with the text."""
    import httpx

    server = mock({"rules": [{"reply": {"status": 400, "body": {"error": "invalid temperature: 9"}}}]})
    call = _collect if streaming else (lambda b: b.complete(MESSAGES))
    theirs, ours = await _both(reference, server.base_url, call)
    if streaming:
        assert isinstance(theirs, httpx.ResponseNotRead)
    else:
        assert isinstance(theirs, AttributeError)
        assert "'str' object has no attribute 'get'" in str(theirs)
    assert isinstance(ours, mb.InvalidRequestError)
    assert ours.status_code == 400 and ours.message.endswith("invalid temperature: 9")


async def test_defect_6_retry_after_http_date(reference):
    """Defect 6: ``Retry-After`` as an HTTP date crashes the reference's float conversion;
    ours gives the seconds left."""
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    reply = Canned(status=429, headers={"content-type": "application/json", "retry-after": date},
                   pieces=[b'{"error": {"message": "slow down"}}'])
    with RecordingServer([reply]) as s:
        theirs, ours = await _both(reference, s.base_url, lambda b: b.complete(MESSAGES), ours={"max_retries": 0})
    assert type(theirs) is ValueError and "could not convert string to float" in str(theirs)
    assert isinstance(ours, mb.RateLimitError)
    assert 27 <= ours.retry_after <= 31
    assert ours.message.endswith("slow down")


async def test_defect_7_tool_call_fragments(reference):
    """Defect 7: the reference passes the fragments through raw (here without ``index``, as
    some servers send them) and never assembles them; ours adds the index to every delta and
    gives the whole calls on the last chunk."""
    body = sse(
        chunk({"tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}}]}),
        chunk({"tool_calls": [{"function": {"arguments": '{"a":'}}]}),
        chunk({"tool_calls": [{"function": {"arguments": "1}"}}]}),
        chunk({}, "tool_calls"),
    )
    with RecordingServer([Canned(headers=SSE_HEADERS, pieces=body)]) as s:
        theirs, ours = await _both(reference, s.base_url, _collect, ours={"include_usage": False})
    _ok(theirs, ours)
    assert [c.tool_calls for c in theirs] == [
        [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}}],
        [{"function": {"arguments": '{"a":'}}],
        [{"function": {"arguments": "1}"}}],
        None,
        None,
    ]
    assert [c.tool_calls for c in ours] == [
        [{"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}}],
        [{"index": 0, "function": {"arguments": '{"a":'}}],
        [{"index": 0, "function": {"arguments": "1}"}}],
        None,
        None,
    ]
    assert not hasattr(theirs[-1], "assembled_tool_calls")
    assert ours[-1].assembled_tool_calls == [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}
    ]


async def test_defect_8a_data_without_space(reference):
    """Defect 8: ``data:`` without a space: the reference sees no event at all (not even the
    end); ours reads the stream."""
    body = sse(chunk({"content": "hi"}), chunk({}, "stop"), sep="data:")
    with RecordingServer([Canned(headers=SSE_HEADERS, pieces=body)]) as s:
        theirs, ours = await _both(reference, s.base_url, _collect, ours={"include_usage": False})
    _ok(theirs, ours)
    assert theirs == []
    assert [(c.content, c.is_final) for c in ours] == [("hi", False), ("", True), ("", True)]


async def test_defect_8b_multiline_data(reference):
    """Defect 8: an event whose data spans two ``data:`` lines: the reference logs and drops
    both halves; ours joins them."""
    event = b'data: {"choices":[{"index":0,\ndata: "delta":{"content":"hi"},"finish_reason":null}]}\n\n'
    with RecordingServer([Canned(headers=SSE_HEADERS, pieces=[event, b"data: [DONE]\n\n"])]) as s:
        theirs, ours = await _both(reference, s.base_url, _collect, ours={"include_usage": False})
    _ok(theirs, ours)
    assert [(c.content, c.is_final) for c in theirs] == [("", True)]
    assert [(c.content, c.is_final) for c in ours] == [("hi", False), ("", True)]


async def test_defect_8c_error_frame(reference, mock):
    """Defect 8: a ``data: {"error": ...}`` frame mid-stream: the reference skips it and the
    stream "succeeds" with half an answer; ours raises the error (classified by its content:
    a server error here) with the frame's message."""
    frame = {"error": {"message": "the model crashed mid-answer"}}
    server = mock({"rules": [{"reply": {"text": "a b c d", "error_frame_at": 2, "error_frame": frame}}]})
    theirs, ours = await _both(reference, server.base_url, _collect)
    _ok(theirs)
    assert [(c.content, c.is_final) for c in theirs] == [("", False), ("a", False), ("", True)]
    assert isinstance(ours, mb.ServerError) and not isinstance(ours, mb.StreamError)
    assert ours.message.endswith("the model crashed mid-answer")


async def test_defect_8d_end_before_done(reference):
    """Defect 8: a stream that ends before ``[DONE]`` (and before any finish reason) ends
    silently in the reference, as if finished; ours raises StreamError."""
    body = sse(chunk({"content": "half an"}), chunk({"content": " answer"}), done=False)
    with RecordingServer([Canned(headers=SSE_HEADERS, pieces=body)]) as s:
        theirs, ours = await _both(reference, s.base_url, _collect)
    _ok(theirs)
    assert [(c.content, c.is_final) for c in theirs] == [("half an", False), (" answer", False)]
    assert isinstance(ours, mb.StreamError)
    assert "before the answer finished" in ours.message


async def test_defect_9_retries(reference, mock):
    """Defect 9: the reference never retries (one 500 raises); ours retries a retryable
    failure (max_retries default 2) and returns the answer of the second request. The
    reference has one timeout only: ours also takes connect and total timeouts."""
    server = mock({"rules": [{"times": 1, "reply": {"status": 500}}, {"reply": {"text": "second time lucky"}}]})
    theirs, _ = await _both(reference, server.base_url, lambda b: b.complete(MESSAGES), ours={"max_retries": 0})
    assert isinstance(theirs, reference.errors.ModelBackendError) and theirs.status_code == 500
    server2 = mock({"rules": [{"times": 1, "reply": {"status": 500}}, {"reply": {"text": "second time lucky"}}]})
    ours = mb.OpenAICompatibleBackend("mock-model", base_url=server2.base_url, connect_timeout=5.0, total_timeout=30.0)
    try:
        response = await ours.complete(MESSAGES)
    finally:
        await ours.close()
    assert response.content == "second time lucky"
    with pytest.raises(TypeError):
        reference.OpenAICompatibleBackend("m", connect_timeout=5.0)


async def test_defect_8e_connection_cut_mid_stream(reference, mock):
    """Defect 8, the connection itself cut mid-body (not a clean end): here the reference does
    fail, with a generic ModelBackendError wrapping httpx's RemoteProtocolError; ours raises
    StreamError (retryable)."""
    import httpx

    server = mock({"rules": [{"reply": {"text": "a b c d e f", "cut_after_bytes": 400}}]})
    theirs, ours = await _both(reference, server.base_url, _collect, ours={"include_usage": False})
    assert type(theirs) is reference.errors.ModelBackendError
    assert isinstance(theirs.cause, httpx.RemoteProtocolError) and theirs.retryable is True
    assert isinstance(ours, mb.StreamError) and ours.retryable is True
    assert ours.kind == "stream"


async def test_finish_reason_then_end_without_done(reference, mock):
    """Related to defect 8: a stream that sent its finish reason and then ended without
    ``[DONE]`` is a whole answer. Both yield the same chunks up to the finish; ours then
    yields its last chunk (the answer ended), the reference has no ``[DONE]`` to yield one
    for."""
    server = mock({"rules": [{"reply": {"text": "a b", "no_done": True}}]})
    theirs, ours = await _both(reference, server.base_url, _collect, ours={"include_usage": False})
    _ok(theirs, ours)
    assert [(c.content, c.is_final) for c in theirs] == [("", False), ("a", False), (" b", False), ("", True)]
    assert [ref_fields(c, reference.StreamChunk) for c in ours[:-1]] == [dataclasses.asdict(c) for c in theirs]
    assert ours[-1] == mb.StreamChunk(is_final=True, finish_reason="stop")
