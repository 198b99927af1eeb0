"""Fixtures of the Python test suite: the mock server, the live peers, the reference package.

* ``mock``: a factory starting ``mamba-llm mock`` (the mamba-mock crate) on 127.0.0.1 with a
  script (a dict in mamba-mock's script format), stopped at the end of the test. The binary
  is ``$MAMBA_LLM_BIN``, else ``target/debug/mamba-llm`` of the repository.
* ``live``: the peers' URLs from the environment ``scripts/peers/up.sh`` writes (``live.env``).
  A live test whose peer is missing fails; ``MAMBA_SKIP_PEERS=1`` skips it.
* ``reference``: the reference implementation, mamba-agents 0.1.7's ``mamba_agents.backends``,
  loaded from the unpacked wheel in ``$MAMBA_REF_DIR`` behind empty parent packages (its
  package-level imports need pydantic-ai). Missing, its tests fail;
  ``MAMBA_SKIP_REFERENCE=1`` skips them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional

import pytest

if TYPE_CHECKING:
    from recording_server import RecordingServer

REPO = Path(__file__).resolve().parents[3]


def mamba_llm() -> str:
    return os.environ.get("MAMBA_LLM_BIN") or str(REPO / "target" / "debug" / "mamba-llm")


class MockServer:
    """A running ``mamba-llm mock``."""

    def __init__(self, script: Optional[Dict[str, Any]] = None, api_key: Optional[str] = None) -> None:
        binary = mamba_llm()
        if not os.path.exists(binary):
            raise RuntimeError(f"{binary} is missing: build it with `cargo build -p mamba-cli` or set MAMBA_LLM_BIN")
        self._dir = tempfile.TemporaryDirectory()
        args = [binary, "mock", "--port", "0"]
        if script is not None:
            path = Path(self._dir.name) / "script.json"
            path.write_text(json.dumps(script))
            args += ["--script", str(path)]
        if api_key is not None:
            args += ["--api-key", api_key]
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if "listening on" not in line:
            self.process.kill()
            err = self.process.stderr.read() if self.process.stderr else ""
            raise RuntimeError(f"mamba-llm mock did not start: {line!r} {err!r}")
        self.base_url = line.split("listening on", 1)[1].strip()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._dir.cleanup()


@pytest.fixture
def mock() -> Iterator[Callable[..., MockServer]]:
    started: List[MockServer] = []

    def start(script: Optional[Dict[str, Any]] = None, api_key: Optional[str] = None) -> MockServer:
        server = MockServer(script, api_key)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def _skip(var: str) -> bool:
    return os.environ.get(var, "0") == "1"


@pytest.fixture
def live() -> Callable[[str], str]:
    """``live("LLAMACPP")`` is ``$MAMBA_LIVE_LLAMACPP_URL``; a missing peer fails the test."""

    def url(name: str) -> str:
        if _skip("MAMBA_SKIP_PEERS"):
            pytest.skip("MAMBA_SKIP_PEERS=1")
        value = os.environ.get(f"MAMBA_LIVE_{name}_URL")
        if not value:
            pytest.fail(f"MAMBA_LIVE_{name}_URL is not set: start the peers with scripts/peers/up.sh and source live.env")
        return value

    return url


_REFERENCE: Optional[types.ModuleType] = None


@pytest.fixture
def reference() -> types.ModuleType:
    """The reference's ``mamba_agents.backends`` module."""
    global _REFERENCE
    if _skip("MAMBA_SKIP_REFERENCE"):
        pytest.skip("MAMBA_SKIP_REFERENCE=1")
    if _REFERENCE is None:
        ref_dir = os.environ.get("MAMBA_REF_DIR", "")
        root = Path(ref_dir) / "mamba_agents"
        if not (root / "backends" / "openai_compat.py").is_file():
            pytest.fail(f"the reference is not unpacked at MAMBA_REF_DIR={ref_dir!r}: run scripts/py-venv.sh")
        for name, sub in (("mamba_agents", root), ("mamba_agents.errors", root / "errors")):
            shim = types.ModuleType(name)
            shim.__path__ = [str(sub)]  # type: ignore[attr-defined]
            sys.modules[name] = shim
        import mamba_agents.backends as ref  # type: ignore[import-not-found]
        import mamba_agents.errors.exceptions as ref_errors  # type: ignore[import-not-found]

        ref.errors = ref_errors  # type: ignore[attr-defined]
        _REFERENCE = ref
    return _REFERENCE


@pytest.fixture
def recording() -> Iterator["RecordingServer"]:
    """A started `recording_server.RecordingServer` (records requests, counts connections),
    stopped at the end of the test."""
    from recording_server import RecordingServer

    server = RecordingServer().start()
    yield server
    server.stop()


def _children() -> "set[int]":
    """Pids of this process's children, from /proc (zombies included: they were not reaped)."""
    me = str(os.getpid())
    out = set()
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == me:
            out.add(int(entry))
    return out


@pytest.fixture(autouse=True)
def leaves_nothing_running() -> Iterator[None]:
    """Fails a test that leaves a Python thread or a child process (a mock server, a
    subprocess) running after its own fixtures are torn down."""
    import threading
    import time

    threads_before = set(threading.enumerate())
    children_before = _children()
    yield
    deadline = time.monotonic() + 5
    while True:
        threads = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
        children = _children() - children_before
        if (not threads and not children) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not threads, f"threads left running: {threads}"
    assert not children, f"child processes left running: {sorted(children)}"
