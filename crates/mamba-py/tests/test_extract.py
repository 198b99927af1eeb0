"""`backend.extract(...)`: structured output against mamba-mock (the `mock` fixture).

Covers: a Pydantic model extracted (its schema asked for, an instance returned); a malformed
answer repaired with no second request; a retry whose request carries the validation errors;
`InvalidOutputError` with every attempt's ``(text, error)``; a dict JSON Schema (the plain
value returned); an answer cut by the token limit (`TruncatedError`); the model class's own
validators; and wrong arguments refused before any request.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import pytest
from pydantic import BaseModel, Field, field_validator

import mamba_backends as mb

USER = [{"role": "user", "content": "Ann is 31."}]


class Person(BaseModel):
    name: str
    age: int = Field(ge=0)
    email: Optional[str] = None


def backend(server: Any) -> mb.OpenAICompatibleBackend:
    return mb.OpenAICompatibleBackend("mock-model", base_url=server.base_url, max_retries=0)


def always(text: str, **reply: Any) -> Dict[str, Any]:
    return {"rules": [{"reply": {"text": text, **reply}}]}


async def test_extract_returns_an_instance_of_the_pydantic_model(mock):
    b = backend(mock(always('{"name": "Ann", "age": 31, "email": null}')))
    person = await b.extract(Person, USER)
    assert isinstance(person, Person)
    assert person == Person(name="Ann", age=31)


async def test_a_malformed_answer_is_repaired_without_a_second_request(mock):
    # One attempt only: the value can come from the first answer alone.
    text = 'Here you go:\n```json\n{"name": "Bo", "age": 4,}\n```\nAnything else?'
    b = backend(mock(always(text)))
    person = await b.extract(Person, USER, attempts=1)
    assert person == Person(name="Bo", age=4)


async def test_a_retry_sends_the_validation_errors_back(mock):
    # The valid answer comes only to a request whose last message names the broken bound.
    script = {
        "rules": [
            {"match": {"contains": "minimum"}, "reply": {"text": '{"name": "Cy", "age": 3}'}},
            {"reply": {"text": '{"name": "Cy", "age": -3}'}},
        ]
    }
    b = backend(mock(script))
    person = await b.extract(Person, USER, attempts=2)
    assert person == Person(name="Cy", age=3)
    with pytest.raises(mb.InvalidOutputError):
        await b.extract(Person, USER, attempts=1)


async def test_invalid_output_error_carries_every_attempt(mock):
    b = backend(mock(always('{"name": "Di"}')))
    with pytest.raises(mb.InvalidOutputError) as caught:
        await b.extract(Person, USER, attempts=2)
    error = caught.value
    assert isinstance(error, mb.ModelBackendError)
    assert error.kind == "invalid_output"
    assert error.retryable is False
    assert len(error.attempts) == 2
    for text, problem in error.attempts:
        assert text == '{"name": "Di"}'
        assert problem is not None and "age" in problem


async def test_a_dict_schema_gives_the_plain_value(mock):
    schema: Dict[str, Any] = {
        "type": "object",
        "properties": {"tags": {"type": "array", "items": {"type": "string"}}},
        "required": ["tags"],
    }
    b = backend(mock(always('{"tags": ["a", "b"]}')))
    value = await b.extract(schema, USER, mode="json_object", temperature=0)
    assert value == {"tags": ["a", "b"]}
    # The text modes, also spelt with dashes (tool mode reads a tool call, which this mock
    # does not send).
    for mode in ("auto", "json-schema", "prompt"):
        assert await b.extract(schema, USER, mode=mode) == {"tags": ["a", "b"]}


async def test_an_answer_cut_by_the_token_limit_is_truncated(mock):
    b = backend(mock(always('{"name": "Ev', finish_reason="length")))
    with pytest.raises(mb.TruncatedError):
        await b.extract(Person, USER)


async def test_the_model_class_own_validators_apply(mock):
    class Upper(BaseModel):
        name: str

        @field_validator("name")
        @classmethod
        def capitalised(cls, v: str) -> str:
            if not v[:1].isupper():
                raise ValueError("the name must be capitalised")
            return v

    b = backend(mock(always('{"name": "fay"}')))
    with pytest.raises(mb.InvalidOutputError) as caught:
        await b.extract(Upper, USER)
    assert "capitalised" in str(caught.value)
    assert caught.value.attempts and caught.value.attempts[0][0] == '{"name": "fay"}'


async def test_wrong_arguments_raise_before_any_request(mock):
    b = backend(mock(always("{}")))

    class NotAModel:
        pass

    bad: List[Any] = [42, NotAModel, "a schema"]
    for schema in bad:
        with pytest.raises(TypeError):
            await b.extract(schema, USER)
    with pytest.raises(ValueError):
        await b.extract(Person, USER, mode="xml")
    with pytest.raises(ValueError):
        await b.extract(Person, USER, attempts=0)
    with pytest.raises(TypeError):
        await b.extract(Person, "not a list")  # type: ignore[arg-type]
    with pytest.raises(mb.ConfigurationError):
        await b.extract({"type": 12}, USER)
