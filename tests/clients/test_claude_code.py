"""Claude Code (`claude -p`) through the gateway, with the model routed to an
Anthropic provider and to OpenAI-format providers.

`.ci/run` installs the pinned Claude Code into tests/claude_code
(`npm install` there). It runs offline: nonessential traffic, telemetry and
the auto-updater are switched off, and HOME is a fresh temporary folder.
"""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLAUDE = ROOT / "tests" / "claude_code" / "node_modules" / ".bin" / "claude"


def run_claude(gateway, model):
    if shutil.which("node") is None:
        pytest.skip("node is not installed, so Claude Code cannot run")
    assert CLAUDE.exists(), "Claude Code is not installed: run `npm install` in tests/claude_code"
    with tempfile.TemporaryDirectory() as home:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": home,
            "ANTHROPIC_BASE_URL": gateway,
            "ANTHROPIC_API_KEY": "client-key",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
        }
        out = subprocess.run(
            [str(CLAUDE), "-p", "Say hello", "--model", model],
            env=env,
            cwd=home,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
    return out


@pytest.mark.parametrize(
    "model,api",
    [
        ("mock-anthropic/claude-sonnet-4-5", "anthropic"),
        ("mock-openai/gpt-4o", "openai"),
        ("mock-gemini/gemini-2.5-flash", "gemini"),
    ],
)
def test_claude_code_print_mode(gateway, model, api):
    out = run_claude(gateway, model)
    assert out.returncode == 0, out.stderr
    # The mock answers with its own name and the last user text.
    assert f"Hello from the mock {api} upstream" in out.stdout, (out.stdout, out.stderr)
    assert "Say hello" in out.stdout
