"""The official Anthropic SDK's Messages API through the gateway, to every upstream kind."""

from __future__ import annotations

import json

import pytest

from support import (
    TIME_SCHEMA,
    WEATHER_SCHEMA,
    greeting,
    kinds,
    model,
    tool_reply,
    upstream_tool_link,
)

TOOLS = [
    {
        "name": "get_weather",
        "description": "Current weather in a city",
        "input_schema": WEATHER_SCHEMA,
    },
    {
        "name": "get_time",
        "description": "Current time in a time zone",
        "input_schema": TIME_SCHEMA,
    },
]


@kinds
def test_messages_create(anthropic_client, kind):
    msg = anthropic_client.messages.create(
        model=model(kind),
        max_tokens=256,
        system="You are terse.",
        messages=[{"role": "user", "content": "ping from messages"}],
    )
    assert msg.type == "message"
    assert msg.role == "assistant"
    assert msg.id
    assert msg.stop_reason == "end_turn"
    assert [b.type for b in msg.content] == ["text"]
    assert msg.content[0].text == greeting(kind, "ping from messages")
    assert msg.usage.input_tokens > 0
    assert msg.usage.output_tokens > 0


@kinds
def test_messages_stream(anthropic_client, kind):
    with anthropic_client.messages.stream(
        model=model(kind, "chunks=5"),
        max_tokens=256,
        messages=[{"role": "user", "content": [{"type": "text", "text": "stream messages"}]}],
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    text = "".join(pieces)
    assert len(pieces) >= 2, f"the text came in {len(pieces)} piece(s), not streamed"
    assert text == greeting(kind, "stream messages")
    assert final.stop_reason == "end_turn"
    assert [b.type for b in final.content] == ["text"]
    assert final.content[0].text == text
    assert final.usage.input_tokens > 0
    assert final.usage.output_tokens > 0


@kinds
@pytest.mark.parametrize("as_sent", ["sdk-objects", "model_dump"])
def test_messages_tool_use_round_trip_streamed(anthropic_client, kind, as_sent):
    messages = [{"role": "user", "content": "What is the weather in Berlin?"}]
    partial_json = []
    with anthropic_client.messages.stream(
        model=model(kind, "tool"), max_tokens=256, messages=messages, tools=TOOLS
    ) as stream:
        for event in stream:
            if event.type == "input_json":
                partial_json.append(event.partial_json)
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    uses = [b for b in final.content if b.type == "tool_use"]
    assert len(uses) == 1, final.content
    use = uses[0]
    assert use.name == "get_weather"
    assert use.id
    assert use.input == {"city": "sample"}
    # The input arrived as streamed JSON fragments that add up to it.
    assert partial_json, "tool input was not streamed as input_json_delta"
    assert json.loads("".join(partial_json)) == use.input

    # Send the assistant content back as the SDK returned it, then the result.
    content = final.content if as_sent == "sdk-objects" else [b.model_dump() for b in final.content]
    messages.append({"role": "assistant", "content": content})
    messages.append(
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "cloudy, 15C"}],
        }
    )
    second = anthropic_client.messages.create(
        model=model(kind), max_tokens=256, messages=messages, tools=TOOLS
    )
    assert second.stop_reason == "end_turn"
    assert [b.type for b in second.content] == ["text"]
    assert second.content[0].text == tool_reply("cloudy, 15C")


@kinds
def test_messages_tool_ids_match_upstream(anthropic_client, kind):
    """The tool_use and its tool_result reach the upstream linked to each other."""
    messages = [{"role": "user", "content": "What is the weather in Berlin?"}]
    first = anthropic_client.messages.create(
        model=model(kind, "tool"), max_tokens=256, messages=messages, tools=TOOLS
    )
    use = next(b for b in first.content if b.type == "tool_use")
    messages.append({"role": "assistant", "content": first.content})
    messages.append(
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "cloudy"}]}
    )
    echo = anthropic_client.messages.create(
        model=model(kind, "echo-request"), max_tokens=256, messages=messages, tools=TOOLS
    )
    upstream = json.loads(echo.content[0].text)
    calls, results = upstream_tool_link(kind, upstream)
    assert len(calls) == 1 and calls == results, (calls, results)
    if kind != "gemini":
        assert calls == [use.id]


