"""The official OpenAI SDK's Chat Completions through the gateway, to every upstream kind."""

from __future__ import annotations

import json

import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState

from support import (
    TIME_SCHEMA,
    WEATHER_SCHEMA,
    greeting,
    json_object,
    kinds,
    model,
    tool_reply,
    upstream_tool_link,
    upstream_tool_results,
)

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": WEATHER_SCHEMA,
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "Current time in a time zone",
            "parameters": TIME_SCHEMA,
        },
    },
]


@kinds
def test_chat_non_stream(openai_client, kind):
    resp = openai_client.chat.completions.create(
        model=model(kind),
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "ping from chat"},
        ],
        max_tokens=64,
    )
    assert resp.object == "chat.completion"
    assert resp.id
    assert len(resp.choices) == 1
    choice = resp.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == greeting(kind, "ping from chat")
    assert choice.finish_reason == "stop"
    assert not choice.message.tool_calls
    assert resp.usage.prompt_tokens > 0
    assert resp.usage.completion_tokens > 0
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens


@kinds
def test_chat_stream_with_usage(openai_client, kind):
    stream = openai_client.chat.completions.create(
        model=model(kind, "chunks=5"),
        messages=[{"role": "user", "content": "stream me"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks, "the stream had no chunk"
    assert len({c.id for c in chunks}) == 1, "chunk ids differ within one completion"
    assert all(c.object == "chat.completion.chunk" for c in chunks)

    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    text = "".join(c.choices[0].delta.content for c in content_chunks)
    assert text == greeting(kind, "stream me")
    # The mock sends 5 text deltas: each reaches the client as it comes.
    assert len(content_chunks) >= 5, f"the text came in {len(content_chunks)} chunk(s), not 5"

    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]

    # With include_usage the last chunk has no choices and carries the usage.
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.prompt_tokens > 0
    assert last.usage.completion_tokens > 0
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])


