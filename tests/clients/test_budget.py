"""Claude Code through a budgeted gateway key: it keeps working until the
key's budget is spent, then shows the budget's error (a 402,
`insufficient_funds`, naming the budget).

It runs against `metered_gateway` (conftest.py), whose config prices the
model Claude Code uses (so the test does not depend on the shipped price
table). The key is made with the real `tollgate keys` CLI and its budget
set with `tollgate budgets` on the store of the running gateway, which
picks it up within seconds.

The budget is made to fit a known number of turns: a first turn, with no
budget yet, measures what one costs (`/v1/report` for the key: every
turn of `claude -p "Say hello"` in the same project sends the same
request); the budget is then 4.5 times that. A turn reserves its worst
case, a little more than its cost (Claude Code's max_tokens of output,
priced cheap in the config, on top of its input), so turns 2 to 4 fit
and the fifth is refused.
"""

from __future__ import annotations

import datetime
import json
import shutil
import subprocess
import time
import urllib.request
from decimal import ROUND_DOWN, Decimal

import pytest

from support import greeting
from test_claude_code import CLAUDE_BIN, CLAUDE_DIR, RUN_TIMEOUT_S, claude_env

MODEL = "mock-anthropic/claude-sonnet-4-5"
TURNS = 4


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


def get(gateway, path: str, key: str) -> dict:
    req = urllib.request.Request(gateway.url + path, headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read(), parse_float=Decimal)


def credits(gateway, key: str) -> dict:
    return get(gateway, "/v1/credits", key)


def spent(gateway, key: str) -> tuple[Decimal, int]:
    """What the key's requests cost in the ledger, and how many there were."""
    today = datetime.datetime.now(datetime.timezone.utc).date()
    day = datetime.timedelta(days=1)
    rows = get(
        gateway,
        f"/v1/report?start_date={today - day}&end_date={today + day}&group_by=model",
        key,
    )["results"]
    return sum((r["total_cost"] for r in rows), Decimal(0)), sum(r["request_count"] for r in rows)


def test_claude_code_works_until_its_budget_ends_then_shows_the_budget_error(
    metered_gateway, tmp_path
):
    gw = metered_gateway
    if shutil.which("node") is None:
        pytest.skip("node is not installed on this machine: Claude Code cannot run")
    if not CLAUDE_BIN.exists():
        pytest.fail(f"Claude Code is not installed at {CLAUDE_BIN}: run `npm ci` in {CLAUDE_DIR}")
    key = gw.create_key("claude-budget")
    home = tmp_path / "home"
    home.mkdir()
    project = tmp_path / "project"
    project.mkdir()
    env = claude_env(gw.url, home, MODEL, gateway_key=key.key)

    def turn() -> tuple[subprocess.CompletedProcess, str, str]:
        offsets = gw.log_offsets()
        proc = subprocess.run(
            [str(CLAUDE_BIN), "-p", "Say hello", "--model", MODEL],
            cwd=project,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
        )
        log = gw.logs_since(offsets, only="gateway")
        detail = (
            f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}\n"
            f"gateway log:\n{log}"
        )
        return proc, log, detail

    # The first turn, unbudgeted: what a turn costs at the config's price.
    proc, log, detail = turn()
    assert proc.returncode == 0, detail
    assert proc.stdout.strip().startswith(greeting("anthropic", "")), detail
    per_turn, requests = spent(gw, key.key)
    assert per_turn > 0 and requests >= 1, (per_turn, requests)

    amount = (per_turn * Decimal("4.5")).quantize(Decimal("1e-9"), rounding=ROUND_DOWN)
    budgets_cli(gw, "set", "--key", key.id, "--usd", str(amount), "--period", "daily")
    # The running gateway reads the store's budgets again within a second.
    deadline = time.monotonic() + 5
    while credits(gw, key.key)["budget"] is None:
        assert time.monotonic() < deadline, "the budget was not picked up within 5 s"
        time.sleep(0.1)
    c = credits(gw, key.key)
    assert c["budget"]["scope"] == f"key:{key.id}", c
    # The first turn counts: the budget's day already holds its spend.
    assert Decimal(c["total_used"]) == per_turn, c

    served = 1
    for _ in range(TURNS + 2):
        proc, log, detail = turn()
        if proc.returncode != 0:
            break
        assert proc.stdout.strip().startswith(greeting("anthropic", "")), detail
        served += 1
    else:
        pytest.fail(f"the budget never ended in {TURNS + 3} turns\n{detail}")
    assert served == TURNS, f"{served} turns were served, not {TURNS}\n{detail}"
    # What Claude Code shows: the gateway's 402 and its message.
    shown = proc.stdout + proc.stderr
    assert "402" in shown or "insufficient_funds" in shown, detail
    assert "budget exceeded: this gateway key's daily budget" in shown, detail
    assert "refused by a budget" in log, detail
    # The key is not in what Claude Code showed, nor in the log.
    assert key.key not in shown and key.key not in log, "a secret was shown"
    # Spent: the turns served, never past the budget.
    total, _ = spent(gw, key.key)
    assert total == Decimal(credits(gw, key.key)["total_used"]) <= amount, (total, amount)
    assert total >= TURNS * per_turn * Decimal("0.9"), (total, per_turn)
