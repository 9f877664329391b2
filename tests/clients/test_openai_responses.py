"""The official OpenAI SDK's Responses API through the gateway, to every upstream kind."""

from __future__ import annotations

import json

import pytest

from support import WEATHER_SCHEMA, greeting, json_object, kinds, model, tool_reply

TOOLS = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": WEATHER_SCHEMA,
    }
]


@kinds
def test_responses_non_stream(openai_client, kind):
    resp = openai_client.responses.create(
        model=model(kind),
        instructions="You are terse.",
        input="ping from responses",
    )
    assert resp.object == "response"
    assert resp.id
    assert resp.status == "completed"
    assert resp.output_text == greeting(kind, "ping from responses")
    messages = [o for o in resp.output if o.type == "message"]
    assert len(messages) == 1
    assert messages[0].role == "assistant"
    assert resp.usage.input_tokens > 0
    assert resp.usage.output_tokens > 0
    assert resp.usage.total_tokens == resp.usage.input_tokens + resp.usage.output_tokens


@kinds
def test_responses_stream_text(openai_client, kind):
    with openai_client.responses.stream(
        model=model(kind, "chunks=4"),
        input=[{"role": "user", "content": "stream responses"}],
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    types = [e.type for e in events]
    assert types[0] == "response.created", types
    assert types[-1] == "response.completed", types
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) >= 2, f"text came in {len(deltas)} delta(s), not streamed"
    text = "".join(deltas)
    assert text == greeting(kind, "stream responses")
    done = [e.text for e in events if e.type == "response.output_text.done"]
    assert done == [text]
    assert final.status == "completed"
    assert final.output_text == text
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0
    # Sequence numbers are strictly increasing.
    seq = [e.sequence_number for e in events]
    assert seq == sorted(seq) and len(set(seq)) == len(seq), seq


@kinds
def test_responses_stream_true_iterates_events(openai_client, kind):
    stream = openai_client.responses.create(
        model=model(kind), input="plain stream=True", stream=True
    )
    events = list(stream)
    completed = [e for e in events if e.type == "response.completed"]
    assert len(completed) == 1
    assert completed[0].response.output_text == greeting(kind, "plain stream=True")


@kinds
def test_responses_function_call_round_trip(openai_client, kind):
    inputs = [{"role": "user", "content": "What is the weather in Rome?"}]
    first = openai_client.responses.create(model=model(kind, "tool"), input=inputs, tools=TOOLS)
    calls = [o for o in first.output if o.type == "function_call"]
    assert len(calls) == 1, first.output
    call = calls[0]
    assert call.name == "get_weather"
    assert call.call_id
    assert isinstance(json_object(call.arguments).get("city"), str)

    # The usual pattern: append the output items as returned, then the result.
    inputs += first.output
    inputs.append({"type": "function_call_output", "call_id": call.call_id, "output": "rainy, 12C"})
    second = openai_client.responses.create(model=model(kind), input=inputs, tools=TOOLS)
    assert second.status == "completed"
    assert second.output_text == tool_reply("rainy, 12C")
    assert not [o for o in second.output if o.type == "function_call"]


@kinds
def test_responses_stream_function_call(openai_client, kind):
    with openai_client.responses.stream(
        model=model(kind, "tool"),
        input="Weather in Lima?",
        tools=TOOLS,
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    types = [e.type for e in events]
    assert "response.output_item.added" in types
    arg_deltas = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    arg_done = [e.arguments for e in events if e.type == "response.function_call_arguments.done"]
    assert arg_done == [arg_deltas], (arg_done, arg_deltas)
    calls = [o for o in final.output if o.type == "function_call"]
    assert len(calls) == 1
    assert calls[0].name == "get_weather"
    assert calls[0].call_id
    assert json_object(calls[0].arguments) == json_object(arg_deltas)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_responses_tool_loop_with_thinking_keeps_its_signature(openai_client, stream):
    """Reasoning on, tools, a Claude model: the output items sent back as
    returned carry the signed thinking (in the reasoning item's
    `encrypted_content`), and the second turn reaches Anthropic with
    thinking still on (its mock refuses a tool loop that lost it)."""
    kind = "anthropic"
    inputs = [{"role": "user", "content": "What is the weather in Rome?"}]
    first = dict(
        model=model(kind, "think", "tool"), input=inputs, tools=TOOLS, reasoning={"effort": "high"}
    )
    if stream:
        with openai_client.responses.stream(**first) as s:
            for _ in s:
                pass
            output = s.get_final_response().output
    else:
        output = openai_client.responses.create(**first).output
    assert [o.type for o in output] == ["reasoning", "function_call"], output
    call = output[1]
    inputs += output
    inputs.append({"type": "function_call_output", "call_id": call.call_id, "output": "rainy, 12C"})

    echo = openai_client.responses.create(
        model=model(kind, "think", "echo-request"),
        input=inputs,
        tools=TOOLS,
        reasoning={"effort": "high"},
    )
    upstream = json.loads(echo.output_text)
    assert upstream["thinking"]["type"] == "enabled", upstream
    calling_turn = upstream["messages"][1]["content"]
    assert calling_turn[0]["type"] == "thinking", calling_turn
    assert calling_turn[0]["signature"].startswith("mock-signature-")

    second = openai_client.responses.create(
        model=model(kind, "think"), input=inputs, tools=TOOLS, reasoning={"effort": "high"}
    )
    assert second.output_text == tool_reply("rainy, 12C")