@kinds
def test_chat_stream_without_usage_has_none(openai_client, kind):
    chunks = list(
        openai_client.chat.completions.create(
            model=model(kind),
            messages=[{"role": "user", "content": "no usage please"}],
            stream=True,
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == greeting(kind, "no usage please")
    assert all(c.usage is None for c in chunks)


@kinds
@pytest.mark.parametrize("as_sent", ["sdk-object", "model_dump"])
def test_chat_tool_round_trip(openai_client, kind, as_sent):
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = openai_client.chat.completions.create(
        model=model(kind, "tool"), messages=messages, tools=TOOLS
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert calls and len(calls) == 1
    call = calls[0]
    assert call.type == "function"
    assert call.id
    assert call.function.name == "get_weather"
    # The mock fills each required property with a sample value.
    assert json_object(call.function.arguments) == {"city": "sample"}

    # Send the assistant message back exactly as the SDK returned it: the
    # object itself, or its full dump (every field, nulls included).
    messages.append(choice.message if as_sent == "sdk-object" else choice.message.model_dump())
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"})
    second = openai_client.chat.completions.create(
        model=model(kind), messages=messages, tools=TOOLS
    )
    reply = second.choices[0]
    assert reply.finish_reason == "stop"
    assert not reply.message.tool_calls
    assert reply.message.content == tool_reply("sunny, 21C")


@kinds
def test_chat_tool_ids_match_upstream(openai_client, kind):
    """The tool call and its result reach the upstream linked to each other."""
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = openai_client.chat.completions.create(
        model=model(kind, "tool"), messages=messages, tools=TOOLS
    )
    call = first.choices[0].message.tool_calls[0]
    messages.append(first.choices[0].message)
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"})
    echo = openai_client.chat.completions.create(
        model=model(kind, "echo-request"), messages=messages, tools=TOOLS
    )
    upstream = json.loads(echo.choices[0].message.content)
    calls, results = upstream_tool_link(kind, upstream)
    assert len(calls) == 1 and calls == results, (calls, results)
    if kind != "gemini":
        # The upstream gets back the very ID the client saw.
        assert calls == [call.id]
    assert "sunny, 21C" in echo.choices[0].message.content


@kinds
def test_chat_tool_call_named(openai_client, kind):
    resp = openai_client.chat.completions.create(
        model=model(kind, "tool=get_time"),
        messages=[{"role": "user", "content": "What time is it in Tokyo?"}],
        tools=TOOLS,
    )
    calls = resp.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_time"]
    assert isinstance(json_object(calls[0].function.arguments).get("timezone"), str)


@kinds
def test_chat_stream_tool_call(openai_client, kind):
    stream = openai_client.chat.completions.create(
        model=model(kind, "tool"),
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=TOOLS,
        stream=True,
    )
    calls: dict[int, dict] = {}
    finish = []
    for chunk in stream:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        for tc in delta.tool_calls or []:
            acc = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
            if tc.id:
                assert acc["id"] in (None, tc.id), "a tool call's id changed mid-stream"
                acc["id"] = tc.id
            if tc.function and tc.function.name:
                acc["name"] += tc.function.name
            if tc.function and tc.function.arguments:
                acc["arguments"] += tc.function.arguments
        if chunk.choices[0].finish_reason:
            finish.append(chunk.choices[0].finish_reason)
    assert finish == ["tool_calls"]
    assert list(calls) == [0]
    assert calls[0]["id"]
    assert calls[0]["name"] == "get_weather"
    assert isinstance(json_object(calls[0]["arguments"]).get("city"), str)


@kinds
def test_chat_parallel_tool_calls(openai_client, kind):
    messages = [{"role": "user", "content": "Weather in Paris and time in Tokyo?"}]
    first = openai_client.chat.completions.create(
        model=model(kind, "parallel"), messages=messages, tools=TOOLS
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 2, calls
    assert calls[0].id != calls[1].id
    for c in calls:
        assert c.id
        assert c.function.name in {"get_weather", "get_time"}
        json_object(c.function.arguments)

    messages.append(choice.message)
    results = ["result-one", "result-two"]
    for c, r in zip(calls, results):
        messages.append({"role": "tool", "tool_call_id": c.id, "content": r})
    second = openai_client.chat.completions.create(
        model=model(kind), messages=messages, tools=TOOLS
    )
    text = second.choices[0].message.content
    assert second.choices[0].finish_reason == "stop"
    assert "Tool result received: " in text

    # Both results reach the upstream, each answering its own call (the
    # mock's reply above may quote only the last one).
    echo = openai_client.chat.completions.create(
        model=model(kind, "echo-request"), messages=messages, tools=TOOLS
    )
    upstream = upstream_tool_results(kind, json.loads(echo.choices[0].message.content))
    link = {c.id: (c.function.name if kind == "gemini" else c.id) for c in calls}
    assert upstream == {link[c.id]: r for c, r in zip(calls, results)}, upstream


@kinds
def test_chat_parallel_tool_calls_streamed(openai_client, kind):
    stream = openai_client.chat.completions.create(
        model=model(kind, "parallel"),
        messages=[{"role": "user", "content": "Weather in Paris and time in Tokyo?"}],
        tools=TOOLS,
        stream=True,
    )
    calls: dict[int, dict] = {}
    finish = []
    for chunk in stream:
        for c in chunk.choices:
            for tc in c.delta.tool_calls or []:
                acc = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
                if tc.id:
                    acc["id"] = tc.id
                if tc.function and tc.function.name:
                    acc["name"] += tc.function.name
                if tc.function and tc.function.arguments:
                    acc["arguments"] += tc.function.arguments
            if c.finish_reason:
                finish.append(c.finish_reason)
    assert finish == ["tool_calls"]
    assert sorted(calls) == [0, 1], calls
    assert calls[0]["id"] and calls[1]["id"] and calls[0]["id"] != calls[1]["id"]
    assert [calls[i]["name"] for i in (0, 1)] == ["get_weather", "get_time"]
    assert json_object(calls[0]["arguments"]) == {"city": "sample"}
    assert json_object(calls[1]["arguments"]) == {"timezone": "sample"}


@kinds
def test_chat_request_reaches_upstream(openai_client, kind):
    """The upstream sees the user's text and the tool definitions (via ~echo-request)."""
    resp = openai_client.chat.completions.create(
        model=model(kind, "echo-request"),
        messages=[{"role": "user", "content": "echo marker 7f3a"}],
        tools=TOOLS,
    )
    body = resp.choices[0].message.content
    assert "echo marker 7f3a" in body
    assert "get_weather" in body and "get_time" in body
    # The gateway model prefix (`provider/`) never reaches the upstream.
    assert "mock-" not in body


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_chat_tool_loop_with_thinking_keeps_its_signature(openai_client, stream):
    """Reasoning on, tools, a Claude model: the signed thinking of the answer
    comes back inside the message the SDK returned, and the second turn
    reaches Anthropic with thinking still on (its mock refuses, as the API
    does, a tool loop whose calling turn lost the signed block)."""
    kind = "anthropic"
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    first = dict(
        model=model(kind, "think", "tool"), messages=messages, tools=TOOLS, reasoning_effort="high"
    )
    if stream:
        # The SDK's own accumulator builds the message from the deltas.
        state = ChatCompletionStreamState()
        for chunk in openai_client.chat.completions.create(**first, stream=True):
            state.handle_chunk(chunk)
        message = state.get_final_completion().choices[0].message
    else:
        message = openai_client.chat.completions.create(**first).choices[0].message
    call = message.tool_calls[0]
    messages.append(message)
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"})

    echo = openai_client.chat.completions.create(
        model=model(kind, "think", "echo-request"),
        messages=messages,
        tools=TOOLS,
        reasoning_effort="high",
    )
    upstream = json.loads(echo.choices[0].message.content)
    assert upstream["thinking"]["type"] == "enabled", upstream
    calling_turn = upstream["messages"][1]["content"]
    assert calling_turn[0]["type"] == "thinking", calling_turn
    assert calling_turn[0]["signature"].startswith("mock-signature-")

    second = openai_client.chat.completions.create(
        model=model(kind, "think"), messages=messages, tools=TOOLS, reasoning_effort="high"
    )
    assert second.choices[0].message.content == tool_reply("sunny, 21C")
