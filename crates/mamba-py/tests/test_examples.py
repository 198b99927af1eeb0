"""The examples in crates/mamba-py/examples run and type-check.

Covers: ``quick_example.py`` (the reference's Quick Example with only the import lines
changed) answers one completion against the mock given on the command line, and against the
mock it starts itself without one; ``tool_loop.py`` runs a tool round trip against a mock
that calls ``get_weather`` and then answers from the tool's result; both pass
``mypy --strict``, with the package and its ``_native`` stub.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout)


def test_quick_example_against_the_mock(mock):
    server = mock()
    proc = run(str(EXAMPLES / "quick_example.py"), server.base_url)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "Hello from the quick example"


def test_quick_example_starts_its_own_mock():
    from conftest import mamba_llm

    env = dict(os.environ, MAMBA_LLM_BIN=mamba_llm())
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "quick_example.py")], capture_output=True, text=True, timeout=60, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "Hello from the quick example"


def test_tool_loop_against_the_mock(mock):
    script = {
        "rules": [
            {"match": {"role": "tool"}, "reply": {"text": "It is 18C and sunny in Paris."}},
            {"reply": {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}},
        ]
    }
    server = mock(script)
    proc = run(str(EXAMPLES / "tool_loop.py"), server.base_url)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "It is 18C and sunny in Paris."


def test_tool_loop_reports_a_failure(mock):
    server = mock({"rules": [{"reply": {"status": 401}}]})
    proc = run(str(EXAMPLES / "tool_loop.py"), server.base_url)
    assert proc.returncode == 1
    assert "the model failed" in proc.stderr


def test_examples_pass_mypy_strict(tmp_path):
    pytest.importorskip("mypy")
    proc = run(
        "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"), str(EXAMPLES),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _quick_example_block() -> str:
    text = (EXAMPLES / "quick_example.py").read_text()
    start = text.index("from mamba_backends import OpenAICompatibleBackend")
    end = text.index("backend = create_lmstudio_backend()") + len("backend = create_lmstudio_backend()")
    return text[start:end]


def test_quick_example_is_the_reference_one():
    """The block is the reference's Quick Example, with only the imports changed."""
    block = _quick_example_block()
    assert "mamba_agents" not in block
    assert block.count("from mamba_backends import") == 2
    reference = block.replace("from mamba_backends import", "from mamba_agents.backends import")
    for line in (
        "from mamba_agents.backends import OpenAICompatibleBackend",
        '    model="my-model",',
        '    base_url="http://localhost:8000/v1",',
        '    api_key="optional-key",',
        'backend = create_ollama_backend("llama3.2")',
        'backend = create_vllm_backend("meta-llama/Llama-3.2-3B-Instruct")',
        "backend = create_lmstudio_backend()",
    ):
        assert line in reference.splitlines(), line


def test_readme_python_example_is_the_quick_example():
    """The README's Python section shows this file's Quick Example."""
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    blocks = [b.split("\n", 1)[1] for b in readme.split("```python")[1:]]
    blocks = [b.split("```", 1)[0] for b in blocks if "from mamba_backends import OpenAICompatibleBackend" in b]
    assert blocks, "README.md has no Python block with the Quick Example"
    assert any(_quick_example_block().strip() in b for b in blocks), "README's Python example differs from examples/quick_example.py"
