"""Every error kind, from mamba-mock and the recording server, and bad input.

For each failure (401, 403, 429 with Retry-After in seconds and as an HTTP date, quota
exceeded, context overflow, model not found, invalid request, 500, 503, a timeout, a refused
connection, an error frame mid-stream, a stream cut before its end, one ending without
``[DONE]``, a malformed frame, Ollama's ``{"error": "text"}`` body) the exception's class, that
it is a ModelBackendError (and an AgentError), ``.kind``, ``.status_code``, ``.retryable``,
``.retry_after`` and ``.response_body``; that the API key (a distinctive fake one) appears in
no str, repr, args or attribute, even when the server echoes it; and that pickling
round-trips. Bad input: wrong argument types and values raise TypeError/ValueError naming
the argument, before any request (the recording server sees no connection).
"""

from __future__ import annotations

import builtins
import email.utils
import pickle
import socket
import time
from typing import Any, Dict, Optional

import pytest
from recording_server import Reply, text_events

import mamba_backends as mb

KEY = "sk-pytest-DISTINCT-7f3a9c1e5b"
USER = [{"role": "user", "content": "Hello there"}]


def closed_port_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/v1"


def backend(url: str, **kwargs: Any) -> mb.OpenAICompatibleBackend:
    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("api_key", KEY)
    return mb.OpenAICompatibleBackend("mock-model", base_url=url, **kwargs)


def one_reply(mock: Any, reply: Dict[str, Any]) -> mb.OpenAICompatibleBackend:
    return backend(mock({"rules": [{"reply": reply}]}).base_url)


async def complete_error(b: mb.OpenAICompatibleBackend) -> mb.ModelBackendError:
    with pytest.raises(mb.ModelBackendError) as info:
        await b.complete(USER)
    return info.value


async def stream_error(b: mb.OpenAICompatibleBackend) -> mb.ModelBackendError:
    with pytest.raises(mb.ModelBackendError) as info:
        async for _ in b.stream(USER):
            pass
    return info.value


def check_common(e: mb.ModelBackendError, cls: type, kind: str, status: Optional[int], retryable: bool) -> None:
    assert type(e) is cls, f"{type(e).__name__}: {e}"
    assert isinstance(e, mb.ModelBackendError)
    assert isinstance(e, mb.AgentError)
    assert mb.ERRORS_BY_KIND[kind] is cls
    assert e.kind == kind
    assert e.status_code == status
    assert e.retryable is retryable
    assert e.model == "mock-model"
    assert str(e) and e.message
    assert_no_key(e)
    assert_pickles(e)


def assert_no_key(e: BaseException) -> None:
    texts = [str(e), repr(e), repr(e.args)]
    texts += [repr(v) for v in vars(e).values()]
    assert not any(KEY in t for t in texts), texts
    # Not even a recognisable part of it.
    assert not any("DISTINCT-7f3a9c1e5b" in t for t in texts), texts


def assert_pickles(e: mb.ModelBackendError) -> None:
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is type(e)
    assert str(back) == str(e)
    for attr in ("model", "status_code", "response_body", "retryable", "retry_after", "kind", "request_id", "code"):
        assert getattr(back, attr) == getattr(e, attr), attr


# -- HTTP statuses from the mock -------------------------------------------------------------


@pytest.mark.parametrize(
    "status, cls, kind, retryable",
    [
        (401, mb.AuthenticationError, "authentication", False),
        (403, mb.PermissionDeniedError, "permission_denied", False),
        (400, mb.InvalidRequestError, "invalid_request", False),
        (500, mb.ServerError, "server", True),
        (503, mb.UnavailableError, "unavailable", True),
    ],
)
async def test_status(mock, status, cls, kind, retryable):
    b = one_reply(mock, {"status": status})
    e = await complete_error(b)
    check_common(e, cls, kind, status, retryable)
    assert e.response_body is not None and '"error"' in e.response_body
    assert e.retry_after is None
    s = await stream_error(b)
    check_common(s, cls, kind, status, retryable)


