"""Shared constants and helpers of the client-SDK tests.

The gateway under test routes `provider/model`; the mock upstream reads
directives after `~` in the model name (see conftest.py for the config).
"""

from __future__ import annotations

import json
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

# The mock's default reply starts with this; it ends with "You said: <last user text>".
REPLY_PREFIX = "Hello from the mock"


def model(kind: str, *directives: str) -> str:
    """The gateway model name for `kind` with mock directives appended."""
    return BASE_MODELS[kind] + "".join("~" + d for d in directives)


def said(text: str) -> str:
    """What the mock's default reply contains for the user text `text`."""
    return "You said: " + text


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