@kinds
def test_messages_parallel_tool_use(anthropic_client, kind):
    msg = anthropic_client.messages.create(
        model=model(kind, "parallel"),
        max_tokens=256,
        messages=[{"role": "user", "content": "Weather in Paris and time in Tokyo?"}],
        tools=TOOLS,
    )
    assert msg.stop_reason == "tool_use"
    uses = [b for b in msg.content if b.type == "tool_use"]
    assert len(uses) == 2, msg.content
    assert uses[0].id != uses[1].id
    assert all(u.name in {"get_weather", "get_time"} for u in uses)
    assert all(isinstance(u.input, dict) for u in uses)


def test_thinking_keeps_signature(anthropic_client):
    """`~think` from an Anthropic upstream: the thinking block and its signature survive."""
    msg = anthropic_client.messages.create(
        model=model("anthropic", "think"),
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "think about it"}],
    )
    types = [b.type for b in msg.content]
    assert types[0] == "thinking", types
    assert "text" in types
    thinking = msg.content[0]
    assert thinking.thinking
    # The upstream's own signature, not one made up on the way.
    assert thinking.signature.startswith("mock-signature-"), thinking.signature


def test_thinking_stream_signature_round_trip(anthropic_client):
    """Streamed thinking keeps its signature, and the block goes back upstream unchanged."""
    with anthropic_client.messages.stream(
        model=model("anthropic", "think"),
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "think in a stream"}],
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    thinking_deltas = [e for e in events if e.type == "thinking"]
    signature_events = [e for e in events if e.type == "signature"]
    assert thinking_deltas, [e.type for e in events]
    assert signature_events, "no signature_delta in the stream"
    block = final.content[0]
    assert block.type == "thinking"
    assert block.thinking == "".join(e.thinking for e in thinking_deltas)
    assert block.signature == signature_events[-1].signature
    assert "".join(b.text for b in final.content if b.type == "text") == greeting(
        "anthropic", "think in a stream"
    )

    # Next turn: the upstream must receive the thinking block with the same signature.
    echo = anthropic_client.messages.create(
        model=model("anthropic", "echo-request"),
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[
            {"role": "user", "content": "think in a stream"},
            {"role": "assistant", "content": final.content},
            {"role": "user", "content": "and again"},
        ],
    )
    upstream = json.loads(echo.content[-1].text)
    sent = upstream["messages"][1]["content"]
    sent_thinking = [b for b in sent if b.get("type") == "thinking"]
    assert sent_thinking == [
        {"type": "thinking", "thinking": block.thinking, "signature": block.signature}
    ], sent


@kinds
def test_count_tokens(anthropic_client, kind):
    short = anthropic_client.messages.count_tokens(
        model=model(kind),
        messages=[{"role": "user", "content": "hi"}],
    )
    long = anthropic_client.messages.count_tokens(
        model=model(kind),
        system="You are a helpful assistant. " * 20,
        messages=[{"role": "user", "content": "tell me a long story about tokens " * 50}],
        tools=TOOLS,
    )
    assert short.input_tokens > 0
    assert long.input_tokens > short.input_tokens, (short.input_tokens, long.input_tokens)


# The reasoning text of the mock's `think` directive.
MOCK_THINKING = "The mock upstream is thinking about the request before it answers."


@pytest.mark.parametrize("kind", ["anthropic", "gemini"])
@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
def test_thinking_reaches_anthropic_client(anthropic_client, kind, stream):
    """Reasoning from upstreams that send it (Anthropic thinking, Gemini thought parts)
    arrives as a thinking block before the text."""
    params = dict(
        model=model(kind, "think"),
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "reason first"}],
    )
    if stream:
        with anthropic_client.messages.stream(**params) as s:
            msg = s.get_final_message()
    else:
        msg = anthropic_client.messages.create(**params)
    assert [b.type for b in msg.content] == ["thinking", "text"], msg.content
    assert msg.content[0].thinking == MOCK_THINKING
    assert msg.content[1].text == greeting(kind, "reason first")