async def test_wrong_key_is_authentication(mock):
    server = mock(api_key="sk-the-right-one")
    e = await complete_error(backend(server.base_url))
    check_common(e, mb.AuthenticationError, "authentication", 401, False)
    assert "Incorrect API key" in (e.response_body or "")


async def test_echoed_key_is_not_shown(recording):
    """A server that echoes the key in its error body (as OpenAI's 401 does, partly)."""
    recording.set(Reply.json({"error": {"message": f"Incorrect API key provided: {KEY}", "type": "invalid_request_error", "code": "invalid_api_key"}}, status=401))
    e = await complete_error(backend(recording.base_url))
    check_common(e, mb.AuthenticationError, "authentication", 401, False)


async def test_rate_limited_retry_after_seconds(mock):
    b = one_reply(mock, {"status": 429, "headers": {"retry-after": "7"}})
    e = await complete_error(b)
    check_common(e, mb.RateLimitError, "rate_limited", 429, True)
    assert e.retry_after == 7.0


async def test_rate_limited_retry_after_http_date(mock):
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    b = one_reply(mock, {"status": 429, "headers": {"retry-after": when}})
    e = await complete_error(b)
    check_common(e, mb.RateLimitError, "rate_limited", 429, True)
    assert e.retry_after is not None and 20 <= e.retry_after <= 31


async def test_quota_exceeded(mock):
    body = {"error": {"message": "You exceeded your current quota, please check your plan and billing details.", "type": "insufficient_quota", "code": "insufficient_quota"}}
    e = await complete_error(one_reply(mock, {"status": 429, "body": body}))
    check_common(e, mb.QuotaExceededError, "quota_exceeded", 429, False)
    assert e.code == "insufficient_quota"
    assert "insufficient_quota" in (e.response_body or "")


