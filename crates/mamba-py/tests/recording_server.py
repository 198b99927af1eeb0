"""A tiny HTTP/1.1 server that records what the client sends, for checks of the wire.

`RecordingServer` runs an asyncio server on 127.0.0.1 (an ephemeral port) in a background
thread. Every request is recorded (`Recorded`: method, path, headers with lower-case names,
raw body and its JSON), and answered with the `Reply` set for the test: a JSON body
(`Reply.json`), an SSE stream (`Reply.sse`, optionally paced, cut or left hanging), or a hang
(`Reply.hang`: nothing is sent until the client leaves). Replies queued with `push` are used
once each, in order; after them, the one set with `set` answers (default: a small chat
completion). It counts TCP connections, open and total, so tests can see a request
cancelled (its connection closed) and a stream left early (its connection closed or reused,
not leaked).

mamba-mock (the `mock` fixture) scripts answers; this server exists for what mamba-mock does
not show a Python test: the exact request bytes and the life of each connection.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Union


@dataclass
class Recorded:
    """One request as received."""

    method: str
    path: str
    headers: Dict[str, str]
    body: bytes
    json: Any = None


@dataclass
class Reply:
    """What the server answers.

    ``events`` set makes an SSE stream: each item is a dict (sent as ``data: <json>``) or a
    str (sent as ``data: <str>``); ``done`` appends ``data: [DONE]``; ``event_delay`` waits
    between events; ``hang_after`` stops after that many events and keeps the connection
    open. ``raw_stream`` is an event-stream body sent exactly as given (for SSE framing
    variants). Otherwise ``body`` (a dict/list sent as JSON, or str/bytes sent as is) with
    ``status``. ``hang`` sends nothing at all.
    """

    status: int = 200
    body: Union[None, bytes, str, Dict[str, Any], List[Any]] = None
    headers: Dict[str, str] = field(default_factory=dict)
    events: Optional[Sequence[Union[str, Dict[str, Any]]]] = None
    done: bool = True
    event_delay: float = 0.0
    hang_after: Optional[int] = None
    hang: bool = False
    raw_stream: Optional[str] = None

    @staticmethod
    def json(body: Any, status: int = 200, headers: Optional[Dict[str, str]] = None) -> "Reply":
        return Reply(status=status, body=body, headers=dict(headers or {}))

    @staticmethod
    def sse(
        events: Sequence[Union[str, Dict[str, Any]]],
        *,
        done: bool = True,
        event_delay: float = 0.0,
        hang_after: Optional[int] = None,
    ) -> "Reply":
        return Reply(events=list(events), done=done, event_delay=event_delay, hang_after=hang_after)

    @staticmethod
    def hanging() -> "Reply":
        return Reply(hang=True)


def completion(
    text: str = "ok",
    *,
    model: str = "rec-model",
    tool_calls: Optional[List[Dict[str, Any]]] = None,
    finish_reason: Optional[str] = None,
    usage: Optional[Dict[str, int]] = None,
) -> Dict[str, Any]:
    """A chat-completion body."""
    message: Dict[str, Any] = {"role": "assistant", "content": text if not tool_calls else None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-rec",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish_reason or ("tool_calls" if tool_calls else "stop"),
            }
        ],
        "usage": usage or {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }


def chunk(delta: Dict[str, Any], finish_reason: Optional[str] = None, *, model: str = "rec-model") -> Dict[str, Any]:
    """A chat-completion stream event."""
    return {
        "id": "chatcmpl-rec",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def text_events(pieces: Sequence[str], *, model: str = "rec-model") -> List[Dict[str, Any]]:
    """The events of a streamed text answer: one per piece, then the finish event."""
    events = [chunk({"role": "assistant", "content": ""}, model=model)]
    events += [chunk({"content": p}, model=model) for p in pieces]
    events.append(chunk({}, "stop", model=model))
    return events


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error"}


class RecordingServer:
    """The server; `start()`ed by the `recording` fixture and stopped after the test."""

    def __init__(self) -> None:
        self.requests: List[Recorded] = []
        self.open_connections = 0
        self.total_connections = 0
        self._default = Reply.json(completion())
        self._queue: List[Reply] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._server: Optional[asyncio.AbstractServer] = None
        self._tasks: "set[asyncio.Task[None]]" = set()
        self._thread = threading.Thread(target=self._run, name="recording-server", daemon=True)
        self._ready = threading.Event()
        self.port = 0

    # -- set up -----------------------------------------------------------------------------

    def start(self) -> "RecordingServer":
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the recording server did not start")
        return self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def set(self, reply: Reply) -> None:
        """Answers every request (after the queued ones) with ``reply``."""
        with self._lock:
            self._default = reply

    def push(self, *replies: Reply) -> None:
        """Answers the next requests with ``replies``, one each, in order."""
        with self._lock:
            self._queue.extend(replies)

    # -- what happened ----------------------------------------------------------------------

    def bodies(self) -> List[Any]:
        """The JSON bodies of the requests received, in order."""
        return [r.json for r in self.requests]

    def last(self) -> Recorded:
        assert self.requests, "the recording server received no request"
        return self.requests[-1]

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Polls ``predicate`` (from any thread) until it holds or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.01)
        return predicate()

    # -- the server -------------------------------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def serve() -> None:
            self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0, backlog=2048)
            self.port = self._server.sockets[0].getsockname()[1]
            self._ready.set()

        self._loop.run_until_complete(serve())
        self._loop.run_forever()
        self._loop.close()

    def stop(self) -> None:
        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            if self._server is not None:
                await self._server.wait_closed()
            self._loop.stop()

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop)
            self._thread.join(10)

    def _next_reply(self) -> Reply:
        with self._lock:
            return self._queue.pop(0) if self._queue else self._default

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        with self._lock:
            self.open_connections += 1
            self.total_connections += 1
        try:
            while True:
                request = await self._read_request(reader)
                if request is None:
                    break
                self.requests.append(request)
                keep = await self._answer(self._next_reply(), reader, writer)
                if not keep or request.headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            with self._lock:
                self.open_connections -= 1
            self._tasks.discard(task)
            try:
                writer.close()
            except Exception:
                pass

    @staticmethod
    async def _read_request(reader: asyncio.StreamReader) -> Optional[Recorded]:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers: Dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        body = b""
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
                data = await reader.readexactly(size + 2)
                if size == 0:
                    break
                body += data[:-2]
        parsed: Any = None
        if body:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
        return Recorded(method, path, headers, body, parsed)

    @staticmethod
    async def _until_client_leaves(reader: asyncio.StreamReader) -> None:
        while await reader.read(4096):
            pass

    async def _answer(self, reply: Reply, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Writes the answer; whether the connection may serve another request."""
        if reply.hang:
            await self._until_client_leaves(reader)
            return False
        reason = _REASONS.get(reply.status, "Status")
        head = [f"HTTP/1.1 {reply.status} {reason}"]
        if reply.raw_stream is not None:
            data = reply.raw_stream.encode()
            head += ["Content-Type: text/event-stream", f"Content-Length: {len(data)}"]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
            await writer.drain()
            return True
        if reply.events is not None:
            head += ["Content-Type: text/event-stream", "Cache-Control: no-cache", "Transfer-Encoding: chunked"]
            head += [f"{k}: {v}" for k, v in reply.headers.items()]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
            await writer.drain()
            payloads = [e if isinstance(e, str) else json.dumps(e) for e in reply.events]
            if reply.done and reply.hang_after is None:
                payloads.append("[DONE]")
            for i, payload in enumerate(payloads):
                if reply.hang_after is not None and i >= reply.hang_after:
                    await self._until_client_leaves(reader)
                    return False
                if reply.event_delay:
                    await asyncio.sleep(reply.event_delay)
                data = f"data: {payload}\n\n".encode()
                writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                await writer.drain()
            if reply.hang_after is not None:
                await self._until_client_leaves(reader)
                return False
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            return True
        body = reply.body
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
            content_type = "application/json"
        elif isinstance(body, str):
            data = body.encode()
            content_type = "text/plain"
        else:
            data = body or b""
            content_type = "application/json"
        head += [f"Content-Type: {content_type}", f"Content-Length: {len(data)}"]
        head += [f"{k}: {v}" for k, v in reply.headers.items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        await writer.drain()
        return True
