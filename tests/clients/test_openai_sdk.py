"""The official `openai` Python SDK against the gateway, every upstream kind."""

import json

import openai
import pytest

from conftest import PROVIDERS

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture()
def client(gateway):
    return openai.OpenAI(base_url=f"{gateway}/v1", api_key="client-key", max_retries=0, timeout=20)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_chat_completion(client, provider):
    r = client.chat.completions.create(
        model=f"{provider}/m1",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "ping 7"}],
    )
    assert "You said: ping 7" in r.choices[0].message.content
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0


@pytest.mark.parametrize("provider", PROVIDERS)
def test_chat_stream_with_usage(client, provider):
    stream = client.chat.completions.create(
        model=f"{provider}/m1~chunks=6",
        messages=[{"role": "user", "content": "stream please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, usage, deltas = "", None, None, 0
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            if c.delta.content:
                text += c.delta.content
                deltas += 1
            if c.finish_reason:
                finish = c.finish_reason
    assert "You said: stream please" in text
    assert deltas >= 6
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens > 0


@pytest.mark.parametrize("provider", PROVIDERS)
def test_tool_round_trip(client, provider):
    messages = [{"role": "user", "content": "weather in Paris?"}]
    r = client.chat.completions.create(model=f"{provider}/m~tool", messages=messages, tools=[WEATHER])
    msg = r.choices[0].message
    assert r.choices[0].finish_reason == "tool_calls"
    call = msg.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "sample"}
    # Send the assistant message back exactly as the SDK returned it.
    messages.append(msg.model_dump(exclude_none=False))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"})
    r2 = client.chat.completions.create(model=f"{provider}/m", messages=messages, tools=[WEATHER])
    assert "Tool result received: sunny, 21C" in r2.choices[0].message.content


@pytest.mark.parametrize("provider", PROVIDERS)
def test_parallel_tool_calls_streamed(client, provider):
    second = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}}}
    stream = client.chat.completions.create(
        model=f"{provider}/m~tool~parallel",
        messages=[{"role": "user", "content": "weather and time"}],
        tools=[WEATHER, second],
        stream=True,
    )
    calls = {}
    for chunk in stream:
        for c in chunk.choices:
            for tc in c.delta.tool_calls or []:
                entry = calls.setdefault(tc.index, {"id": None, "name": None, "args": ""})
                if tc.id:
                    entry["id"] = tc.id
                if tc.function and tc.function.name:
                    entry["name"] = tc.function.name
                if tc.function and tc.function.arguments:
                    entry["args"] += tc.function.arguments
    assert len(calls) == 2, calls
    assert all(c["id"] for c in calls.values())
    assert len({c["id"] for c in calls.values()}) == 2
    for c in calls.values():
        json.loads(c["args"])


@pytest.mark.parametrize("provider", PROVIDERS)
def test_responses_api(client, provider):
    r = client.responses.create(model=f"{provider}/m", instructions="Be brief.", input="hello responses")
    assert "You said: hello responses" in r.output_text
    assert r.usage.input_tokens > 0


@pytest.mark.parametrize("provider", PROVIDERS)
def test_responses_stream_and_function_call(client, provider):
    text = ""
    with client.responses.stream(model=f"{provider}/m~chunks=4", input="streamed responses") as s:
        for ev in s:
            if ev.type == "response.output_text.delta":
                text += ev.delta
        final = s.get_final_response()
    assert "You said: streamed responses" in text
    assert final.status == "completed"
    tool = {"type": "function", "name": "get_weather", "parameters": WEATHER["function"]["parameters"]}
    r = client.responses.create(model=f"{provider}/m~tool", input="weather?", tools=[tool])
    calls = [o for o in r.output if o.type == "function_call"]
    assert calls and calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments) == {"city": "sample"}


def test_errors_are_typed(client):
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope/x", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model="mock-anthropic/m~status=429~retry-after=1", messages=[{"role": "user", "content": "x"}])
    assert e.value.response.headers["retry-after"] == "1"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="mock-openai/m", messages="not a list")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_cut_stream_raises(client, provider):
    stream = client.chat.completions.create(
        model=f"{provider}/m~chunks=10~cut=3", messages=[{"role": "user", "content": "x"}], stream=True
    )
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass
