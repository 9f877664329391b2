"""Fixtures: a mock upstream and a gateway in front of it, for the whole session.

`gateway` serves openly (no keys in its store, as a fresh install on
loopback does); `auth_gateway` is a second pair whose store holds gateway
keys made with the real `tollgate keys` CLI, with a subscription-only
Anthropic provider (the client's own OAuth token passed through) and an
OpenAI-format fallback.

`tollgate mock-upstream` and `tollgate serve` run as child processes on free
loopback ports. The binary is $TOLLGATE_BIN, by default target/debug/tollgate
under the repository root (or under $CARGO_TARGET_DIR when that is set).
Both processes are stopped at the end of the session (SIGTERM, then SIGKILL
after a bounded wait). Their logs go to files in a temporary directory; the
lines they wrote during a failing test are attached to its report.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import anthropic
import openai
import pytest

from support import REPO_ROOT

STARTUP_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
CLIENT_TIMEOUT_S = 30.0
CLI_TIMEOUT_S = 30.0


def tollgate_bin() -> Path:
    if os.environ.get("TOLLGATE_BIN"):
        return Path(os.environ["TOLLGATE_BIN"]).resolve()
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO_ROOT / "target")
    if not target.is_absolute():
        target = REPO_ROOT / target
    return target / "debug" / "tollgate"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CONFIG_TEMPLATE = """\
[server]
listen = "127.0.0.1:0"

# The embedded store, beside this file (no keys in it: the gateway serves
# openly on loopback, as a fresh install does).
[store]
path = "tollgate.db"

[providers.mock-openai]
kind = "openai"
base_url = "http://127.0.0.1:{mock}/v1"
api_key = "test-openai-key"

[providers.mock-anthropic]
kind = "anthropic"
base_url = "http://127.0.0.1:{mock}"
api_key = "test-anthropic-key"

[providers.mock-gemini]
kind = "gemini"
base_url = "http://127.0.0.1:{mock}"
api_key = "test-gemini-key"

[providers.mock-compat]
kind = "openai-compatible"
base_url = "http://127.0.0.1:{mock}/v1"
api_key = "test-compat-key"

[models]
"claude-*" = "mock-anthropic/*"

# A Claude model whose first provider is rate limited (as a subscription at
# its limit is): the gateway falls back to the next provider.
[models.claude-sonnet-limited]
targets = ["mock-anthropic/claude-sonnet-4-5~status=429~retry-after=30", "mock-openai/gpt-4o"]
"""

AUTH_CONFIG_TEMPLATE = """\
[server]
listen = "127.0.0.1:0"

# The embedded store, beside this file: the fixture makes a key in it
# before the gateway starts, so every request needs one.
[store]
path = "tollgate.db"

# A Claude subscription and nothing else: no key of its own, it sends the
# client's own OAuth token (Authorization: Bearer sk-ant-oat01-...).
[providers.claude-sub]
kind = "anthropic"
base_url = "http://127.0.0.1:{mock}"
pass_through = true

[providers.mock-anthropic]
kind = "anthropic"
base_url = "http://127.0.0.1:{mock}"
api_key = "test-anthropic-key"

[providers.mock-openai]
kind = "openai"
base_url = "http://127.0.0.1:{mock}/v1"
api_key = "test-openai-key"
allow_byok = true

# The subscription first; when it is at its limit, an OpenAI-format provider.
[models.claude-sonnet-5-5]
targets = ["claude-sub/claude-sonnet-5-5", "mock-openai/gpt-4o"]
"""

# The config keys of `metered_gateway`, by name; each is its own team.
METERED_KEYS = {
    name: f"tg-test-{name}-key-0123456789"
    for name in ("usage", "report", "broke-openai", "broke-anthropic", "soft")
}

# Prices and budgets (the config's `[prices]` and `[[budgets]]`) on the
# teams of `METERED_KEYS`, and a key made in the store (`sdk`, as for
# `auth_gateway`) for `tollgate keys` and `tollgate budgets`. Braces are
# doubled for `str.format`.
METERED_CONFIG_TEMPLATE = (
    """\
[server]
listen = "127.0.0.1:0"

[store]
path = "tollgate.db"

[providers.mock-openai]
kind = "openai"
base_url = "http://127.0.0.1:{mock}/v1"
api_key = "test-openai-key"

[providers.mock-anthropic]
kind = "anthropic"
base_url = "http://127.0.0.1:{mock}"
api_key = "test-anthropic-key"

[auth]
keys = [
"""
    + "".join(
        f'  {{{{ name = "{name}", key = "{key}", team = "{name}" }}}},\n'
        for name, key in METERED_KEYS.items()
    )
    + """\
]

