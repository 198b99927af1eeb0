"""Helpers of the differential tests (test_reference_differential.py).

* `RecordingServer`: a minimal HTTP/1.1 server on 127.0.0.1 (asyncio streams on a background
  thread) that records every request (method, path, headers, JSON body) and answers each with
  the next canned `Canned` reply (the last one repeats). It shows what a client puts on the
  wire, which ``mamba-llm mock`` answers but does not expose over HTTP, and sends byte-exact
  event streams (``data:`` without a space, multi-line data, error frames).
* `ref_fields`: a dataclass value as a dict restricted to the reference class's field names,
  the comparison the differential tests make (our extra fields come after the reference's).
* `sse`: an event stream body from payloads.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence


@dataclass
class Canned:
    """One answer of the recording server.

    ``pieces``: the body, sent as HTTP chunks one piece each (chunked transfer encoding) when
    there is more than one piece or ``chunked`` is set, else with a content-length.
    ``cut``: close the connection after the pieces without the chunked terminator (a body cut
    before its end).
    """

    status: int = 200
    headers: Dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})
    pieces: Sequence[bytes] = (b"{}",)
    chunked: bool = False
    cut: bool = False


@dataclass
class Recorded:
    """One request the server received."""

    method: str
    path: str
    headers: Dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 429: "Too Many Requests", 500: "Internal Server Error"}


class RecordingServer:
    """``with RecordingServer([Canned(...), ...]) as s:``; ``s.base_url`` ends in ``/v1``;
    ``s.requests`` lists what arrived."""

    def __init__(self, replies: Sequence[Canned]) -> None:
        self._replies = list(replies) or [Canned()]
        self.requests: List[Recorded] = []
        self._loop = asyncio.new_event_loop()
        self._server: Optional[asyncio.AbstractServer] = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.base_url = ""

    def __enter__(self) -> "RecordingServer":
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        port = future.result(timeout=10)
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self

    def __exit__(self, *exc: Any) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _next(self) -> Canned:
        n = len(self.requests) - 1
        return self._replies[min(n, len(self._replies) - 1)]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path = lines[0].split(" ")[:2]
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append(Recorded(method, path, headers, body))
                reply = self._next()
                out = [f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Status')}"]
                out += [f"{k}: {v}" for k, v in reply.headers.items()]
                chunked = reply.chunked or len(reply.pieces) > 1 or reply.cut
                if chunked:
                    out.append("transfer-encoding: chunked")
                else:
                    out.append(f"content-length: {sum(len(p) for p in reply.pieces)}")
                out.append("connection: close")
                writer.write(("\r\n".join(out) + "\r\n\r\n").encode())
                for piece in reply.pieces:
                    writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                    await writer.drain()
                if chunked and not reply.cut:
                    writer.write(b"0\r\n\r\n")
                await writer.drain()
                break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def sse(*payloads: Any, done: bool = True, sep: str = "data: ") -> List[bytes]:
    """An event stream, one piece per event: dict payloads as JSON, strings as they are."""
    events = [(sep + (p if isinstance(p, str) else json.dumps(p)) + "\n\n").encode() for p in payloads]
    if done:
        events.append(f"{sep}[DONE]\n\n".encode())
    return events


SSE_HEADERS = {"content-type": "text/event-stream"}


def chat_json(content: Any = "hi", *, finish: str = "stop", usage: bool = True, model: str = "m") -> bytes:
    """A chat-completion body."""
    body: Dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}],
    }
    if usage:
        body["usage"] = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
    return json.dumps(body).encode()


def chunk(delta: Dict[str, Any], finish: Optional[str] = None, **extra: Any) -> Dict[str, Any]:
    """A chat-completion chunk payload."""
    return {"id": "c", "object": "chat.completion.chunk", "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}


def ref_names(ref_cls: type) -> List[str]:
    return [f.name for f in dataclasses.fields(ref_cls)]


def ref_fields(value: Any, ref_cls: type) -> Dict[str, Any]:
    """``dataclasses.asdict(value)`` restricted to ``ref_cls``'s field names, in its order."""
    d = dataclasses.asdict(value)
    return {name: d[name] for name in ref_names(ref_cls)}


def extra_fields(value: Any, ref_cls: type) -> Dict[str, Any]:
    """Our fields beyond the reference's."""
    names = set(ref_names(ref_cls))
    return {k: v for k, v in dataclasses.asdict(value).items() if k not in names}

