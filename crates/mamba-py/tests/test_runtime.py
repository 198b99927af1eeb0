"""How the package behaves in a Python process: cancellation, concurrency, the GIL, event
loops, fork and Ctrl-C.

Covers: a cancelled asyncio task (during a request, during a stream) closes its connection
within 2 s, seen by the recording server; ``break`` out of ``async for`` mid-stream closes
or reuses the connection, never leaks it (open connections counted at the server);
1,000 concurrent streams against mamba-mock all complete with all their chunks; the GIL is
released while a request waits (a Python thread keeps counting); the same calls under
uvloop; several event loops in threads at once, sharing one backend; a child forked after
the runtime started gets the RuntimeError that says what to do, and one forked before can
use the package (both in a subprocess); SIGINT stops a subprocess streaming from a hanging
server promptly (< 3 s); chunks that arrive together reach Python in one wake-up. The
autouse fixture ``leaves_nothing_running`` (conftest.py) checks after every test of the suite
that it left no Python thread and no child process running.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Callable, List

import pytest
from recording_server import Reply, completion, text_events

import mamba_backends as mb

USER = [{"role": "user", "content": "Hello there"}]
HERE = Path(__file__).resolve().parent


def backend(url: str, **kwargs: Any) -> mb.OpenAICompatibleBackend:
    kwargs.setdefault("max_retries", 0)
    return mb.OpenAICompatibleBackend("rec-model", base_url=url, **kwargs)


async def until(predicate: Callable[[], bool], timeout: float) -> bool:
    """Polls without blocking the event loop."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return predicate()


# -- cancellation ---------------------------------------------------------------------------


