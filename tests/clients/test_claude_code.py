"""Claude Code (the real CLI, pinned in tests/claude_code/package.json) through the gateway.

`claude -p` (print mode) runs with ANTHROPIC_BASE_URL at the gateway, a dummy
key, a temporary HOME and the settings that keep it off the network apart
from its API calls. On a subscription, it runs as a user's Claude Max login
through tollgate would: ANTHROPIC_AUTH_TOKEN is the (fake) OAuth token the
gateway passes through, ANTHROPIC_CUSTOM_HEADERS carries the gateway key,
and no ANTHROPIC_API_KEY is set.

It is skipped only when node is not on the machine; a missing `npm ci` in
tests/claude_code is a failure, not a skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from support import REPO_ROOT, SUB_TARGET, SUBSCRIPTION_MODEL, greeting, oauth_token, sent_to

CLAUDE_DIR = REPO_ROOT / "tests" / "claude_code"
CLAUDE_BIN = CLAUDE_DIR / "node_modules" / ".bin" / "claude"
RUN_TIMEOUT_S = 120

# Variables that keep Claude Code to its API calls: no telemetry, no error
# reports, no auto-update checks, no other nonessential traffic.
OFFLINE_ENV = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "DISABLE_BUG_COMMAND": "1",
    "CLAUDE_CODE_DISABLE_TERMINAL_TITLE": "1",
}


def claude_env(
    gateway_url: str,
    home: Path,
    model: str,
    auth_token: str | None = None,
    gateway_key: str | None = None,
) -> dict[str, str]:
    """The environment of `claude -p`: a dummy API key, or with `auth_token`
    a subscription's OAuth token instead (and `gateway_key` in
    x-tollgate-key)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "TMPDIR": str(home),
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "CI": "1",
        "ANTHROPIC_BASE_URL": gateway_url,
        # Background requests (titles, summaries) use the "small fast" model:
        # send those through the gateway to the same place.
        "ANTHROPIC_SMALL_FAST_MODEL": model,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": model,
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
    }
    if auth_token is None:
        env["ANTHROPIC_API_KEY"] = "sk-ant-dummy-key-for-the-gateway"
    else:
        env["ANTHROPIC_AUTH_TOKEN"] = auth_token
    if gateway_key is not None:
        env["ANTHROPIC_CUSTOM_HEADERS"] = f"x-tollgate-key: {gateway_key}"
    env.update(OFFLINE_ENV)
    return env


def run_claude(gateway, tmp_path: Path, model: str, env: dict[str, str]) -> tuple[str, str, str]:
    """Runs `claude -p "Say hello" --model MODEL` against `gateway`; its
    stdout, what the gateway logged meanwhile, and a failure detail.
    Skips when node is missing; fails when Claude Code is not installed,
    exits non-zero or does not finish in time."""
    if shutil.which("node") is None or shutil.which("npx") is None:
        pytest.skip("node/npx is not installed on this machine: Claude Code cannot run")
    if not CLAUDE_BIN.exists():
        pytest.fail(
            f"Claude Code is not installed at {CLAUDE_BIN}: run `npm ci` in {CLAUDE_DIR}",
            pytrace=False,
        )
    project = tmp_path / "project"
    project.mkdir()
    offsets = gateway.log_offsets()
    try:
        proc = subprocess.run(
            [str(CLAUDE_BIN), "-p", "Say hello", "--model", model],
            cwd=project,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(
            f"claude -p did not finish in {RUN_TIMEOUT_S}s\nstdout: {e.stdout!r}\nstderr: {e.stderr!r}\n"
            f"gateway log:\n{gateway.logs_since(offsets)}",
            pytrace=False,
        )
    detail = (
        f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}\n"
        f"gateway log:\n{gateway.logs_since(offsets)}"
    )
    assert proc.returncode == 0, detail
    return proc.stdout.strip(), gateway.logs_since(offsets, only="gateway"), detail


@pytest.mark.parametrize(
    "gateway_model,upstream_api",
    [
        ("mock-anthropic/claude-sonnet-4-5", "anthropic"),
        ("mock-openai/gpt-4o", "openai"),
        ("mock-gemini/gemini-2.5-flash", "gemini"),
        # Anthropic answers 429: Claude Code keeps working on the next provider.
        ("claude-sonnet-limited", "openai"),
    ],
    ids=["anthropic-upstream", "openai-upstream", "gemini-upstream", "rate-limited-fallback"],
)
def test_claude_code_print_mode(gateway, tmp_path, gateway_model, upstream_api):
    home = tmp_path / "home"
    home.mkdir()
    out, log, detail = run_claude(
        gateway, tmp_path, gateway_model, claude_env(gateway.url, home, gateway_model)
    )
    # The mock echoes the last user text, which Claude Code surrounds with its
    # <system-reminder> blocks (and, for non-Claude model names, a mid-conversation
    # `system` message that an upstream without one may fold into the user turn):
    # the reply starts with the greeting of the upstream the model routes to and
    # contains the prompt.
    assert out.startswith(f"Hello from the mock {upstream_api} upstream. You said: "), detail
    assert "Say hello" in out, detail
    # Every request Claude Code made went through the gateway and was served.
    assert "served" in log and "failed" not in log, detail
    if gateway_model == "claude-sonnet-limited":
        # The rate-limited provider was tried (then cooled down) and the next served.
        assert "claude-sonnet-4-5~status=429~retry-after=30=429, mock-openai/gpt-4o=200" in log, detail


# The subscription first, then the OpenAI-format provider (conftest.py).


@pytest.mark.parametrize("at_limit", [False, True], ids=["with-capacity", "at-its-limit"])
def test_claude_code_on_a_subscription(auth_gateway, tmp_path, at_limit):
    subscription = oauth_token("claude-code", *(["limit"] if at_limit else []))
    home = tmp_path / "home"
    home.mkdir()
    env = claude_env(
        auth_gateway.url,
        home,
        SUBSCRIPTION_MODEL,
        auth_token=subscription,
        gateway_key=auth_gateway.key.key,
    )
    assert "ANTHROPIC_API_KEY" not in env
    before = len(auth_gateway.mock_credentials())
    out, log, detail = run_claude(auth_gateway, tmp_path, SUBSCRIPTION_MODEL, env)
    received = auth_gateway.mock_credentials()[before:]
    detail += f"\nthe mock received: {received}"
    # The token reached Anthropic, and only Anthropic; the gateway key
    # never left the gateway.
    assert sent_to(received, subscription), detail
    assert set(sent_to(received, subscription)) == {"anthropic"}, detail
    assert sent_to(received, auth_gateway.key.key) == [], detail
    assert subscription not in log and auth_gateway.key.key not in log, "a secret reached the log"
    assert "served" in log and "failed" not in log, detail
    upstream = "openai" if at_limit else "anthropic"
    assert out.startswith(greeting(upstream, "")), detail
    assert "Say hello" in out, detail
    if at_limit:
        # The subscription answered 429 once; Claude Code kept working on
        # the OpenAI-format provider, and its next requests skipped it.
        assert f"{SUB_TARGET}[subscription]=429, mock-openai/gpt-4o=200" in log, detail
        assert "test-openai-key" in [r["credential"] for r in received], detail
    else:
        assert f"{SUB_TARGET}[subscription]=200" in log, detail
        assert {r["api"] for r in received} == {"anthropic"}, detail
