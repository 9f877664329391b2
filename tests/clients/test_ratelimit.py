"""Rate limits through the official SDKs: a key made with
`tollgate keys create --rpm 1` while the gateway runs, its second request
in a minute refused as each SDK expects a rate limit (its RateLimitError,
`Retry-After`, the x-ratelimit-* headers).

Runs against `auth_gateway` (conftest.py). Each test makes keys of its
own, so no test spends another's minute.
"""

from __future__ import annotations

import uuid

import anthropic
import openai
import pytest

from conftest import CLIENT_TIMEOUT_S, AuthGateway

HI = [{"role": "user", "content": "hi"}]


def limited_key(gw: AuthGateway, *flags: str) -> str:
    return gw.create_key(f"limited-{uuid.uuid4().hex[:8]}", *flags).key


def test_openai_sdk_sees_the_limit_then_a_rate_limit_error(auth_gateway):
    key = limited_key(auth_gateway, "--rpm", "1", "--tpm", "100000")
    with openai.OpenAI(
        base_url=auth_gateway.url + "/v1", api_key=key, max_retries=0, timeout=CLIENT_TIMEOUT_S
    ) as c:
        raw = c.chat.completions.with_raw_response.create(model="mock-openai/gpt-4o", messages=HI)
        assert raw.parse().choices[0].message.content
        h = raw.headers
        assert (h["x-ratelimit-limit-requests"], h["x-ratelimit-remaining-requests"]) == ("1", "0")
        assert h["x-ratelimit-reset-requests"] == "1m0s"
        assert h["x-ratelimit-limit-tokens"] == "100000"
        assert int(h["x-ratelimit-remaining-tokens"]) < 100000

        with pytest.raises(openai.RateLimitError) as e:
            c.chat.completions.create(model="mock-openai/gpt-4o", messages=HI)
    assert e.value.status_code == 429
    assert 1 <= int(e.value.response.headers["retry-after"]) <= 60
    assert e.value.response.headers["x-ratelimit-remaining-requests"] == "0"
    body = e.value.response.json()
    assert body["error"]["type"] == "rate_limit_error", body
    assert body["error"]["code"] == "rate_limit_exceeded", body
    assert body["error"]["message"].startswith("rate limit reached for this key: 1 request per minute"), body


def test_anthropic_sdk_gets_a_rate_limit_error_in_its_own_shape(auth_gateway):
    key = limited_key(auth_gateway, "--rpm", "1")
    with anthropic.Anthropic(
        base_url=auth_gateway.url, api_key=key, max_retries=0, timeout=CLIENT_TIMEOUT_S
    ) as c:
        r = c.messages.create(model="mock-anthropic/claude-x", max_tokens=16, messages=HI)
        assert r.content
        with pytest.raises(anthropic.RateLimitError) as e:
            c.messages.create(model="mock-anthropic/claude-x", max_tokens=16, messages=HI)
    assert e.value.status_code == 429
    assert 1 <= int(e.value.response.headers["retry-after"]) <= 60
    body = e.value.response.json()
    assert body["type"] == "error", body
    assert body["error"]["type"] == "rate_limit_error", body
    assert "1 request per minute" in body["error"]["message"], body
