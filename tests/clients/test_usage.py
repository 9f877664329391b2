"""Usage, cost and budgets through the official SDKs, against
`metered_gateway` (conftest.py): prices from its `[prices]`, budgets from
its `[[budgets]]`, one config key (and team) per concern.

- The OpenAI SDK reads `usage.cost` (a decimal number of dollars) in
  complete answers, in the usage chunk of a stream with `include_usage`,
  and in a Responses answer; the Anthropic SDK works unchanged.
- `/v1/generation`, `/v1/credits` and `/v1/report` answer the Vercel AI
  Gateway's shapes with the numbers the answers carried.
- A hard budget ends in a 402 that each SDK raises as its status error
  with `insufficient_funds`; a soft one serves and marks
  `x-tollgate-budget: over`.

Costs are compared exactly: dollars are read as `Decimal` from the
response text, and the expected cost is the token counts times the
config's price per million.
"""

from __future__ import annotations

import datetime
import json
import urllib.error
import urllib.request
from decimal import Decimal

import anthropic
import openai
import pytest

from conftest import CLIENT_TIMEOUT_S, METERED_KEYS

HI = [{"role": "user", "content": "hi"}]
MILLION = Decimal(1_000_000)

# The config's prices, USD per million tokens: (input, output).
GPT_4O = (Decimal("2.5"), Decimal("10"))
CLAUDE_X = (Decimal("3"), Decimal("15"))

# The fields of a generation in Vercel's shape.
GENERATION_FIELDS = {
    "id",
    "total_cost",
    "usage",
    "model",
    "provider_name",
    "streamed",
    "finish_reason",
    "latency",
    "generation_time",
    "native_tokens_prompt",
    "native_tokens_completion",
    "native_tokens_reasoning",
    "native_tokens_cached",
    "native_tokens_cache_creation",
    "created_at",
    "is_byok",
}

REPORT_FIELDS = {
    "total_cost",
    "market_cost",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_creation_input_tokens",
    "reasoning_tokens",
    "request_count",
}


def cost(price: tuple[Decimal, Decimal], input_tokens: int, output_tokens: int) -> Decimal:
    """What the tokens cost at `price`, exactly (every price here is a
    whole number of nano-dollars per token)."""
    return (input_tokens * price[0] + output_tokens * price[1]) / MILLION


def get(gw, path: str, key: str) -> tuple[int, dict]:
    """GETs `path` with `key`; the status and the JSON, dollars as Decimal."""
    req = urllib.request.Request(gw.url + path, headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(req, timeout=CLIENT_TIMEOUT_S) as r:
            return r.status, json.loads(r.read(), parse_float=Decimal)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read(), parse_float=Decimal)


def generation(gw, key: str, request_id: str) -> dict:
    status, body = get(gw, f"/v1/generation?id={request_id}", key)
    assert status == 200, body
    assert set(body) == {"data"}, body
    assert set(body["data"]) == GENERATION_FIELDS, body
    return body["data"]


def openai_client(gw, name: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gw.url + "/v1", api_key=METERED_KEYS[name], max_retries=0, timeout=CLIENT_TIMEOUT_S
    )


def anthropic_client(gw, name: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=gw.url, api_key=METERED_KEYS[name], max_retries=0, timeout=CLIENT_TIMEOUT_S
    )


def raw_cost(text: str, *path: str) -> Decimal:
    """The `cost` under `path` in a JSON text, exactly as sent."""
    v = json.loads(text, parse_float=Decimal)
    for p in path:
        v = v[p]
    return v["cost"]


def test_openai_sdk_sees_usage_cost_and_the_generation_agrees(metered_gateway):
    with openai_client(metered_gateway, "usage") as c:
        raw = c.chat.completions.with_raw_response.create(
            model="mock-openai/gpt-4o", messages=HI, max_tokens=16
        )
    completion = raw.parse()
    u = completion.usage
    want = cost(GPT_4O, u.prompt_tokens, u.completion_tokens)
    assert want > 0
    # The SDK keeps the extra field; its float reads the exact decimal sent.
    assert u.cost == float(want)
    assert raw_cost(raw.http_response.text, "usage") == want
    g = generation(metered_gateway, METERED_KEYS["usage"], raw.headers["x-tollgate-request-id"])
    assert g["total_cost"] == want and g["usage"] == want, g
    assert (g["native_tokens_prompt"], g["native_tokens_completion"]) == (
        u.prompt_tokens,
        u.completion_tokens,
    )
    assert (g["native_tokens_reasoning"], g["native_tokens_cached"]) == (0, 0)
    assert (g["provider_name"], g["model"], g["finish_reason"]) == ("mock-openai", "gpt-4o", "stop")
    assert g["streamed"] is False and g["is_byok"] is False, g
    assert 0 <= g["latency"] <= g["generation_time"], g


