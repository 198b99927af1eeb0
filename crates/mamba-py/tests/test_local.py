"""The built-in model from Python: ``await mamba_backends.local()`` runs SmolLM2-135M in process.

The model file is the one ``scripts/fetch-model.sh`` put in the cache (``~/.cache/mamba``);
``MAMBA_SKIP_LOCAL_MODEL=1`` skips these tests, as it skips the Rust ones.
"""

from __future__ import annotations

import os

import pytest

import mamba_backends as mb

pytestmark = pytest.mark.skipif(os.environ.get("MAMBA_SKIP_LOCAL_MODEL") == "1", reason="MAMBA_SKIP_LOCAL_MODEL=1")

QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


async def test_local_answers_whole_and_streamed():
    backend = await mb.local(threads=2)
    assert isinstance(backend, mb.ModelBackend)
    assert backend.name == "local"
    whole = await backend.complete(QUESTION, max_tokens=8, temperature=0)
    assert "Paris" in whole.content
    assert whole.finish_reason in ("stop", "length")
    assert whole.usage is not None and whole.usage["input_tokens"] > 0
    chunks = [c async for c in backend.stream(QUESTION, max_tokens=8, temperature=0)]
    assert chunks[-1].is_final
    assert "".join(c.content for c in chunks) == whole.content
    assert await backend.health_check()
    await backend.close()


async def test_local_refuses_tools_with_its_error():
    backend = await mb.local(threads=1)
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    with pytest.raises(mb.UnsupportedError) as caught:
        await backend.complete(QUESTION, tools=tools)
    assert caught.value.kind == "unsupported"


async def test_local_missing_file_is_a_configuration_error(tmp_path):
    with pytest.raises(mb.ModelBackendError) as caught:
        await mb.local(str(tmp_path / "missing.gguf"))
    assert "does not exist" in str(caught.value)
