#!/usr/bin/env python3
"""Rebuild src/usage/price/prices.json, tollgate's built-in price table.

Source: LiteLLM's model_prices_and_context_window.json (MIT licence,
repository BerriAI/litellm). The litellm package on PyPI ships the same file
as litellm/model_prices_and_context_window_backup.json, so the simplest way
to refresh is:

    pip download --no-deps -d /tmp/litellm litellm
    unzip -o /tmp/litellm/litellm-*.whl 'litellm/model_prices*' -d /tmp/litellm
    python3 scripts/refresh_prices.py \
        /tmp/litellm/litellm/model_prices_and_context_window_backup.json \
        --source-version "litellm X.Y.Z (PyPI)"

A copy of the repository's model_prices_and_context_window.json works the
same way (pass the commit as --source-version). Then run
`cargo test --lib usage::price` and review the diff: the tests check the
flagship models and sane prices.

What is kept, per provider kind tollgate speaks (openai, anthropic, gemini),
for chat and responses models only: input, output, cache read, cache write
(5 minutes, and 1 hour where it differs), reasoning where it is billed apart
from output, long-context tiers (`*_above_NNNk_tokens`), and the largest
answer in tokens. Batch, flex and priority rates are left out: tollgate
sends standard requests. Prices become decimal strings in USD per million
tokens, converted exactly (Python's Decimal of each float's shortest repr),
so that the gateway reads them as integer nano-dollars without floats.
"""

import argparse
import datetime
import json
import re
import sys
from decimal import Decimal

MTOK = Decimal(1_000_000)

# LiteLLM's `litellm_provider` for each of tollgate's provider kinds, and
# the prefix its keys carry for that provider (stripped).
KINDS = {
    "openai": ("openai", ""),
    "anthropic": ("anthropic", ""),
    "gemini": ("gemini", "gemini/"),
}

MODES = {"chat", "responses"}

# Base rates: our field -> LiteLLM's per-token key.
BASE = {
    "input": "input_cost_per_token",
    "output": "output_cost_per_token",
    "cache_read": "cache_read_input_token_cost",
    "cache_write": "cache_creation_input_token_cost",
    "cache_write_1h": "cache_creation_input_token_cost_above_1hr",
    "reasoning": "output_cost_per_reasoning_token",
}

# Long-context tiers: LiteLLM's key pattern -> our field.
TIER = re.compile(
    r"^(input_cost_per_token|output_cost_per_token|cache_read_input_token_cost"
    r"|cache_creation_input_token_cost|cache_creation_input_token_cost_above_1hr)"
    r"_above_(\d+)k_tokens$"
)
TIER_FIELD = {
    "input_cost_per_token": "input",
    "output_cost_per_token": "output",
    "cache_read_input_token_cost": "cache_read",
    "cache_creation_input_token_cost": "cache_write",
    "cache_creation_input_token_cost_above_1hr": "cache_write_1h",
}


def per_mtok(value, where):
    """A per-token float as an exact decimal string of USD per million tokens."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}: not a number: {value!r}")
    if value < 0:
        raise ValueError(f"{where}: negative price {value!r}")
    d = (Decimal(repr(value)) * MTOK).normalize()
    text = format(d, "f")
    if "." in text and len(text.split(".")[1]) > 9:
        raise ValueError(f"{where}: {text} has more than nine decimals")
    return text


def convert_entry(name, e):
    out = {}
    for field, key in BASE.items():
        if key in e and e[key] is not None:
            out[field] = per_mtok(e[key], f"{name}.{key}")
    # A model not priced by the token (music, per-second audio) lists
    # zeros: left out, so that it is costed as unknown rather than free.
    if "input" not in out or "output" not in out:
        return None
    if Decimal(out["input"]) == 0 and Decimal(out["output"]) == 0:
        return None
    # Defaults that need no entry: the same rate as the one they fall back to.
    if out.get("reasoning") == out["output"]:
        del out["reasoning"]
    if out.get("cache_write_1h") == out.get("cache_write"):
        out.pop("cache_write_1h", None)
    tiers = {}
    for key, value in e.items():
        m = TIER.match(key)
        if m and value is not None:
            above = int(m.group(2)) * 1000
            tiers.setdefault(above, {})[TIER_FIELD[m.group(1)]] = per_mtok(
                value, f"{name}.{key}"
            )
    if tiers:
        out["tiers"] = [
            {"above_input_tokens": above, **rates} for above, rates in sorted(tiers.items())
        ]
    mo = e.get("max_output_tokens")
    if isinstance(mo, int) and mo > 0:
        out["max_output_tokens"] = mo
    return out


def convert(source):
    kinds = {}
    for kind, (provider, prefix) in KINDS.items():
        models = {}
        for key, e in source.items():
            if not isinstance(e, dict) or e.get("litellm_provider") != provider:
                continue
            if e.get("mode") not in MODES:
                continue
            name = key[len(prefix):] if prefix and key.startswith(prefix) else key
            entry = convert_entry(key, e)
            if entry is None:
                continue
            # `gemini/x` and `x` may both be listed: the prefixed one is
            # LiteLLM's name for the Gemini API, so it wins.
            if name in models and not key.startswith(prefix or "\0"):
                continue
            models[name] = entry
        kinds[kind] = dict(sorted(models.items()))
    return kinds


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", help="LiteLLM's model_prices_and_context_window JSON file")
    ap.add_argument("--source-version", required=True, help="the litellm release or commit it came from")
    ap.add_argument("--out", default="src/usage/price/prices.json")
    ap.add_argument("--date", default=datetime.date.today().isoformat(), help="retrieval date (default today)")
    args = ap.parse_args()
    with open(args.source) as f:
        source = json.load(f)
    data = {
        "source": {
            "name": "LiteLLM model_prices_and_context_window.json",
            "repository": "BerriAI/litellm",
            "license": "MIT (Copyright (c) 2023 Berri AI)",
            "version": args.source_version,
            "retrieved": args.date,
            "unit": "USD per million tokens (decimal strings); max_output_tokens in tokens",
            "refresh": "python3 scripts/refresh_prices.py (see its docstring)",
        },
        **convert(source),
    }
    with open(args.out, "w") as f:
        json.dump(data, f, indent=1, sort_keys=False)
        f.write("\n")
    counts = ", ".join(f"{k}: {len(v)}" for k, v in data.items() if k != "source")
    print(f"wrote {args.out} ({counts})", file=sys.stderr)


if __name__ == "__main__":
    main()
