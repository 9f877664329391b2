"""Errors through the gateway surface as each SDK's typed exceptions."""

from __future__ import annotations

import time

import anthropic
import openai
import pytest

from support import kinds, model

UNKNOWN_MODELS = ["no-such-provider/some-model", "gpt-unknown-model-xyz"]


@pytest.mark.parametrize("name", UNKNOWN_MODELS)
def test_openai_chat_unknown_model_is_404(openai_client, name):
    with pytest.raises(openai.NotFoundError) as e:
        openai_client.chat.completions.create(
            model=name, messages=[{"role": "user", "content": "hi"}]
        )
    assert e.value.status_code == 404
    assert e.value.message


@pytest.mark.parametrize("name", UNKNOWN_MODELS)
def test_openai_responses_unknown_model_is_404(openai_client, name):
    with pytest.raises(openai.NotFoundError) as e:
        openai_client.responses.create(model=name, input="hi")
    assert e.value.status_code == 404


@pytest.mark.parametrize("name", UNKNOWN_MODELS)
def test_anthropic_unknown_model_is_404(anthropic_client, name):
    with pytest.raises(anthropic.NotFoundError) as e:
        anthropic_client.messages.create(
            model=name, max_tokens=32, messages=[{"role": "user", "content": "hi"}]
        )
    assert e.value.status_code == 404
    assert e.value.body["type"] == "error"
    assert e.value.body["error"]["type"] == "not_found_error"


@kinds
def test_openai_chat_rate_limit(openai_client, kind):
    with pytest.raises(openai.RateLimitError) as e:
        openai_client.chat.completions.create(
            model=model(kind, "status=429", "retry-after=1"),
            messages=[{"role": "user", "content": "hi"}],
        )
    assert e.value.status_code == 429
    assert e.value.response.headers.get("retry-after") == "1"


@kinds
def test_openai_responses_rate_limit(openai_client, kind):
    with pytest.raises(openai.RateLimitError) as e:
        openai_client.responses.create(model=model(kind, "status=429"), input="hi")
    assert e.value.status_code == 429


@kinds
def test_anthropic_rate_limit(anthropic_client, kind):
    with pytest.raises(anthropic.RateLimitError) as e:
        anthropic_client.messages.create(
            model=model(kind, "status=429", "retry-after=1"),
            max_tokens=32,
            messages=[{"role": "user", "content": "hi"}],
        )
    assert e.value.status_code == 429
    assert e.value.body["error"]["type"] == "rate_limit_error"
    assert e.value.response.headers.get("retry-after") == "1"


@kinds
def test_anthropic_stream_rate_limit(anthropic_client, kind):
    """An error before the first byte of a stream is an HTTP error, not a stream event."""
    with pytest.raises(anthropic.RateLimitError) as e:
        with anthropic_client.messages.stream(
            model=model(kind, "status=429"),
            max_tokens=32,
            messages=[{"role": "user", "content": "hi"}],
        ) as stream:
            stream.get_final_message()
    assert e.value.status_code == 429


def test_sdk_retries_honour_retry_after(gateway):
    """With retries on, the SDK waits the upstream's Retry-After (passed through by the
    gateway), retries once, and then raises RateLimitError."""
    client = anthropic.Anthropic(base_url=gateway.url, api_key="k", max_retries=1, timeout=30)
    offsets = gateway.log_offsets()
    started = time.monotonic()
    with client:
        with pytest.raises(anthropic.RateLimitError):
            client.messages.create(
                model=model("anthropic", "status=429", "retry-after=1"),
                max_tokens=32,
                messages=[{"role": "user", "content": "hi"}],
            )
    elapsed = time.monotonic() - started
    assert elapsed >= 0.9, f"the SDK retried after {elapsed:.2f}s, not after Retry-After: 1"
    # One "failed" line per request the SDK made (cooldown lines name the model too).
    attempts = [
        line
        for line in gateway.logs_since(offsets, only="gateway").splitlines()
        if "tollgate::edge: failed" in line and "status=429" in line
    ]
    assert len(attempts) == 2, attempts


