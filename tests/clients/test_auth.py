"""Gateway keys and per-request credentials, through the official SDKs.

Runs against `auth_gateway` (conftest.py): its store holds a key made with
`tollgate keys create` before it started, so every request needs one.
Keys are made, revoked and rotated with the real CLI while it runs. The
mock records every credential it received (`/mock/credentials`), which
shows where each one went. Subscription tokens get a fresh name in each
test: a token at its limit is cooled down for the whole session.
"""

from __future__ import annotations

import time
import uuid
from typing import Callable

import anthropic
import openai
import pytest

from conftest import CLIENT_TIMEOUT_S, AuthGateway
from support import SUB_TARGET, SUBSCRIPTION_MODEL, greeting, oauth_token, sent_to

# `tollgate keys revoke|rotate` takes effect on the running gateway within this.
REVOCATION_DEADLINE_S = 5.0
POLL_INTERVAL_S = 0.1

OPENAI_MODEL = "mock-openai/gpt-4o"
ANTHROPIC_MODEL = "mock-anthropic/claude-x"
# The subscription first, then the OpenAI-format provider (conftest.py).
FALLBACK_TARGET = "mock-openai/gpt-4o"
OAUTH_BETA = "oauth-2025-04-20"

HI = [{"role": "user", "content": "hi"}]


def openai_sdk(gw: AuthGateway, key: str | None) -> openai.OpenAI:
    # The SDK insists on a key; with None the request omits the header.
    return openai.OpenAI(
        base_url=gw.url + "/v1",
        api_key=key or "unused",
        max_retries=0,
        timeout=CLIENT_TIMEOUT_S,
    )


def anthropic_sdk(gw: AuthGateway, key: str | None, **kw) -> anthropic.Anthropic:
    """The Anthropic SDK with `key` as its x-api-key; with None and no
    `auth_token` in `kw`, with no credential at all."""
    if key is None and "auth_token" not in kw:
        # No credential at all: both headers explicitly left out.
        kw["default_headers"] = {"X-Api-Key": anthropic.Omit(), "Authorization": anthropic.Omit()}
        kw["api_key"] = "unused"
    elif key is not None:
        kw["api_key"] = key
    return anthropic.Anthropic(base_url=gw.url, max_retries=0, timeout=CLIENT_TIMEOUT_S, **kw)


def chat(gw: AuthGateway, key: str | None, model: str = OPENAI_MODEL) -> str:
    """One Chat Completions call with `key` (None: no Authorization header); its text."""
    with openai_sdk(gw, key) as c:
        extra = {"Authorization": openai.Omit()} if key is None else None
        r = c.chat.completions.create(model=model, messages=HI, extra_headers=extra)
    return r.choices[0].message.content


def messages(gw: AuthGateway, key: str | None, model: str = ANTHROPIC_MODEL) -> str:
    """One Messages call with `key` in x-api-key (None: no credential); its text."""
    with anthropic_sdk(gw, key) as c:
        r = c.messages.create(model=model, max_tokens=32, messages=HI)
    return "".join(b.text for b in r.content if b.type == "text")


def assert_openai_401(e: openai.AuthenticationError) -> None:
    assert e.status_code == 401
    body = e.response.json()
    assert body["error"]["type"] == "authentication_error", body
    assert body["error"]["code"] == "invalid_api_key", body
    assert body["error"]["message"], body


def assert_anthropic_401(e: anthropic.AuthenticationError) -> None:
    assert e.status_code == 401
    body = e.response.json()
    assert body["type"] == "error", body
    assert body["error"]["type"] == "authentication_error", body
    assert body["error"]["message"], body


def refused_within(call: Callable[[], object], error: type[Exception]) -> Exception:
    """Calls `call` until it raises `error`, for at most the revocation
    deadline; fails the test if it still serves then."""
    deadline = time.monotonic() + REVOCATION_DEADLINE_S
    while True:
        try:
            call()
        except error as e:
            return e
        if time.monotonic() >= deadline:
            pytest.fail(f"still served {REVOCATION_DEADLINE_S}s after the change", pytrace=False)
        time.sleep(POLL_INTERVAL_S)


# --- gateway keys ---------------------------------------------------------


