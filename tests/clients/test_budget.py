"""Claude Code through a budgeted gateway key: it keeps working until the
key's budget is spent, then shows the budget's error (a 402,
`insufficient_funds`, naming the budget).

The budget is set with the real `tollgate budgets` CLI on the store of the
running `auth_gateway`, and picked up by it within seconds. Its amount is
$1 a day against a model priced at list ($3 / $15 per million tokens for
claude-sonnet-4-5): a Claude Code request reserves its worst case (its
body's tokens and its `max_tokens` of output), so the budget ends after a
few requests whatever each one really costs.

It needs the gateway to know the model's price: without one, the budget
reserves nothing, which the gateway logs as "price unknown", and the test
is skipped saying so.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request

import pytest

from support import greeting
from test_claude_code import CLAUDE_BIN, CLAUDE_DIR, RUN_TIMEOUT_S, claude_env

MODEL = "mock-anthropic/claude-sonnet-4-5"
MAX_RUNS = 12


def budgets_cli(gateway, *args: str) -> str:
    proc = subprocess.run(
        [str(gateway.binary), "budgets", *args, "--config", str(gateway.config)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def credits(gateway, key: str) -> dict:
    req = urllib.request.Request(
        gateway.url + "/v1/credits", headers={"Authorization": f"Bearer {key}"}
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)


def test_claude_code_works_until_its_budget_ends_then_shows_the_budget_error(
    auth_gateway, tmp_path
):
    if shutil.which("node") is None:
        pytest.skip("node is not installed on this machine: Claude Code cannot run")
    if not CLAUDE_BIN.exists():
        pytest.fail(f"Claude Code is not installed at {CLAUDE_BIN}: run `npm ci` in {CLAUDE_DIR}")
    key = auth_gateway.create_key("claude-budget")
    budgets_cli(auth_gateway, "set", "--key", key.id, "--usd", "1", "--period", "daily")
    # The running gateway reads the store's budgets again within a second.
    deadline = time.monotonic() + 5
    while credits(auth_gateway, key.key)["budget"] is None:
        assert time.monotonic() < deadline, "the budget was not picked up within 5 s"
        time.sleep(0.1)
    assert credits(auth_gateway, key.key)["budget"]["scope"] == f"key:{key.id}"

    home = tmp_path / "home"
    home.mkdir()
    project = tmp_path / "project"
    project.mkdir()
    env = claude_env(auth_gateway.url, home, MODEL, gateway_key=key.key)
    served = 0
    for _ in range(MAX_RUNS):
        offsets = auth_gateway.log_offsets()
        proc = subprocess.run(
            [str(CLAUDE_BIN), "-p", "Say hello", "--model", MODEL],
            cwd=project,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
        )
        log = auth_gateway.logs_since(offsets, only="gateway")
        detail = f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}\ngateway log:\n{log}"
        if "price unknown" in log:
            pytest.skip(f"the gateway has no price for {MODEL}: the budget cannot end")
        if proc.returncode != 0:
            break
        assert proc.stdout.strip().startswith(greeting("anthropic", "")), detail
        served += 1
    else:
        pytest.fail(f"the budget never ended in {MAX_RUNS} runs\n{detail}")
    assert served >= 1, f"the budget refused the first run\n{detail}"
    # What Claude Code shows: the gateway's 402 and its message.
    shown = proc.stdout + proc.stderr
    assert "402" in shown or "insufficient_funds" in shown, detail
    assert "budget exceeded: this gateway key's daily budget" in shown, detail
    assert "refused by a budget" in log, detail
    # The key is not in what Claude Code showed, nor in the log.
    assert key.key not in shown and key.key not in log, "a secret was shown"
    c = credits(auth_gateway, key.key)
    assert c["total_used"] != "0", c