async def test_cancelled_request_closes_its_connection(recording):
    recording.set(Reply.hanging())
    b = backend(recording.base_url)
    task = asyncio.ensure_future(b.complete(USER))
    assert await until(lambda: recording.open_connections == 1 and len(recording.requests) == 1, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    cancelled_at = time.monotonic()
    assert await until(lambda: recording.open_connections == 0, 2), "the connection stayed open after cancel"
    assert time.monotonic() - cancelled_at < 2
    # The backend still works afterwards.
    recording.set(Reply.json(completion("after")))
    assert (await b.complete(USER)).content == "after"


async def test_wait_for_timeout_cancels_the_request(recording):
    recording.set(Reply.hanging())
    b = backend(recording.base_url)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(b.complete(USER), 0.3)
    assert await until(lambda: recording.total_connections == 1 and recording.open_connections == 0, 2)


async def test_cancelled_stream_closes_its_connection(recording):
    recording.set(Reply.sse(text_events(["a", "b", "c"]), hang_after=2))
    b = backend(recording.base_url)
    got: List[str] = []

    async def consume() -> None:
        async for c in b.stream(USER):
            got.append(c.content)

    task = asyncio.ensure_future(consume())
    assert await until(lambda: "a" in got, 5)
    assert recording.open_connections == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await until(lambda: recording.open_connections == 0, 2), "the stream's connection stayed open after cancel"


async def test_break_mid_stream_closes_the_connection(recording):
    """The server keeps the stream open: after ``break`` the connection must be closed."""
    recording.set(Reply.sse(text_events(["a", "b", "c"]), hang_after=3))
    b = backend(recording.base_url)
    for _ in range(5):
        async for c in b.stream(USER):
            if c.content == "a":
                break
    gc.collect()
    assert await until(lambda: recording.open_connections == 0, 2), f"{recording.open_connections} connections leaked"
    assert recording.total_connections == 5


async def test_break_from_a_finished_stream_reuses_or_closes(recording):
    """The whole stream was sent: after ``break`` its connection is closed or reused, so many
    early exits leave at most one connection open."""
    recording.set(Reply.sse(text_events([f"w{i} " for i in range(200)])))
    b = backend(recording.base_url)
    for _ in range(20):
        async for c in b.stream(USER):
            if c.content:
                break
    recording.set(Reply.json(completion("done")))
    assert (await b.complete(USER)).content == "done"
    gc.collect()
    assert await until(lambda: recording.open_connections <= 1, 2), f"{recording.open_connections} connections open"
    await b.close()


async def test_aclose_mid_stream_closes_the_connection(recording):
    recording.set(Reply.sse(text_events(["a", "b"]), hang_after=2))
    b = backend(recording.base_url)
    stream = b.stream(USER)
    assert (await stream.__anext__()).content == ""
    await stream.aclose()
    assert await until(lambda: recording.open_connections == 0, 2)


# -- concurrency ----------------------------------------------------------------------------


async def test_a_thousand_concurrent_streams(mock):
    words = [f"w{i}" for i in range(20)]
    server = mock({"rules": [{"reply": {"text": " ".join(words)}}]})
    b = mb.OpenAICompatibleBackend("mock-model", base_url=server.base_url, max_retries=0, timeout=30)

    async def one(i: int) -> List[mb.StreamChunk]:
        return [c async for c in b.stream([{"role": "user", "content": f"n{i}"}])]

    started = time.monotonic()
    results = await asyncio.gather(*(one(i) for i in range(1000)))
    elapsed = time.monotonic() - started
    assert len(results) == 1000
    for chunks in results:
        assert "".join(c.content for c in chunks) == " ".join(words)
        assert sum(1 for c in chunks if c.content) == len(words)
        assert chunks[-1].is_final
    assert elapsed < 20, f"1000 streams took {elapsed:.1f} s"
    await b.close()


class _CountingNative:
    """Wraps a NativeStream, counting the batches (wake-ups) it hands over."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.batches = 0

    def next_batch(self, waker: Any, future: Any) -> Any:
        self.batches += 1
        return self.inner.next_batch(waker, future)

    def close(self) -> None:
        self.inner.close()


async def test_chunks_that_arrive_together_come_in_one_wake_up(recording):
    """A stream whose events arrive in one write is handed over in a few batches, not one
    wake-up per chunk."""
    import json

    events = text_events([f"w{i} " for i in range(200)])
    raw = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    recording.set(Reply(raw_stream=raw))
    b = backend(recording.base_url)
    stream = b.stream(USER)
    counting = _CountingNative(stream._native)
    stream._native = counting
    chunks = [c async for c in stream]
    assert "".join(c.content for c in chunks) == "".join(f"w{i} " for i in range(200))
    assert len(chunks) >= 200
    # One call more than the batches with chunks: the last one returns [] at the end.
    assert counting.batches <= 20, f"{counting.batches} wake-ups for {len(chunks)} chunks"


async def test_gil_released_while_a_request_waits(mock):
    """A Python thread keeps counting while the event loop awaits a slow answer, about as
    fast as while it awaits a plain sleep."""
    server = mock({"rules": [{"reply": {"text": "slow", "delay_ms": 600}}]})
    b = mb.OpenAICompatibleBackend("mock-model", base_url=server.base_url, max_retries=0)
    count = [0]
    stop = threading.Event()

    def counter() -> None:
        while not stop.is_set():
            count[0] += 1

    t = threading.Thread(target=counter)
    t.start()
    try:
        before = count[0]
        await asyncio.sleep(0.6)
        baseline = count[0] - before
        before = count[0]
        assert (await b.complete(USER)).content == "slow"
        during = count[0] - before
    finally:
        stop.set()
        t.join()
    assert baseline > 0
    assert during > baseline * 0.3, (during, baseline)


def test_gil_released_in_a_blocking_thread(mock):
    """A thread that runs a request with ``asyncio.run`` does not stop the main thread."""
    server = mock({"rules": [{"reply": {"text": "slow", "delay_ms": 500}}]})
    result: List[str] = []

    def worker() -> None:
        b = mb.OpenAICompatibleBackend("mock-model", base_url=server.base_url, max_retries=0)
        result.append(asyncio.run(b.complete(USER)).content)

    t = threading.Thread(target=worker)
    t.start()
    n = 0
    started = time.monotonic()
    while t.is_alive():
        n += 1
    t.join()
    assert result == ["slow"]
    assert time.monotonic() - started >= 0.4
    assert n > 10_000


# -- event loops ----------------------------------------------------------------------------


async def _calls(url: str, b: mb.OpenAICompatibleBackend) -> None:
    assert (await b.complete(USER)).content == "Hello there"
    assert "".join([c.content async for c in b.stream([{"role": "user", "content": "x y z"}])]) == "x y z"
    assert await b.health_check() is True
    task = asyncio.ensure_future(b.complete(USER))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_uvloop(mock):
    uvloop = pytest.importorskip("uvloop")
    server = mock()

    async def main() -> str:
        assert "uvloop" in type(asyncio.get_running_loop()).__module__
        b = mb.OpenAICompatibleBackend("mock-model", base_url=server.base_url, max_retries=0)
        await _calls(server.base_url, b)
        results = await asyncio.gather(*(b.complete([{"role": "user", "content": f"n{i}"}]) for i in range(50)))
        assert [r.content for r in results] == [f"n{i}" for i in range(50)]
        await b.close()
        return "ok"

    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            assert runner.run(main()) == "ok"
    else:  # pragma: no cover
        loop = uvloop.new_event_loop()
        try:
            assert loop.run_until_complete(main()) == "ok"
        finally:
            loop.close()


def test_several_event_loops_in_threads(mock):
    server = mock()
    shared = mb.OpenAICompatibleBackend("mock-model", base_url=server.base_url, max_retries=0)
    errors: List[BaseException] = []
    done: List[int] = []

    def worker(i: int) -> None:
        async def main() -> None:
            own = mb.OpenAICompatibleBackend("mock-model", base_url=server.base_url, max_retries=0)
            for _ in range(3):
                await _calls(server.base_url, shared)
                await _calls(server.base_url, own)
            await own.close()

        try:
            asyncio.run(main())
            done.append(i)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert sorted(done) == list(range(6))


# -- subprocesses: fork and SIGINT --------------------------------------------------------------


def _run(script: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args], capture_output=True, text=True, timeout=timeout, env=env
    )


FORK_SCRIPT = """
    import asyncio, os, sys, warnings
    warnings.simplefilter("ignore", DeprecationWarning)  # fork in a threaded process
    import mamba_backends as mb

    url = sys.argv[1]
    # Made before the fork but not used (gunicorn --preload, a prefork worker pool): the child
    # can use it, and the package.
    early = mb.OpenAICompatibleBackend("mock-model", base_url=url, max_retries=0)
    pid = os.fork()
    if pid == 0:
        b = mb.OpenAICompatibleBackend("mock-model", base_url=url, max_retries=0)
        ok = asyncio.run(b.complete([{"role": "user", "content": "child before"}])).content == "child before"
        ok = ok and asyncio.run(early.complete([{"role": "user", "content": "early"}])).content == "early"
        os._exit(0 if ok else 3)
    _, status = os.waitpid(pid, 0)
    print("before:", os.waitstatus_to_exitcode(status))

    parent = mb.OpenAICompatibleBackend("mock-model", base_url=url, max_retries=0)
    assert asyncio.run(parent.complete([{"role": "user", "content": "parent"}])).content == "parent"
    pid = os.fork()
    if pid == 0:
        code = 0
        for attempt in (
            lambda: mb.OpenAICompatibleBackend("mock-model", base_url=url),
            lambda: asyncio.run(parent.complete([{"role": "user", "content": "child after"}])),
            lambda: parent.stream([{"role": "user", "content": "child after"}]),
        ):
            try:
                attempt()
                code = 4
            except RuntimeError as e:
                text = str(e)
                if not ("fork" in text and "spawn" in text):
                    print("unclear message:", text, flush=True)
                    code = 5
            except BaseException as e:
                print("wrong error:", type(e).__name__, e, flush=True)
                code = 6
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    print("after:", os.waitstatus_to_exitcode(status))
    # The parent is unaffected.
    assert asyncio.run(parent.complete([{"role": "user", "content": "parent again"}])).content == "parent again"
    print("parent ok")
"""


def test_fork(mock):
    server = mock()
    proc = _run(FORK_SCRIPT, server.base_url)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "before: 0" in proc.stdout, proc.stdout + proc.stderr
    assert "after: 0" in proc.stdout, proc.stdout + proc.stderr
    assert "parent ok" in proc.stdout


SIGINT_SCRIPT = """
    import asyncio, sys
    import mamba_backends as mb

    async def main():
        b = mb.OpenAICompatibleBackend("rec-model", base_url=sys.argv[1], max_retries=0, timeout=600)
        print("started", flush=True)
        if sys.argv[2] == "stream":
            async for chunk in b.stream([{"role": "user", "content": "hi"}]):
                print("chunk", repr(chunk.content), flush=True)
        else:
            await b.complete([{"role": "user", "content": "hi"}])

    asyncio.run(main())
"""


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("call", ["stream", "complete"])
def test_keyboard_interrupt_stops_a_request(recording, call):
    if call == "stream":
        recording.set(Reply.sse(text_events(["a", "b"]), hang_after=2))
    else:
        recording.set(Reply.hanging())
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(SIGINT_SCRIPT), recording.base_url, call],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A child inherits an ignored SIGINT (a test run started in the background by a shell
        # without job control ignores it), and Python then installs no KeyboardInterrupt
        # handler: give the child the default, as a terminal's Ctrl-C would find it.
        preexec_fn=_default_sigint,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "started"
        if call == "stream":
            lines = [proc.stdout.readline() for _ in range(2)]
            assert "chunk 'a'" in lines[1], lines
        assert recording.wait_until(lambda: recording.open_connections == 1 and len(recording.requests) == 1, 10)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        elapsed = time.monotonic() - sent
        stderr = proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for f in (proc.stdout, proc.stderr):
            if f is not None:
                f.close()
    assert elapsed < 3, f"the process took {elapsed:.1f} s to stop after SIGINT"
    assert proc.returncode != 0
    assert "KeyboardInterrupt" in stderr or proc.returncode == -signal.SIGINT, stderr
    assert recording.wait_until(lambda: recording.open_connections == 0, 2)


EXIT_SCRIPT = """
    import asyncio, sys
    import mamba_backends as mb

    async def main():
        b = mb.OpenAICompatibleBackend("mock-model", base_url=sys.argv[1], max_retries=0)
        await b.complete([{"role": "user", "content": "x"}])
        await b.close()

    asyncio.run(main())
"""


def test_exit_right_after_the_last_await_does_not_crash(mock):
    """A program whose last ``await`` is ours exits cleanly. With pyo3-async-runtimes' bridge
    about one run in ten crashed with SIGSEGV here: a runtime thread handing the result over
    under the GIL was stopped by interpreter shutdown inside Rust code. Our bridge
    (src/bridge.rs) never takes the GIL on a runtime thread; many at once make a race likely."""
    server = mock()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(EXIT_SCRIPT), server.base_url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(32)
    ]
    codes = []
    for p in procs:
        _, err = p.communicate(timeout=60)
        codes.append((p.returncode, err[-300:]))
    assert all(code == 0 for code, _ in codes), [c for c in codes if c[0] != 0]


async def test_aclose_from_another_task_ends_a_waiting_stream(recording):
    """``aclose()`` while another task awaits the next chunk ends that task's ``async for`` at
    once and closes the connection (the server keeps the stream open, sending nothing)."""
    recording.set(Reply.sse(text_events(["one ", "two "]), hang_after=3))
    b = backend(recording.base_url)
    stream = b.stream(USER)
    got: List[str] = []

    async def consume() -> None:
        async for chunk in stream:
            got.append(chunk.content)

    task = asyncio.create_task(consume())
    for _ in range(250):
        if "two " in got:
            break
        await asyncio.sleep(0.02)
    assert recording.open_connections == 1
    await stream.aclose()
    await asyncio.wait_for(task, 2)
    assert "".join(got).startswith("one two")
    assert recording.wait_until(lambda: recording.open_connections == 0, 2)


async def test_deep_or_circular_input_is_a_value_error_not_a_crash(mock):
    """A message or keyword argument nested deeper than 128 levels, or containing itself, is
    refused with ValueError before any request (the conversion would overflow the stack)."""
    b = backend(mock().base_url)
    loop: List[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="metadata"):
        await b.complete(USER, metadata=loop)
    deep: Any = "x"
    for _ in range(200):
        deep = [deep]
    with pytest.raises(ValueError, match=r"messages\[0\]"):
        await b.complete([{"role": "user", "content": "x", "extra": deep}])
    fine: Any = "x"
    for _ in range(100):
        fine = [fine]
    assert (await b.complete(USER, metadata=fine)).content == "Hello there"


def test_huge_timeouts_are_value_errors():
    for arg in ("timeout", "total_timeout", "connect_timeout"):
        with pytest.raises(ValueError, match=arg):
            mb.OpenAICompatibleBackend("m", base_url="http://127.0.0.1:9/v1", **{arg: 1e30})


async def test_finish_chunk_carries_the_assembled_calls(mock):
    """Code that stops at the first ``is_final`` chunk (the finish) has the whole tool calls."""
    server = mock({"rules": [{"reply": {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}}]})
    b = backend(server.base_url)
    async for chunk in b.stream(USER):
        if chunk.is_final:
            assert chunk.finish_reason == "tool_calls"
            assert chunk.assembled_tool_calls is not None
            assert chunk.assembled_tool_calls[0]["function"]["name"] == "get_weather"
            break
    else:
        raise AssertionError("no final chunk")


def test_a_loop_per_call_does_not_leak_descriptors(mock):
    """``asyncio.run`` per request (a new loop each time, all kept referenced) leaves no file
    descriptors behind: each loop's waker closes once its loop is closed."""
    url = mock().base_url
    b = mb.OpenAICompatibleBackend("mock-model", base_url=url, max_retries=0)
    loops: List[Any] = []

    async def one() -> str:
        loops.append(asyncio.get_running_loop())
        return (await b.complete(USER)).content

    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    assert asyncio.run(one()) == "Hello there"
    before = fds()
    for _ in range(30):
        assert asyncio.run(one()) == "Hello there"
    assert fds() - before <= 4, f"{fds() - before} descriptors more after 30 loops"
