"""The reference's Quick Example (mamba_agents.backends docs) with only the import lines
changed to ``mamba_backends``, and a ``main()`` that runs one completion.

Run: ``python examples/quick_example.py [BASE_URL]``. Without a base URL it starts the mock
server (``mamba-llm mock``; ``$MAMBA_LLM_BIN`` or ``mamba-llm`` on PATH) and asks it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import List, Optional, Tuple

from mamba_backends import OpenAICompatibleBackend

# Direct instantiation
backend = OpenAICompatibleBackend(
    model="my-model",
    base_url="http://localhost:8000/v1",
    api_key="optional-key",
)

# Or use factory functions
from mamba_backends import (
    create_ollama_backend,
    create_vllm_backend,
    create_lmstudio_backend,
)

# Ollama
backend = create_ollama_backend("llama3.2")

# vLLM
backend = create_vllm_backend("meta-llama/Llama-3.2-3B-Instruct")

# LM Studio
backend = create_lmstudio_backend()


async def ask(base_url: str, question: str) -> str:
    """One completion from the server at ``base_url``."""
    async with OpenAICompatibleBackend(model="my-model", base_url=base_url) as client:
        response = await client.complete([{"role": "user", "content": question}])
        return response.content


def _start_mock() -> Tuple["subprocess.Popen[str]", str]:
    binary = os.environ.get("MAMBA_LLM_BIN", "mamba-llm")
    proc = subprocess.Popen([binary, "mock", "--port", "0"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"could not start {binary} mock: give a base URL instead")
    return proc, line.split("listening on", 1)[1].strip()


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    mock = None
    if args:
        base_url = args[0]
    else:
        mock, base_url = _start_mock()
    try:
        print(asyncio.run(ask(base_url, "Hello from the quick example")))
    finally:
        if mock is not None:
            mock.terminate()
            mock.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