def test_a_created_key_serves_both_sdks(auth_gateway):
    key = auth_gateway.key.key
    assert chat(auth_gateway, key) == greeting("openai", "hi")
    assert messages(auth_gateway, key) == greeting("anthropic", "hi")


@pytest.mark.parametrize(
    "key",
    [None, "tg_" + "A" * 43, "sk-not-a-gateway-key"],
    ids=["no-key", "unknown-gateway-key", "not-a-gateway-key"],
)
def test_no_key_or_a_wrong_key_is_a_401_in_each_format(auth_gateway, key):
    before = len(auth_gateway.mock_credentials())
    with pytest.raises(openai.AuthenticationError) as e:
        chat(auth_gateway, key)
    assert_openai_401(e.value)
    with pytest.raises(anthropic.AuthenticationError) as e:
        messages(auth_gateway, key)
    assert_anthropic_401(e.value)
    assert auth_gateway.mock_credentials()[before:] == [], "a refused request reached an upstream"


def test_a_revoked_key_is_refused_within_5s(auth_gateway):
    made = auth_gateway.create_key("to-revoke")
    assert chat(auth_gateway, made.key) == greeting("openai", "hi")
    assert messages(auth_gateway, made.key) == greeting("anthropic", "hi")
    auth_gateway.revoke(made.id)
    e = refused_within(lambda: chat(auth_gateway, made.key), openai.AuthenticationError)
    assert_openai_401(e)
    with pytest.raises(anthropic.AuthenticationError) as e:
        messages(auth_gateway, made.key)
    assert_anthropic_401(e.value)
    # The fixture's own key is untouched.
    assert chat(auth_gateway, auth_gateway.key.key) == greeting("openai", "hi")


def test_a_rotated_key_keeps_the_old_one_for_its_grace_period(auth_gateway):
    old = auth_gateway.create_key("rotate-1h")
    new = auth_gateway.rotate(old.id, "1h")
    assert new.key != old.key and new.id != old.id
    assert chat(auth_gateway, new.key) == greeting("openai", "hi")
    assert messages(auth_gateway, old.key) == greeting("anthropic", "hi")

    # `--grace 0`: the old key stops (a leaked key), the new one serves.
    leaked = auth_gateway.create_key("rotate-0")
    assert chat(auth_gateway, leaked.key) == greeting("openai", "hi")
    replacement = auth_gateway.rotate(leaked.id, "0")
    assert messages(auth_gateway, replacement.key) == greeting("anthropic", "hi")
    e = refused_within(lambda: chat(auth_gateway, leaked.key), openai.AuthenticationError)
    assert_openai_401(e)
    # The gateway has read the store again since the first rotation:
    # the key in its hour of grace still serves.
    assert chat(auth_gateway, old.key) == greeting("openai", "hi")
    assert chat(auth_gateway, new.key) == greeting("openai", "hi")


def test_a_key_limited_to_some_models_gets_403_for_others(auth_gateway):
    limited = auth_gateway.create_key("openai-only", "--models", "mock-openai/*")
    assert chat(auth_gateway, limited.key) == greeting("openai", "hi")
    with pytest.raises(anthropic.PermissionDeniedError) as e:
        messages(auth_gateway, limited.key, model=SUBSCRIPTION_MODEL)
    assert e.value.status_code == 403
    body = e.value.response.json()
    assert body["type"] == "error" and body["error"]["type"] == "permission_error", body
    with pytest.raises(openai.PermissionDeniedError) as e:
        chat(auth_gateway, limited.key, model=ANTHROPIC_MODEL)
    assert e.value.status_code == 403


# --- the client's own subscription (pass-through) -------------------------


def subscription_call(gw: AuthGateway, token: str, with_beta: bool = True):
    """A Messages call as Claude Code on a subscription makes it: the OAuth
    token as bearer, the gateway key in x-tollgate-key. The raw response."""
    headers = {"x-tollgate-key": gw.key.key}
    if with_beta:
        headers["anthropic-beta"] = OAUTH_BETA
    with anthropic_sdk(gw, None, auth_token=token, default_headers=headers) as c:
        raw = c.messages.with_raw_response.create(
            model=SUBSCRIPTION_MODEL, max_tokens=32, messages=HI
        )
        message = raw.parse()
    text = "".join(b.text for b in message.content if b.type == "text")
    return raw.headers, text