# USD per million tokens. Claude Code's model has a cheap output: each of
# its requests reserves Claude Code's own max_tokens of output, which the
# test does not see, so the input (counted alike by the gateway's
# estimate and by the mock) is most of what a turn reserves and costs.
[prices]
"gpt-4o" = {{ input = 2.5, output = 10.0 }}
"claude-x" = {{ input = 3.0, output = 15.0, cache_read = 0.3, cache_write = 3.75 }}
"mock-anthropic/claude-sonnet-4-5" = {{ input = 3.0, output = 0.3 }}

[[budgets]]
scope = "team:report"
usd = 1
period = "daily"

[[budgets]]
scope = "team:broke-openai"
usd = 0.0005
period = "daily"

[[budgets]]
scope = "team:broke-anthropic"
usd = 0.0008
period = "monthly"

[[budgets]]
scope = "team:soft"
usd = 0.0003
period = "weekly"
soft = true
"""
)


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path

    def tail(self, n: int = 40) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-n:])

    def stop(self) -> None:
        if self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=STOP_TIMEOUT_S)


@dataclass
class Gateway:
    """The running gateway: `url` is its base URL (no trailing slash, no /v1)."""

    url: str
    mock_url: str
    procs: list[Proc] = field(default_factory=list)
    binary: Path | None = None
    config: Path | None = None

    def log_offsets(self) -> dict[str, int]:
        return {p.name: p.log.stat().st_size if p.log.exists() else 0 for p in self.procs}

    def logs_since(self, offsets: dict[str, int], only: str | None = None) -> str:
        """What the processes (or only the one named `only`) logged since `offsets`."""
        out = []
        for p in self.procs:
            if only is not None and p.name != only:
                continue
            try:
                with p.log.open("rb") as f:
                    f.seek(offsets.get(p.name, 0))
                    text = f.read().decode(errors="replace")
            except OSError:
                continue
            if text.strip():
                out.append(f"--- {p.name} ---\n{text.rstrip()}")
        return "\n".join(out)


@dataclass
class CreatedKey:
    """A gateway key as `tollgate keys create|rotate --json` printed it."""

    id: str
    key: str


class KeyCliError(AssertionError):
    """`tollgate keys` failed: its exit code and stderr (never a key) say why."""


@dataclass
class AuthGateway(Gateway):
    """A gateway whose store holds gateway keys: `key` (named `sdk`) was
    made before it started; `keys()` runs `tollgate keys` on the same
    store while it runs."""

    key: CreatedKey | None = None

    def keys(self, *args: str) -> str:
        """Runs `tollgate keys ARGS --config <config>`; its stdout."""
        return run_keys_cli(self.binary, self.config, *args)

    def create_key(self, name: str, *flags: str) -> CreatedKey:
        """A new key named `name` (`flags` as `keys create` takes them)."""
        return parse_key(self.keys("create", "--name", name, "--json", *flags))

    def revoke(self, key_id: str) -> None:
        self.keys("revoke", key_id)

    def rotate(self, key_id: str, grace: str) -> CreatedKey:
        return parse_key(self.keys("rotate", key_id, "--grace", grace, "--json"))

    def mock_credentials(self) -> list[dict]:
        """What the mock received so far: `[{api, path, header, credential}]`."""
        with urllib.request.urlopen(self.mock_url + "/mock/credentials", timeout=5) as r:
            return json.load(r)


def run_keys_cli(binary: Path, config: Path, *args: str) -> str:
    proc = subprocess.run(
        [str(binary), "keys", *args, "--config", str(config)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        env={**os.environ, "NO_COLOR": "1"},
    )
    if proc.returncode != 0:
        raise KeyCliError(f"tollgate keys {args[0]} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def parse_key(stdout: str) -> CreatedKey:
    v = json.loads(stdout)
    return CreatedKey(id=v["id"], key=v["key"])


def start(name: str, args: list[str], log: Path) -> Proc:
    f = log.open("wb")
    try:
        popen = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=f,
            stderr=subprocess.STDOUT,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "info"), "NO_COLOR": "1"},
        )
    finally:
        f.close()
    return Proc(name, popen, log)


def wait_ready(proc: Proc, check) -> None:
    """Waits until `check()` is true; fails with the process log if it exits or time runs out."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(
                f"{proc.name} exited with {proc.popen.returncode} during startup:\n{proc.tail()}"
            )
        if check():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{proc.name} not ready after {STARTUP_TIMEOUT_S}s:\n{proc.tail()}")


def tcp_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def health_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=1) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def require_binary() -> Path:
    binary = tollgate_bin()
    if not binary.is_file():
        pytest.fail(
            f"tollgate binary not found at {binary}: run `cargo build` first "
            "or point TOLLGATE_BIN at it",
            pytrace=False,
        )
    return binary


