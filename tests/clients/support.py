"""Shared constants and helpers of the client-SDK tests.

The gateway under test routes `provider/model`; the mock upstream reads
directives after `~` in the model name (see conftest.py for the config).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

# Upstream kind -> the gateway model that routes to the mock of that kind.
BASE_MODELS = {
    "anthropic": "mock-anthropic/claude-x",
    "openai": "mock-openai/gpt-4o",
    "gemini": "mock-gemini/gemini-2.0-flash",
    "openai-compatible": "mock-compat/llama-3",
}

KINDS = list(BASE_MODELS)

# `@kinds` parametrizes a test over every upstream kind, with readable ids.
kinds = pytest.mark.parametrize("kind", KINDS)

# The API each upstream kind speaks, as the mock names it in its reply.
UPSTREAM_API = {
    "anthropic": "anthropic",
    "openai": "openai",
    "gemini": "gemini",
    "openai-compatible": "openai",
}


def greeting(kind: str, text: str) -> str:
    """The mock's whole default reply, from the upstream of `kind`, to the user text `text`."""
    return f"Hello from the mock {UPSTREAM_API[kind]} upstream. You said: {text}"


def oauth_token(name: str, *suffix: str) -> str:
    """A fresh fake Claude subscription token, `sk-ant-oat01-<name>-<random>`
    with `~suffix`es for the mock (`limit`, `expired`). Fresh in each test:
    the gateway cools a token at its limit down for the whole session."""
    return f"sk-ant-oat01-{name}-{uuid.uuid4().hex[:12]}" + "".join("~" + s for s in suffix)


def sent_to(received: list[dict], credential: str) -> list[str]:
    """From the mock's credential log, the APIs that received `credential`, in order."""
    return [r["api"] for r in received if r["credential"] == credential]


def model(kind: str, *directives: str) -> str:
    """The gateway model name for `kind` with mock directives appended."""
    return BASE_MODELS[kind] + "".join("~" + d for d in directives)


def tool_reply(result: str) -> str:
    """What the mock answers after a tool result `result`."""
    return "Tool result received: " + result


WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "The city name"},
    },
    "required": ["city"],
}

TIME_SCHEMA = {
    "type": "object",
    "properties": {
        "timezone": {"type": "string", "description": "An IANA time zone"},
    },
    "required": ["timezone"],
}


def json_object(text: str) -> dict:
    """Parses tool-call arguments, failing the test with the text if they are not a JSON object."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:  # pragma: no cover - the failure message is the point
        pytest.fail(f"tool arguments are not JSON ({e}): {text!r}")
    assert isinstance(value, dict), f"tool arguments are not a JSON object: {text!r}"
    return value


def upstream_tool_link(kind: str, body: dict) -> tuple[list[str], list[str]]:
    """From an upstream request body (as `~echo-request` returns it), the IDs of
    the tool calls in the assistant turn and the IDs the tool results refer to.
    Gemini links results by function name, so for it these are names."""
    calls: list[str] = []
    results: list[str] = []
    if kind == "anthropic":
        for m in body["messages"]:
            content = m["content"] if isinstance(m["content"], list) else []
            for b in content:
                if b.get("type") == "tool_use":
                    calls.append(b["id"])
                if b.get("type") == "tool_result":
                    results.append(b["tool_use_id"])
    elif kind == "gemini":
        for c in body["contents"]:
            for p in c.get("parts", []):
                if "functionCall" in p:
                    calls.append(p["functionCall"].get("id") or p["functionCall"]["name"])
                if "functionResponse" in p:
                    results.append(p["functionResponse"].get("id") or p["functionResponse"]["name"])
    else:
        for m in body["messages"]:
            for tc in m.get("tool_calls") or []:
                calls.append(tc["id"])
            if m.get("role") == "tool":
                results.append(m["tool_call_id"])
    return calls, results


def upstream_tool_results(kind: str, body: dict) -> dict[str, str]:
    """From an upstream request body (as `~echo-request` returns it), each
    tool result's text keyed by the call it answers (its ID; for Gemini,
    which links results by function name, the name)."""
    out: dict[str, str] = {}

    def text(content) -> str:
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return "".join(b.get("text", "") for b in content if isinstance(b, dict))
        if isinstance(content, dict):
            for key in ("output", "result", "content"):
                if key in content:
                    return text(content[key])
        return json.dumps(content)

    if kind == "anthropic":
        for m in body["messages"]:
            for b in m["content"] if isinstance(m["content"], list) else []:
                if b.get("type") == "tool_result":
                    out[b["tool_use_id"]] = text(b.get("content", ""))
    elif kind == "gemini":
        for c in body["contents"]:
            for p in c.get("parts", []):
                if "functionResponse" in p:
                    fr = p["functionResponse"]
                    out[fr.get("id") or fr["name"]] = text(fr.get("response", {}))
    else:
        for m in body["messages"]:
            if m.get("role") == "tool":
                out[m["tool_call_id"]] = text(m.get("content", ""))
    return out


# The auth gateway's model whose first target is the subscription-only
# provider (the client's own OAuth token), then an OpenAI-format fallback.
SUBSCRIPTION_MODEL = "claude-sonnet-5-5"
SUB_TARGET = "claude-sub/claude-sonnet-5-5"