@pytest.mark.parametrize("with_beta", [True, False], ids=["client-beta", "gateway-adds-beta"])
def test_an_oauth_token_passes_through_to_the_subscription(auth_gateway, with_beta):
    alice = oauth_token("alice")
    before = len(auth_gateway.mock_credentials())
    headers, text = subscription_call(auth_gateway, alice, with_beta)
    assert text == greeting("anthropic", "hi")
    assert headers["x-tollgate-credential"] == "subscription"
    assert headers["x-tollgate-attempts"] == f"{SUB_TARGET}[subscription]=200"
    received = auth_gateway.mock_credentials()[before:]
    assert sent_to(received, alice) == ["anthropic"], received
    # Only the token went upstream: not the gateway key, not the gateway's
    # own Anthropic key.
    assert [r["credential"] for r in received] == [alice], received


def test_a_subscription_at_its_limit_falls_back_and_is_skipped_after(auth_gateway):
    bob = oauth_token("bob", "limit")
    before = len(auth_gateway.mock_credentials())
    headers, text = subscription_call(auth_gateway, bob)
    assert text == greeting("openai", "hi"), "answered by the OpenAI-format provider"
    assert headers["x-tollgate-credential"] == "gateway"
    assert "[subscription]=429" in headers["x-tollgate-attempts"]
    assert headers["x-tollgate-attempts"] == (
        f"{SUB_TARGET}[subscription]=429, {FALLBACK_TARGET}=200"
    )
    received = auth_gateway.mock_credentials()[before:]
    assert sent_to(received, bob) == ["anthropic"], received
    assert sent_to(received, "test-openai-key") == ["openai"], received

    # The next request with the same token goes straight to the fallback.
    before = len(auth_gateway.mock_credentials())
    headers, text = subscription_call(auth_gateway, bob)
    assert text == greeting("openai", "hi")
    assert headers["x-tollgate-credential"] == "gateway"
    assert "[subscription]" not in headers["x-tollgate-attempts"]
    assert headers["x-tollgate-attempts"] == f"{FALLBACK_TARGET}=200"
    received = auth_gateway.mock_credentials()[before:]
    assert sent_to(received, bob) == [], f"the subscription at its limit was tried again: {received}"
    assert [r["api"] for r in received] == ["openai"], received

    # Another user's subscription keeps serving.
    alice = oauth_token("alice")
    before = len(auth_gateway.mock_credentials())
    headers, text = subscription_call(auth_gateway, alice)
    assert text == greeting("anthropic", "hi")
    assert headers["x-tollgate-credential"] == "subscription"
    assert sent_to(auth_gateway.mock_credentials()[before:], alice) == ["anthropic"]


# --- keys the request brings (BYOK) ----------------------------------------


def byok_key() -> str:
    return f"sk-byok-{uuid.uuid4().hex[:12]}"


@pytest.mark.parametrize("how", ["body", "header"])
def test_byok_for_an_openai_provider(auth_gateway, how):
    mine = byok_key()
    if how == "body":
        extra = {"extra_body": {"providerOptions": {"gateway": {"byok": {"mock-openai": [{"apiKey": mine}]}}}}}
    else:
        extra = {"extra_headers": {"x-tollgate-byok-mock-openai": mine}}
    before = len(auth_gateway.mock_credentials())
    with openai_sdk(auth_gateway, auth_gateway.key.key) as c:
        raw = c.chat.completions.with_raw_response.create(model=OPENAI_MODEL, messages=HI, **extra)
        completion = raw.parse()
    assert completion.choices[0].message.content == greeting("openai", "hi")
    assert raw.headers["x-tollgate-credential"] == "byok"
    assert raw.headers["x-tollgate-attempts"] == f"{OPENAI_MODEL}[byok]=200"
    received = auth_gateway.mock_credentials()[before:]
    # The caller's key, and only it, paid for the call.
    assert [(r["api"], r["credential"]) for r in received] == [("openai", mine)], received