@kinds
def test_openai_chat_bad_request(openai_client, kind):
    with pytest.raises(openai.BadRequestError) as e:
        openai_client.chat.completions.create(model=model(kind), messages="not an array")
    assert e.value.status_code == 400
    assert "messages" in e.value.message


def test_openai_chat_unknown_role_is_bad_request(openai_client):
    """A role the gateway has to translate (to an Anthropic upstream) must be a known one."""
    with pytest.raises(openai.BadRequestError) as e:
        openai_client.chat.completions.create(
            model=model("anthropic"),
            messages=[{"role": "wizard", "content": "hi"}],
        )
    assert e.value.status_code == 400
    assert "wizard" in e.value.message


def test_openai_responses_bad_request(openai_client):
    with pytest.raises(openai.BadRequestError) as e:
        openai_client.responses.create(model=model("openai"), input=42)
    assert e.value.status_code == 400


def test_anthropic_bad_request(anthropic_client):
    with pytest.raises(anthropic.BadRequestError) as e:
        anthropic_client.messages.create(
            model=model("anthropic"),
            max_tokens=32,
            messages="this should be a list",
        )
    assert e.value.status_code == 400
    assert e.value.body["error"]["type"] == "invalid_request_error"


def test_anthropic_missing_max_tokens_is_bad_request(anthropic_client):
    with pytest.raises(anthropic.BadRequestError) as e:
        anthropic_client.post(
            "/v1/messages",
            body={"model": model("anthropic"), "messages": [{"role": "user", "content": "hi"}]},
            cast_to=object,
        )
    assert e.value.status_code == 400
    assert "max_tokens" in str(e.value.message)


@kinds
def test_openai_chat_stream_cut_raises(openai_client, kind):
    """A stream cut upstream mid-way raises in the SDK instead of ending quietly."""
    stream = openai_client.chat.completions.create(
        model=model(kind, "chunks=8", "cut=3"),
        messages=[{"role": "user", "content": "cut me"}],
        stream=True,
    )
    received = []
    with pytest.raises(openai.APIError):
        for chunk in stream:
            received.append(chunk)
    finishes = [c.choices[0].finish_reason for c in received if c.choices and c.choices[0].finish_reason]
    assert finishes == [], "a cut stream must not look finished"


@kinds
def test_anthropic_stream_cut_raises(anthropic_client, kind):
    with pytest.raises(anthropic.APIError):
        with anthropic_client.messages.stream(
            model=model(kind, "chunks=8", "cut=3"),
            max_tokens=256,
            messages=[{"role": "user", "content": "cut me"}],
        ) as stream:
            for _ in stream:
                pass


@kinds
def test_responses_stream_cut_fails(openai_client, kind):
    """The Responses stream of a cut upstream ends with `error` / `response.failed`, never
    `response.completed`, and stays one response (one id) throughout."""
    stream = openai_client.responses.create(
        model=model(kind, "chunks=8", "cut=3"), input="cut me", stream=True
    )
    events = list(stream)
    types = [e.type for e in events]
    assert "response.completed" not in types, types
    assert types[-1] in {"error", "response.failed"}, types
    ids = [e.response.id for e in events if hasattr(e, "response")]
    assert len(set(ids)) == 1, f"response id changed within one stream: {ids} (events: {types})"
    assert types.count("response.created") == 1, types
    seq = [e.sequence_number for e in events]
    assert seq == sorted(seq) and len(set(seq)) == len(seq), f"sequence numbers: {seq}"


@kinds
def test_responses_stream_helper_cut_raises(openai_client, kind):
    """With the SDK's stream helper, a cut stream has no final response."""
    with pytest.raises(RuntimeError):
        with openai_client.responses.stream(
            model=model(kind, "chunks=8", "cut=3"), input="cut me"
        ) as stream:
            for _ in stream:
                pass
            stream.get_final_response()
