"""The official `anthropic` Python SDK against the gateway, every upstream kind."""

import anthropic
import pytest

from conftest import PROVIDERS

WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture()
def client(gateway):
    # The SDK authenticates with Authorization: Bearer when given an auth token.
    return anthropic.Anthropic(base_url=gateway, api_key="client-key", max_retries=0, timeout=20)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_messages_create(client, provider):
    m = client.messages.create(
        model=f"{provider}/m1", max_tokens=100, system="Be brief.",
        messages=[{"role": "user", "content": "ping 9"}],
    )
    assert "You said: ping 9" in m.content[0].text
    assert m.stop_reason == "end_turn"
    assert m.usage.output_tokens > 0


@pytest.mark.parametrize("provider", PROVIDERS)
def test_messages_stream(client, provider):
    with client.messages.stream(
        model=f"{provider}/m1~chunks=5", max_tokens=100,
        messages=[{"role": "user", "content": "stream it"}],
    ) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert "You said: stream it" in text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0
    assert final.usage.input_tokens > 0


@pytest.mark.parametrize("provider", PROVIDERS)
def test_tool_use_round_trip_streamed(client, provider):
    messages = [{"role": "user", "content": "weather in Paris?"}]
    with client.messages.stream(model=f"{provider}/m~tool", max_tokens=100, messages=messages, tools=[WEATHER]) as s:
        final = s.get_final_message()
    assert final.stop_reason == "tool_use"
    use = [b for b in final.content if b.type == "tool_use"][0]
    assert use.name == "get_weather"
    assert use.input == {"city": "sample"}
    messages.append({"role": "assistant", "content": [b.model_dump() for b in final.content]})
    messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "rainy"}]})
    m = client.messages.create(model=f"{provider}/m", max_tokens=100, messages=messages, tools=[WEATHER])
    assert "Tool result received: rainy" in m.content[0].text


def test_thinking_keeps_signature(client):
    m = client.messages.create(
        model="mock-anthropic/claude~think", max_tokens=2000,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "think"}],
    )
    thinking = [b for b in m.content if b.type == "thinking"]
    assert thinking and thinking[0].signature.startswith("mock-signature-")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_count_tokens(client, provider):
    r = client.messages.count_tokens(
        model=f"{provider}/m", system="You are a coding agent.",
        messages=[{"role": "user", "content": "count me"}],
    )
    assert r.input_tokens > 0


def test_errors_are_typed(client):
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="nope/x", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.RateLimitError):
        client.messages.create(model="mock-openai/m~status=429~retry-after=1", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model="mock-anthropic/m", max_tokens=10, messages="nope")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_cut_stream_raises(client, provider):
    with pytest.raises(anthropic.APIError):
        with client.messages.stream(model=f"{provider}/m~chunks=10~cut=3", max_tokens=100, messages=[{"role": "user", "content": "x"}]) as s:
            for _ in s.text_stream:
                pass