def run_stack(
    workdir: Path,
    template: str,
    make: Callable[..., Gateway] = Gateway,
    before_serve: Callable[[Path, Path], dict] | None = None,
) -> Iterator[Gateway]:
    """Starts the mock and a gateway configured by `template` (its `{mock}`
    is the mock's port) in `workdir`, yields `make(...)` for them, and
    stops both when resumed or closed. `before_serve(binary, config)` runs
    once, before the first gateway starts; what it returns is passed on to
    `make` (the fixture's extra fields)."""
    binary = require_binary()
    procs: list[Proc] = []
    extra: dict | None = None
    try:
        # A free port can be taken between probing and binding: retry a few times.
        last_error: Exception | None = None
        for attempt in range(3):
            for p in procs:
                p.stop()
            procs.clear()
            mock_port, gw_port = free_port(), free_port()
            config = workdir / "tollgate.toml"
            config.write_text(template.format(mock=mock_port))
            if extra is None:
                extra = before_serve(binary, config) if before_serve else {}
            try:
                mock = start(
                    "mock-upstream",
                    [str(binary), "mock-upstream", "--listen", f"127.0.0.1:{mock_port}"],
                    workdir / f"mock-{attempt}.log",
                )
                procs.append(mock)
                wait_ready(mock, lambda: tcp_open(mock_port))
                url = f"http://127.0.0.1:{gw_port}"
                gw = start(
                    "gateway",
                    [str(binary), "serve", "--config", str(config), "--listen", f"127.0.0.1:{gw_port}"],
                    workdir / f"gateway-{attempt}.log",
                )
                procs.append(gw)
                wait_ready(gw, lambda: health_ok(url))
            except RuntimeError as e:
                last_error = e
                continue
            yield make(
                url=url,
                mock_url=f"http://127.0.0.1:{mock_port}",
                procs=list(procs),
                binary=binary,
                config=config,
                **extra,
            )
            return
        pytest.fail(f"could not start the gateway and the mock: {last_error}", pytrace=False)
    finally:
        for p in procs:
            p.stop()


@pytest.fixture(scope="session")
def gateway(tmp_path_factory) -> Iterator[Gateway]:
    yield from run_stack(tmp_path_factory.mktemp("tollgate"), CONFIG_TEMPLATE)


def make_key(binary: Path, config: Path) -> dict:
    """Makes the key `sdk` in the store of `config`, before the gateway starts."""
    # Plain `keys create` (the key alone on stdout), as a user runs it;
    # its id from `keys list`, which never shows the key.
    key = run_keys_cli(binary, config, "create", "--name", "sdk").strip()
    listed = json.loads(run_keys_cli(binary, config, "list", "--json"))
    (record,) = [k for k in listed if k["name"] == "sdk"]
    assert key.startswith("tg_") and key not in json.dumps(listed)
    return {"key": CreatedKey(id=record["id"], key=key)}


@pytest.fixture(scope="session")
def auth_gateway(tmp_path_factory) -> Iterator[AuthGateway]:
    """The gateway with keys: see `AuthGateway` and `AUTH_CONFIG_TEMPLATE`."""
    yield from run_stack(
        tmp_path_factory.mktemp("tollgate-auth"), AUTH_CONFIG_TEMPLATE, AuthGateway, make_key
    )


@pytest.fixture(scope="session")
def metered_gateway(tmp_path_factory) -> Iterator[AuthGateway]:
    """The gateway with prices, budgets and keys: see `METERED_CONFIG_TEMPLATE`
    (its config keys are `METERED_KEYS`)."""
    yield from run_stack(
        tmp_path_factory.mktemp("tollgate-metered"),
        METERED_CONFIG_TEMPLATE,
        AuthGateway,
        make_key,
    )


@pytest.fixture
def openai_client(gateway: Gateway) -> openai.OpenAI:
    """The OpenAI SDK pointed at the gateway. No retries: errors surface at once."""
    client = openai.OpenAI(
        base_url=gateway.url + "/v1",
        api_key="client-key-not-checked",
        max_retries=0,
        timeout=CLIENT_TIMEOUT_S,
    )
    yield client
    client.close()


@pytest.fixture
def anthropic_client(gateway: Gateway) -> anthropic.Anthropic:
    """The Anthropic SDK pointed at the gateway. No retries: errors surface at once."""
    client = anthropic.Anthropic(
        base_url=gateway.url,
        api_key="client-key-not-checked",
        max_retries=0,
        timeout=CLIENT_TIMEOUT_S,
    )
    yield client
    client.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """Attaches what the gateway and the mock logged during a failing test to its report."""
    args = getattr(item, "funcargs", {})  # set when any fixture used them
    gws = [
        (n, args[n])
        for n in ("gateway", "auth_gateway", "metered_gateway")
        if args.get(n) is not None
    ]
    offsets = {n: gw.log_offsets() for n, gw in gws}
    outcome = yield
    if outcome.excinfo is not None:
        for n, gw in gws:
            logs = gw.logs_since(offsets[n])
            if logs:
                item.add_report_section("call", f"tollgate logs ({n})", logs)