def test_openai_sdk_stream_with_include_usage_carries_the_cost(metered_gateway):
    with openai_client(metered_gateway, "usage") as c:
        with c.chat.completions.with_streaming_response.create(
            model="mock-openai/gpt-4o",
            messages=HI,
            max_tokens=16,
            stream=True,
            stream_options={"include_usage": True},
        ) as resp:
            request_id = resp.headers["x-tollgate-request-id"]
            chunks = list(resp.parse())
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text.startswith("Hello from the mock openai upstream"), text
    (usage,) = [ch.usage for ch in chunks if ch.usage is not None]
    want = cost(GPT_4O, usage.prompt_tokens, usage.completion_tokens)
    assert usage.cost == float(want)
    g = generation(metered_gateway, METERED_KEYS["usage"], request_id)
    assert g["total_cost"] == want, g
    assert g["streamed"] is True, g
    assert (g["native_tokens_prompt"], g["native_tokens_completion"]) == (
        usage.prompt_tokens,
        usage.completion_tokens,
    )


def test_openai_sdk_responses_carry_the_cost(metered_gateway):
    with openai_client(metered_gateway, "usage") as c:
        raw = c.responses.with_raw_response.create(
            model="mock-openai/gpt-4o", input="hi", max_output_tokens=16
        )
    r = raw.parse()
    assert r.output_text.startswith("Hello from the mock openai upstream"), r.output_text
    want = cost(GPT_4O, r.usage.input_tokens, r.usage.output_tokens)
    assert raw_cost(raw.http_response.text, "usage") == want
    g = generation(metered_gateway, METERED_KEYS["usage"], raw.headers["x-tollgate-request-id"])
    assert g["total_cost"] == want, g


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "streamed"])
def test_anthropic_sdk_works_unchanged_and_is_costed(metered_gateway, stream):
    with anthropic_client(metered_gateway, "usage") as c:
        if stream:
            with c.messages.stream(
                model="mock-anthropic/claude-x", max_tokens=16, messages=HI
            ) as s:
                message = s.get_final_message()
                request_id = s.response.headers["x-tollgate-request-id"]
        else:
            raw = c.messages.with_raw_response.create(
                model="mock-anthropic/claude-x", max_tokens=16, messages=HI
            )
            message = raw.parse()
            request_id = raw.headers["x-tollgate-request-id"]
            # Anthropic's format has no place for a cost: none is added.
            assert "cost" not in json.loads(raw.http_response.text)["usage"]
    assert message.content[0].text.startswith("Hello from the mock anthropic upstream")
    u = message.usage
    g = generation(metered_gateway, METERED_KEYS["usage"], request_id)
    assert g["total_cost"] == cost(CLAUDE_X, u.input_tokens, u.output_tokens), (g, u)
    assert (g["native_tokens_prompt"], g["native_tokens_completion"]) == (
        u.input_tokens,
        u.output_tokens,
    )
    assert g["streamed"] is stream and g["provider_name"] == "mock-anthropic", g