async def test_context_overflow(mock):
    body = {"error": {"message": "This model's maximum context length is 4096 tokens. However, your messages resulted in 5000 tokens.", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}
    e = await complete_error(one_reply(mock, {"status": 400, "body": body}))
    check_common(e, mb.ContextOverflowError, "context_overflow", 400, False)
    assert e.code == "context_length_exceeded"


async def test_model_not_found(mock):
    body = {"error": {"message": "The model `nope` does not exist or you do not have access to it.", "type": "invalid_request_error", "code": "model_not_found"}}
    e = await complete_error(one_reply(mock, {"status": 404, "body": body}))
    check_common(e, mb.ModelNotFoundError, "model_not_found", 404, False)
    assert "does not exist" in (e.response_body or "")


async def test_ollama_error_text_body(mock):
    body = {"error": 'model "llama9" not found, try pulling it first'}
    e = await complete_error(one_reply(mock, {"status": 404, "body": body}))
    check_common(e, mb.ModelNotFoundError, "model_not_found", 404, False)
    assert "try pulling it first" in str(e)
    assert "try pulling it first" in (e.response_body or "")


async def test_invalid_request_message_shown(mock):
    body = {"error": {"message": "'messages' must contain at least one message", "type": "invalid_request_error"}}
    e = await complete_error(one_reply(mock, {"status": 400, "body": body}))
    check_common(e, mb.InvalidRequestError, "invalid_request", 400, False)
    assert "must contain at least one message" in str(e)


# -- transport ------------------------------------------------------------------------------


async def test_timeout_while_the_server_hangs(mock):
    server = mock({"rules": [{"reply": {"hang": True}}]})
    b = backend(server.base_url, timeout=0.5)
    started = time.monotonic()
    e = await complete_error(b)
    assert time.monotonic() - started < 5
    # A POST that went out whole and got no answer may have been worked on: the core marks
    # it unanswered, not retryable (it is not resent unless asked).
    check_common(e, mb.TimeoutError, "timeout", None, False)
    assert isinstance(e, builtins.TimeoutError)
    assert "no response headers" in str(e)
    s = await stream_error(b)
    check_common(s, mb.TimeoutError, "timeout", None, False)


async def test_connection_refused():
    b = backend(closed_port_url(), timeout=2)
    e = await complete_error(b)
    check_common(e, mb.ConnectError, "connect", None, True)
    assert isinstance(e, builtins.ConnectionError)
    assert e.response_body is None
    s = await stream_error(b)
    check_common(s, mb.ConnectError, "connect", None, True)


# -- broken streams -------------------------------------------------------------------------


async def test_error_frame_mid_stream(mock):
    """An error event mid-stream raises the error of its kind (a ``server_error`` frame is a
    ServerError, as the same error would be before the stream), after the chunks before it."""
    b = one_reply(mock, {"text": "one two three four", "error_frame_at": 3})
    got = []
    with pytest.raises(mb.ModelBackendError) as info:
        async for c in b.stream(USER):
            got.append(c.content)
    e = info.value
    assert "".join(got) == "one two", got
    assert "mock error mid-stream" in str(e)
    check_common(e, mb.ServerError, "server", None, True)
    assert e.code == "server_error"


async def test_stream_cut_before_its_end(mock):
    b = one_reply(mock, {"text": " ".join(["word"] * 50), "cut_after_bytes": 900})
    e = await stream_error(b)
    check_common(e, mb.StreamError, "stream", None, True)
    assert "broke off" in str(e)


async def test_stream_closed_before_its_finish(recording):
    """The body ends properly, but before a finish reason or ``[DONE]``: the reference ended
    silently; here it is a StreamError."""
    recording.set(Reply.sse(text_events(["a", "b"])[:-1], done=False))
    b = backend(recording.base_url)
    got = []
    with pytest.raises(mb.StreamError) as info:
        async for c in b.stream(USER):
            got.append(c.content)
    assert "".join(got) == "ab"
    check_common(info.value, mb.StreamError, "stream", None, True)
    assert "before the answer finished" in str(info.value)
    recording.set(Reply.sse([], done=False))
    e = await stream_error(b)
    check_common(e, mb.StreamError, "stream", None, True)


async def test_stream_no_done_after_finish_is_whole(mock):
    """A stream that ends after its finish event but without ``data: [DONE]`` is complete."""
    b = one_reply(mock, {"text": "a b c", "no_done": True})
    chunks = [c async for c in b.stream(USER)]
    assert "".join(c.content for c in chunks) == "a b c"
    assert chunks[-1].is_final and chunks[-1].finish_reason == "stop"


async def test_stream_silent_mid_answer_times_out(mock):
    b = backend(mock({"rules": [{"reply": {"text": "a b c", "hang_after_events": 3}}]}).base_url, timeout=0.5)
    got = []
    with pytest.raises(mb.TimeoutError) as info:
        async for c in b.stream(USER):
            got.append(c.content)
    assert "".join(got) == "a b"
    check_common(info.value, mb.TimeoutError, "timeout", None, True)


async def test_malformed_frame(mock):
    b = one_reply(mock, {"text": "one two three", "malformed_frame_at": 2})
    got = []
    with pytest.raises(mb.DecodeError) as info:
        async for c in b.stream(USER):
            got.append(c.content)
    assert "".join(got) == "one"
    check_common(info.value, mb.DecodeError, "decode", None, False)
    assert "not valid JSON" in str(info.value)


async def test_non_json_answer_is_decode_error(recording):
    recording.set(Reply.json("<html>a proxy's page</html>"))
    e = await complete_error(backend(recording.base_url))
    check_common(e, mb.DecodeError, "decode", None, False)


# -- the classes themselves -------------------------------------------------------------------


def test_classes_construct_and_pickle_by_hand():
    e = mb.RateLimitError("slow down", model="m", status_code=429, retry_after=2.5)
    assert e.retryable is True and e.retry_after == 2.5 and e.kind is None
    assert_pickles(e)
    cause = ValueError("inner")
    w = mb.ModelBackendError("outer", cause=cause, model="m")
    assert str(w) == "outer (caused by: inner)"
    back = pickle.loads(pickle.dumps(w))
    assert isinstance(back.cause, ValueError) and str(back) == str(w)
    assert issubclass(mb.ConfigurationError, ValueError)
    assert set(mb.ERRORS_BY_KIND.values()) <= {c for c in vars(mb).values() if isinstance(c, type) and issubclass(c, mb.ModelBackendError)}


# -- bad input: refused before any request --------------------------------------------------


BAD_CALLS = [
    ("messages", lambda b: b.complete("not a list"), TypeError),
    ("messages", lambda b: b.complete({"role": "user", "content": "x"}), TypeError),
    (r"messages\[1\]", lambda b: b.complete([{"role": "user", "content": "x"}, "hi"]), TypeError),
    (r"messages\[0\]", lambda b: b.complete([{"role": 5, "content": "x"}]), ValueError),
    ("temperature", lambda b: b.complete(USER, temperature="hot"), TypeError),
    ("temperature", lambda b: b.complete(USER, temperature=True), TypeError),
    ("temperature", lambda b: b.complete(USER, temperature=-1.0), ValueError),
    ("temperature", lambda b: b.complete(USER, temperature=float("nan")), ValueError),
    ("max_tokens", lambda b: b.complete(USER, max_tokens="10"), TypeError),
    ("max_tokens", lambda b: b.complete(USER, max_tokens=1.5), TypeError),
    ("max_tokens", lambda b: b.complete(USER, max_tokens=0), ValueError),
    ("max_tokens", lambda b: b.complete(USER, max_tokens=-3), ValueError),
    ("tools", lambda b: b.complete(USER, tools="get_weather"), TypeError),
    (r"tools\[0\]", lambda b: b.complete(USER, tools=[1]), TypeError),
    ("custom", lambda b: b.complete(USER, custom=object()), TypeError),
    ("texts", lambda b: b.embed(5), TypeError),
    ("texts", lambda b: b.embed([1, 2]), TypeError),
    ("dimensions", lambda b: b.embed(["a"], dimensions="8"), TypeError),
    ("dimensions", lambda b: b.embed(["a"], dimensions=0), ValueError),
    ("dimensions", lambda b: b.embed(["a"], dimensions=-1), ValueError),
    ("model", lambda b: b.embed(["a"], model=5), TypeError),
    ("model_file", lambda b: mb.local(123), TypeError),
    ("threads", lambda b: mb.local(threads="4"), TypeError),
    ("threads", lambda b: mb.local(threads=0), ValueError),
    ("context", lambda b: mb.local(context=-1), ValueError),
]


@pytest.mark.parametrize("arg, call, exc", BAD_CALLS, ids=[f"{i}-{a}" for i, (a, _, _) in enumerate(BAD_CALLS)])
async def test_bad_input_refused_before_any_request(recording, arg, call, exc):
    b = backend(recording.base_url)
    with pytest.raises(exc, match=arg):
        await call(b)
    assert recording.requests == [] and recording.total_connections == 0


STREAM_BAD = [
    ("messages", lambda b: b.stream("not a list"), TypeError),
    (r"messages\[0\]", lambda b: b.stream([None]), TypeError),
    ("temperature", lambda b: b.stream(USER, temperature="hot"), TypeError),
    ("max_tokens", lambda b: b.stream(USER, max_tokens=0), ValueError),
    ("tools", lambda b: b.stream(USER, tools=3), TypeError),
]


@pytest.mark.parametrize("arg, call, exc", STREAM_BAD, ids=[f"{i}-{a}" for i, (a, _, _) in enumerate(STREAM_BAD)])
async def test_bad_stream_input_raises_at_the_call(recording, arg, call, exc):
    b = backend(recording.base_url)
    with pytest.raises(exc, match=arg):
        call(b)  # raised by stream() itself, before iteration
    assert recording.requests == [] and recording.total_connections == 0


BAD_CONSTRUCTORS = [
    ("model", lambda url: mb.OpenAICompatibleBackend(5, base_url=url), TypeError),
    ("base_url", lambda url: mb.OpenAICompatibleBackend("m", base_url=None), TypeError),
    ("api_key", lambda url: mb.OpenAICompatibleBackend("m", base_url=url, api_key=123), TypeError),
    ("timeout", lambda url: mb.OpenAICompatibleBackend("m", base_url=url, timeout="60"), TypeError),
    ("timeout", lambda url: mb.OpenAICompatibleBackend("m", base_url=url, timeout=-1), ValueError),
    ("timeout", lambda url: mb.OpenAICompatibleBackend("m", base_url=url, timeout=0), ValueError),
    ("total_timeout", lambda url: mb.OpenAICompatibleBackend("m", base_url=url, total_timeout="x"), TypeError),
    ("connect_timeout", lambda url: mb.OpenAICompatibleBackend("m", base_url=url, connect_timeout=-2.0), ValueError),
    ("max_retries", lambda url: mb.OpenAICompatibleBackend("m", base_url=url, max_retries=-1), ValueError),
    ("max_retries", lambda url: mb.OpenAICompatibleBackend("m", base_url=url, max_retries="2"), TypeError),
    ("profile", lambda url: mb.OpenAICompatibleBackend("m", base_url=url, profile={"name": "x"}), TypeError),
    ("preset", lambda url: mb.OpenAICompatibleBackend("m", base_url=url, preset=3), TypeError),
    ("preset", lambda url: mb.OpenAICompatibleBackend("m", base_url=url, preset="nope"), ValueError),
    ("api", lambda url: mb.OpenAICompatibleBackend("m", base_url=url, api="soap"), ValueError),
    ("headers", lambda url: mb.OpenAICompatibleBackend("m", base_url=url, headers={"X-A": 1}), TypeError),
    ("max_retries", lambda url: mb.OpenAICompatibleBackend("m", base_url=url, max_retries=2**40), ValueError),
    ("include_usage", lambda url: mb.OpenAICompatibleBackend("m", base_url=url, include_usage="yes"), TypeError),
    ("headers", lambda url: mb.OpenAICompatibleBackend("m", base_url=url, headers=[("X-A", "b")]), TypeError),
    ("header", lambda url: mb.OpenAICompatibleBackend("m", base_url=url, headers={"bad name": "x"}), ValueError),
    ("cool_down", lambda url: mb.BackendPool([mb.OpenAICompatibleBackend("m", base_url=url)], cool_down=-1), ValueError),
    ("cool_down", lambda url: mb.BackendPool([mb.OpenAICompatibleBackend("m", base_url=url)], cool_down="30"), TypeError),
    ("failure_threshold", lambda url: mb.BackendPool([mb.OpenAICompatibleBackend("m", base_url=url)], failure_threshold=-1), ValueError),
    ("failure_threshold", lambda url: mb.BackendPool([mb.OpenAICompatibleBackend("m", base_url=url)], failure_threshold="3"), TypeError),
    ("endpoint", lambda url: mb.BackendPool([]), ValueError),
    (r"fallbacks\[0\]", lambda url: mb.BackendPool([mb.OpenAICompatibleBackend("m", base_url=url)], fallbacks=["x"]), TypeError),
]


@pytest.mark.parametrize("arg, make, exc", BAD_CONSTRUCTORS, ids=[f"{i}-{a}" for i, (a, _, _) in enumerate(BAD_CONSTRUCTORS)])
def test_bad_constructor_arguments(recording, arg, make, exc):
    with pytest.raises(exc, match=arg):
        make(recording.base_url)
    assert recording.total_connections == 0


def test_argument_named_in_the_message_not_only_in_a_note():
    """pyo3 names a badly typed argument only in a PEP 678 note; the checks in Python put
    the name in the message itself for the ones that matter most."""
    b = mb.OpenAICompatibleBackend("m", base_url="http://127.0.0.1:9/v1")
    for make in (
        lambda: mb.BackendPool([b], failure_threshold=-1),
        lambda: mb.OpenAICompatibleBackend("m", base_url="http://127.0.0.1:9/v1", timeout="1"),
    ):
        with pytest.raises((TypeError, ValueError)) as info:
            make()
        assert info.value.args and any(n in str(info.value) for n in ("failure_threshold", "timeout"))


def test_bad_base_url_is_a_value_error():
    with pytest.raises(ValueError) as info:
        mb.OpenAICompatibleBackend("m", base_url="not a url at all")
    assert "url" in str(info.value).lower()


def test_key_not_in_construction_errors():
    with pytest.raises(ValueError) as info:
        mb.OpenAICompatibleBackend("m", base_url=f"http://user:{KEY}@127.0.0.1:9/v1 bad", api_key=KEY)
    assert_no_key(info.value)
