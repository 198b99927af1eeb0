"""The first check: a whole answer and a stream from the mock, through the public API."""

import mamba_backends as mb


async def test_complete_and_stream(mock):
    server = mock()
    backend = mb.OpenAICompatibleBackend("mock-model", base_url=server.base_url)
    response = await backend.complete([{"role": "user", "content": "Hello there"}])
    assert response == mb.ModelResponse(
        content="Hello there",
        usage={"input_tokens": 5, "output_tokens": 2, "total_tokens": 7},
        model="mock-model",
        finish_reason="stop",
    )
    text = "".join([c.content async for c in backend.stream([{"role": "user", "content": "a b c"}])])
    assert text == "a b c"
    await backend.close()


async def test_reference_loads(reference):
    assert reference.OpenAICompatibleBackend("m").name == "openai_compatible"