def test_credits_and_report_after_a_few_requests(metered_gateway):
    gw, key = metered_gateway, METERED_KEYS["report"]
    spent: dict[str, tuple[Decimal, int, int, int]] = {}

    def add(model: str, price: tuple[Decimal, Decimal], i: int, o: int) -> None:
        total, n, inp, out = spent.get(model, (Decimal(0), 0, 0, 0))
        spent[model] = (total + cost(price, i, o), n + 1, inp + i, out + o)

    with openai_client(gw, "report") as c:
        for _ in range(2):
            r = c.chat.completions.create(model="mock-openai/gpt-4o", messages=HI, max_tokens=16)
            u = r.usage
            add("gpt-4o", GPT_4O, u.prompt_tokens, u.completion_tokens)
    with anthropic_client(gw, "report") as c:
        m = c.messages.create(model="mock-anthropic/claude-x", max_tokens=16, messages=HI)
        u = m.usage
        add("claude-x", CLAUDE_X, u.input_tokens, u.output_tokens)
    total = sum(v[0] for v in spent.values())

    # /v1/credits: the team's $1 a day, less what the three cost.
    status, credits = get(gw, "/v1/credits", key)
    assert status == 200, credits
    assert Decimal(credits["total_used"]) == total, credits
    assert Decimal(credits["balance"]) == 1 - total, credits
    assert credits["budget"]["scope"] == "team:report", credits
    assert credits["budget"]["period"] == "daily" and credits["budget"]["soft"] is False, credits

    # /v1/report: only this key's rows, grouped by model (around today,
    # so that a run across midnight UTC still finds them).
    today = datetime.datetime.now(datetime.timezone.utc).date()
    day = datetime.timedelta(days=1)
    days = f"start_date={today - day}&end_date={today + day}"
    status, report = get(gw, f"/v1/report?{days}&group_by=model", key)
    assert status == 200, report
    assert set(report) == {"results"}, report
    rows = {r["model"]: r for r in report["results"]}
    assert set(rows) == set(spent), report
    for model, (c, n, inp, out) in spent.items():
        r = rows[model]
        assert set(r) == REPORT_FIELDS | {"model"}, r
        assert (r["total_cost"], r["market_cost"], r["request_count"]) == (c, c, n), r
        assert (r["input_tokens"], r["output_tokens"]) == (inp, out), r
    status, report = get(gw, f"/v1/report?{days}&group_by=credential_type", key)
    assert status == 200, report
    (row,) = report["results"]
    assert row["credential_type"] == "gateway" and row["total_cost"] == total, report
    assert row["request_count"] == 3, report
    # A bad grouping is a 400 in the OpenAI format, naming the field.
    status, err = get(gw, f"/v1/report?{days}&group_by=planet", key)
    assert status == 400 and err["error"]["param"] == "group_by", err


def test_a_hard_budget_ends_in_the_openai_sdks_status_error(metered_gateway):
    served = 0
    with openai_client(metered_gateway, "broke-openai") as c:
        for _ in range(20):
            try:
                c.chat.completions.create(model="mock-openai/gpt-4o", messages=HI, max_tokens=16)
            except openai.APIStatusError as e:
                error = e
                break
            served += 1
        else:
            pytest.fail("the budget never ended in 20 requests")
    assert served >= 1, "the budget refused the first request"
    assert error.status_code == 402
    body = error.response.json()
    assert body["error"]["type"] == "insufficient_funds", body
    assert body["error"]["code"] == "budget_exceeded", body
    assert "team `broke-openai`'s daily budget" in body["error"]["message"], body
    # Never past the amount.
    _, credits = get(metered_gateway, "/v1/credits", METERED_KEYS["broke-openai"])
    assert Decimal(0) < Decimal(credits["total_used"]) <= Decimal("0.0005"), credits


def test_a_hard_budget_ends_in_the_anthropic_sdks_status_error(metered_gateway):
    served = 0
    with anthropic_client(metered_gateway, "broke-anthropic") as c:
        for _ in range(20):
            try:
                c.messages.create(model="mock-anthropic/claude-x", max_tokens=16, messages=HI)
            except anthropic.APIStatusError as e:
                error = e
                break
            served += 1
        else:
            pytest.fail("the budget never ended in 20 requests")
    assert served >= 1, "the budget refused the first request"
    assert error.status_code == 402
    body = error.response.json()
    assert body["type"] == "error", body
    assert body["error"]["type"] == "insufficient_funds", body
    assert "team `broke-anthropic`'s monthly budget" in body["error"]["message"], body
    _, credits = get(metered_gateway, "/v1/credits", METERED_KEYS["broke-anthropic"])
    assert Decimal(0) < Decimal(credits["total_used"]) <= Decimal("0.0008"), credits


def test_a_soft_budget_serves_past_its_amount_and_marks_the_answers(metered_gateway):
    marks = []
    with openai_client(metered_gateway, "soft") as c:
        for _ in range(4):
            raw = c.chat.completions.with_raw_response.create(
                model="mock-openai/gpt-4o", messages=HI, max_tokens=16
            )
            assert raw.parse().choices[0].message.content
            marks.append(raw.headers.get("x-tollgate-budget"))
    # Served every time; marked from the first request past the amount on.
    first_over = marks.index("over")
    assert first_over >= 1, marks
    assert marks == [None] * first_over + ["over"] * (4 - first_over), marks
    _, credits = get(metered_gateway, "/v1/credits", METERED_KEYS["soft"])
    assert Decimal(credits["balance"]) < 0, credits
    assert credits["budget"]["soft"] is True, credits
