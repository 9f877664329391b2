#!/usr/bin/env python3
"""Load benchmark for tollgate (issue 3), standard library only.

Starts the mock upstream, the gateway (with `--layers none` and with
`--layers default`) and, unless told otherwise, two other gateways (the
LiteLLM proxy and the Portkey gateway), all on 127.0.0.1, and loads each with
`wrk` in the same run and against the same mock, so that every figure can be
compared with a direct call to the mock. Everything it starts is stopped when
it ends, however it ends.

    python3 bench/run.py                 # full run: release build, peers
    python3 bench/run.py --smoke --bin target/debug/tollgate   # CI check

Results go to bench/results/<UTC timestamp>.{md,json}; the markdown is also
printed. docs/BENCHMARKS.md says what each figure means.

Exit status: 0 when every scenario answered as expected through the mock and
tollgate (status 200, the mock's reply in the body, streams ending with their
terminator, no error under load); 1 otherwise. A peer that cannot be installed
or cannot serve a scenario is skipped with a line saying why, and does not
change the exit status.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PEERS_DIR = BENCH / ".peers"
RESULTS_DIR = BENCH / "results"
WRK_SCRIPT = BENCH / "wrk" / "post.lua"
GATEWAY_CONFIG = BENCH / "gateway.toml"
PORTKEY_SPEC = BENCH / "peers" / "portkey"
PORTKEY_PRELOAD = BENCH / "peers" / "loopback.mjs"

# Pinned peer versions. LiteLLM 1.107.0 is a compromised release listed on
# the package index: never move the pin to it. The Portkey version, and the
# @hono/node-server version its streams need on Node 20, are pinned in
# bench/peers/portkey/package.json and its lock file.
LITELLM_VERSION = "1.80.17"
LITELLM_COMPROMISED = {"1.107.0"}

MOCK_KEY = "mock-key"
CALIBRATION = "direct, mock on CPU 0"
USER_TEXT = "Hello! Can you tell me a joke about routers?"
SYSTEM_TEXT = "You are a helpful assistant."


# ---------------------------------------------------------------- processes


class StartError(Exception):
    """A process did not start or did not become ready."""


class Service:
    """A process this script started, in its own process group (so that it
    and anything it forks can be stopped together), pinned to `cpus`."""

    running: list["Service"] = []

    def __init__(self, name: str, argv: list[str], log: Path, cpus: set[int] | None,
                 env: dict[str, str] | None = None, cwd: Path | None = None):
        self.name = name
        self.argv = argv
        self.log = log
        self.cpus = cpus
        self.env = env
        self.cwd = cwd
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Service":
        cpus = self.cpus

        def pin() -> None:
            if cpus:
                os.sched_setaffinity(0, cpus)

        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=self.env, cwd=self.cwd, start_new_session=True, preexec_fn=pin)
        Service.running.append(self)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pids(self) -> list[int]:
        """This process and its descendants."""
        if not self.alive():
            return []
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            children.setdefault(ppid, []).append(int(entry))
        out, todo = [], [self.pid]
        while todo:
            p = todo.pop()
            out.append(p)
            todo.extend(children.get(p, []))
        return out

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            # The group is the one start() created for this process.
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=5)
        else:
            # The leader is gone; stragglers of its group may not be.
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self in Service.running:
            Service.running.remove(self)

    @classmethod
    def stop_all(cls) -> None:
        for s in list(reversed(cls.running)):
            s.stop()


def on_signal(signum, _frame):
    Service.stop_all()
    sys.exit(128 + signum)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(svc: Service, port: int, path: str, headers: dict[str, str],
               timeout: float) -> None:
    """Polls GET `path` until it answers below 500."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not svc.alive():
            raise StartError(f"{svc.name} exited ({svc.proc.returncode}):\n{svc.log_tail()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            resp.read()
            conn.close()
            if resp.status < 500:
                return
            last = f"status {resp.status}"
        except OSError as e:
            last = str(e)
        time.sleep(0.1)
    raise StartError(f"{svc.name} not ready after {timeout:.0f} s ({last}):\n{svc.log_tail()}")


# ------------------------------------------------------------ /proc figures

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_ticks_seconds(pids: list[int]) -> float:
    """utime + stime of the processes (all their threads, live or exited),
    in seconds, to the clock tick (10 ms on most systems)."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)
    return total / CLK_TCK


def thread_runtimes_ns(pids: list[int]) -> dict[tuple[int, int], int]:
    """Time on CPU of each live thread, in ns (`/proc/PID/task/TID/schedstat`)."""
    out = {}
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                ns = int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            out[(pid, int(tid))] = ns
    return out


@dataclass
class CpuSnapshot:
    ticks_s: float
    threads_ns: dict[tuple[int, int], int]


def cpu_snapshot(pids: list[int]) -> CpuSnapshot:
    return CpuSnapshot(cpu_ticks_seconds(pids), thread_runtimes_ns(pids))


def cpu_used(before: CpuSnapshot, after: CpuSnapshot) -> float:
    """CPU seconds between two snapshots. Per-thread schedstat deltas are
    exact to the nanosecond, where utime + stime move by 10 ms ticks (one
    tick is a large share of a c=1 point); but a thread that exited between
    the snapshots is missing from them, so when the tick count shows more
    than the threads do (beyond two ticks of rounding), it is taken."""
    threads = sum(ns - before.threads_ns.get(k, 0) for k, ns in after.threads_ns.items()) / 1e9
    ticks = after.ticks_s - before.ticks_s
    return ticks if ticks > threads + 2 / CLK_TCK else threads


def status_kb(pids: list[int], key: str) -> int:
    """Sum of a `/proc/PID/status` field (VmRSS, VmHWM) in KiB."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def reset_peak_rss(pids: list[int]) -> bool:
    """Resets VmHWM to the current RSS (`5` to clear_refs, Linux >= 4.0)."""
    ok = True
    for pid in pids:
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            ok = False
    return ok


# ------------------------------------------------------------ request bodies


def claude_code_body(model: str) -> dict:
    """A request shaped like the ones Claude Code sends (~75 KB): three system
    blocks, two with cache_control; 24 tool schemas; five turns with a tool
    call and a 2.6 KB tool result; thinking, metadata, context_management.
    The same shape as the one benches/translate.rs builds."""
    lorem = ("You are an interactive CLI tool that helps users with software engineering "
             "tasks. Use the instructions below and the tools available to you to assist "
             "the user. ")
    system = [
        {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."},
        {"type": "text", "text": lorem * 110, "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": lorem * 30, "cache_control": {"type": "ephemeral"}},
    ]
    tools = [{
        "name": f"Tool{i}",
        "description": lorem * 9,
        "input_schema": {
            "type": "object",
            "$schema": "http://json-schema.org/draft-07/schema#",
            "additionalProperties": False,
            "required": ["path", "mode"],
            "properties": {
                "path": {"type": "string", "description": "The absolute path to operate on"},
                "mode": {"type": "string", "enum": ["read", "write", "append"]},
                "limit": {"type": "number", "description": "How many lines to read"},
                "options": {"type": "object",
                            "properties": {"recursive": {"type": "boolean"}}},
            },
        },
    } for i in range(24)]
    messages = [
        {"role": "user", "content": [
            {"type": "text", "text": "<system-reminder>context</system-reminder>"},
            {"type": "text", "text": "Fix the failing test in src/lib.rs"}]},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me look at the file."},
            {"type": "tool_use", "id": "toolu_01", "name": "Tool3",
             "input": {"path": "/repo/src/lib.rs", "mode": "read"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01",
             "content": "fn main() {}\n" * 200}]},
        {"role": "assistant", "content": [{"type": "text", "text": "I see the problem."}]},
        {"role": "user", "content": "Go ahead."},
    ]
    return {
        "model": model,
        "max_tokens": 64000,
        "stream": True,
        "system": system,
        "messages": messages,
        "tools": tools,
        "metadata": {"user_id": "user_abc_account_def_session_123"},
        "thinking": {"type": "enabled", "budget_tokens": 31999},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    }


def openai_chat_body(model: str, stream: bool) -> dict:
    body = {
        "model": model,
        "max_tokens": 256,
        "messages": [{"role": "system", "content": SYSTEM_TEXT},
                     {"role": "user", "content": USER_TEXT}],
    }
    if stream:
        body["stream"] = True
    return body


def anthropic_small_body(model: str) -> dict:
    return {
        "model": model,
        "max_tokens": 256,
        "stream": True,
        "system": SYSTEM_TEXT,
        "messages": [{"role": "user", "content": USER_TEXT}],
    }


# ------------------------------------------------------ checking an answer


def sse_events(text: str) -> list[tuple[str, str]]:
    """(event, data) pairs of an event stream; event is "" when not named."""
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        event, data = "", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
        if event or data:
            out.append((event, "\n".join(data)))
    return out


def check_answer(fmt: str, status: int, body: bytes, api: str, said: str,
                 chunks: int | None) -> str | None:
    """None when the answer is the mock's reply in format `fmt`, else what
    is wrong. `api` is the mock API that must have answered (openai or
    anthropic); `said` the last user text it must echo; `chunks` the number
    of text deltas a stream must carry, when the scenario fixes it."""
    if status != 200:
        return f"status {status}: {body[:300]!r}"
    text = body.decode("utf-8", "replace")
    want = f"Hello from the mock {api} upstream. You said: {said}"
    deltas: list[str] = []
    try:
        if fmt == "openai-json":
            reply = json.loads(text)["choices"][0]["message"]["content"]
        elif fmt == "openai-sse":
            events = [d for _, d in sse_events(text)]
            if not events or events[-1].strip() != "[DONE]":
                return f"stream does not end with data: [DONE]: ...{text[-200:]!r}"
            for d in events[:-1]:
                for choice in json.loads(d).get("choices", []):
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        deltas.append(piece)
            reply = "".join(deltas)
        elif fmt == "anthropic-sse":
            events = sse_events(text)
            kinds = [json.loads(d).get("type") for _, d in events if d]
            if not kinds or kinds[-1] != "message_stop":
                return f"stream does not end with message_stop: ...{text[-200:]!r}"
            for _, d in events:
                ev = json.loads(d) if d else {}
                if ev.get("type") == "content_block_delta" and \
                        ev.get("delta", {}).get("type") == "text_delta":
                    deltas.append(ev["delta"]["text"])
            reply = "".join(deltas)
        else:
            raise ValueError(fmt)
    except (ValueError, KeyError, IndexError, TypeError) as e:
        return f"cannot read the answer ({e}): {text[:300]!r}"
    if reply != want:
        return f"reply {reply[:120]!r}, expected {want!r}"
    if chunks is not None and len(deltas) != chunks:
        return f"{len(deltas)} text deltas, expected {chunks}"
    return None


# --------------------------------------------------------------- scenarios


@dataclass
class Request:
    """One scenario's request as a given target receives it."""
    path: str
    body: bytes
    headers: dict[str, str]
    answer_format: str  # openai-json | openai-sse | anthropic-sse


@dataclass
class Scenario:
    id: str
    title: str
    client: str  # the client's wire format: openai | anthropic
    stream: bool
    api: str  # the mock API that answers: openai | anthropic
    said: str
    chunks: int | None
    body: Callable[[str], dict]  # model -> body, in the client's format


SCENARIOS = [
    Scenario("small", "small chat request, OpenAI format in and out, not streamed",
             "openai", False, "openai", USER_TEXT, None,
             lambda m: openai_chat_body(m, stream=False)),
    Scenario("stream20", "streamed chat, 20 text chunks, OpenAI format in and out",
             "openai", True, "openai", USER_TEXT, 20,
             lambda m: openai_chat_body(m, stream=True)),
    Scenario("large", "Claude-Code-shaped Anthropic Messages request (~75 KB), streamed, "
             "Anthropic provider (same format)",
             "anthropic", True, "anthropic", "Go ahead.", None, claude_code_body),
    Scenario("cross", "OpenAI chat client to an Anthropic provider (cross format), streamed",
             "openai", True, "anthropic", USER_TEXT, None,
             lambda m: openai_chat_body(m, stream=True)),
]


def client_headers(client: str) -> dict[str, str]:
    h = {"content-type": "application/json"}
    if client == "openai":
        h["authorization"] = f"Bearer {MOCK_KEY}"
    else:
        h["x-api-key"] = MOCK_KEY
        h["anthropic-version"] = "2023-06-01"
    return h


def make_request(client: str, stream: bool, path: str, body: dict,
                 extra: dict[str, str] | None = None) -> Request:
    headers = client_headers(client)
    headers.update(extra or {})
    fmt = "openai-json" if not stream else f"{client}-sse"
    data = json.dumps(body, separators=(",", ":")).encode()
    return Request(path, data, headers, fmt)


def client_path(client: str) -> str:
    return "/v1/chat/completions" if client == "openai" else "/v1/messages"


@dataclass
class Target:
    """Something that receives the scenarios: the mock itself, tollgate or a
    peer gateway."""
    name: str
    kind: str  # direct | calibration | tollgate | peer
    port: int
    service: Service | None
    requests: dict[str, Request] = field(default_factory=dict)

    @property
    def gateway(self) -> bool:
        """A gateway, whose process's CPU time and memory are measured (the
        mock's are not)."""
        return self.kind in ("tollgate", "peer")


def direct_requests() -> dict[str, Request]:
    """The floor: the same scenarios sent straight to the mock. The
    cross-format floor is the equivalent Anthropic request, which is what the
    provider side of that scenario costs."""
    return {
        "small": make_request("openai", False, "/v1/chat/completions",
                              openai_chat_body("gpt-4o", False)),
        "stream20": make_request("openai", True, "/v1/chat/completions",
                                 openai_chat_body("gpt-4o~chunks=20", True)),
        "large": make_request("anthropic", True, "/v1/messages",
                              claude_code_body("claude-sonnet-4-5")),
        "cross": make_request("anthropic", True, "/v1/messages",
                              anthropic_small_body("claude-sonnet-4-5")),
    }


# Model names a client of tollgate (and of LiteLLM, configured with the same
# names) sends; `~chunks=20` is a mock directive that the gateways forward.
GATEWAY_MODELS = {
    "small": "openai/gpt-4o",
    "stream20": "openai/gpt-4o~chunks=20",
    "large": "claude-sonnet-4-5",
    "cross": "anthropic/claude-sonnet-4-5",
}


def gateway_requests() -> dict[str, Request]:
    return {s.id: make_request(s.client, s.stream, client_path(s.client),
                               s.body(GATEWAY_MODELS[s.id])) for s in SCENARIOS}


def portkey_requests(mock_port: int) -> dict[str, Request]:
    """Portkey takes the provider and its base URL in headers and sends the
    model name as it is."""
    def extra(provider: str) -> dict[str, str]:
        return {"x-portkey-provider": provider,
                "x-portkey-custom-host": f"http://127.0.0.1:{mock_port}/v1"}
    models = {"small": "gpt-4o", "stream20": "gpt-4o~chunks=20",
              "large": "claude-sonnet-4-5", "cross": "claude-sonnet-4-5"}
    out = {}
    for s in SCENARIOS:
        out[s.id] = make_request(s.client, s.stream, client_path(s.client),
                                 s.body(models[s.id]), extra(s.api))
    return out


# ------------------------------------------------------------------- tools


def ensure_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk:
        return wrk
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        sys.exit("wrk is not installed: install it (Debian: apt-get install wrk) and rerun")
    print("installing wrk (apt-get install wrk)", flush=True)
    apt = ["apt-get", "install", "-y", "-qq", "wrk"]
    if subprocess.run(apt, stdout=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(apt, check=True, stdout=subprocess.DEVNULL)
    wrk = shutil.which("wrk")
    if not wrk:
        sys.exit("wrk is still not on PATH after apt-get install wrk")
    return wrk


def build_tollgate(release: bool) -> Path:
    """`cargo build [--release] --bin tollgate`; returns the executable."""
    cmd = ["cargo", "build", "--bin", "tollgate", "--message-format=json-render-diagnostics"]
    if release:
        cmd.insert(2, "--release")
    print("building:", " ".join(cmd), flush=True)
    out = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, check=True, text=True).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("executable") \
                and msg["target"]["name"] == "tollgate":
            return Path(msg["executable"])
    sys.exit("cargo did not report the tollgate executable")


def command_version(argv: list[str]) -> str:
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = p.stdout.strip().splitlines()
    return lines[0].strip() if lines else "unknown"


def machine_info(pinned: bool, server_cpus: set[int], load_cpus: set[int]) -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    os_name = platform.system()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "os": os_name,
        "kernel": platform.release(),
        "arch": platform.machine(),
        "pinned": pinned,
        "server_cpus": sorted(server_cpus),
        "load_cpus": sorted(load_cpus),
    }


# ------------------------------------------------------------------ peers


def install_litellm(log: Path) -> tuple[Path | None, str]:
    """A virtualenv under bench/.peers/litellm with litellm[proxy] pinned.
    Returns (the `litellm` command, its version) or (None, why not)."""
    if LITELLM_VERSION in LITELLM_COMPROMISED:
        return None, f"LiteLLM {LITELLM_VERSION} is a known-compromised release"
    venv = PEERS_DIR / "litellm"
    py = venv / "bin" / "python"
    exe = venv / "bin" / "litellm"

    def installed() -> str | None:
        if not py.exists():
            return None
        p = subprocess.run([str(py), "-c", "import importlib.metadata as m; "
                            "print(m.version('litellm'))"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
        return p.stdout.strip() if p.returncode == 0 else None

    if installed() != LITELLM_VERSION or not exe.exists():
        print(f"installing LiteLLM {LITELLM_VERSION} into {venv} (takes a minute or two)",
              flush=True)
        with open(log, "ab") as out:
            if not py.exists():
                r = subprocess.run([sys.executable, "-m", "venv", str(venv)],
                                   stdout=out, stderr=subprocess.STDOUT)
                if r.returncode != 0:
                    return None, f"cannot create a virtualenv (see {log})"
            r = subprocess.run([str(py), "-m", "pip", "install", "--disable-pip-version-check",
                                "-q", f"litellm[proxy]=={LITELLM_VERSION}"],
                               stdout=out, stderr=subprocess.STDOUT)
        if r.returncode != 0 or installed() != LITELLM_VERSION:
            return None, f"pip install litellm[proxy]=={LITELLM_VERSION} failed (see {log})"
    return exe, LITELLM_VERSION


def install_portkey(log: Path) -> tuple[Path | None, str]:
    """The Portkey gateway from its pinned lock file, with `npm ci`.
    Returns (its start script, its version) or (None, why not)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return None, "node and npm are not installed"
    dest = PEERS_DIR / "portkey"
    script = dest / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    want = json.loads((PORTKEY_SPEC / "package.json").read_text())["dependencies"][
        "@portkey-ai/gateway"]
    same_lock = (dest / "package-lock.json").exists() and \
        (dest / "package-lock.json").read_bytes() == \
        (PORTKEY_SPEC / "package-lock.json").read_bytes()
    if not (same_lock and script.exists()):
        print(f"installing the Portkey gateway {want} into {dest}", flush=True)
        dest.mkdir(parents=True, exist_ok=True)
        for f in ("package.json", "package-lock.json"):
            shutil.copyfile(PORTKEY_SPEC / f, dest / f)
        with open(log, "ab") as out:
            r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                               cwd=dest, stdout=out, stderr=subprocess.STDOUT)
        if r.returncode != 0 or not script.exists():
            return None, f"npm ci of @portkey-ai/gateway@{want} failed (see {log})"
    return script, want


def litellm_config(work: Path, mock_port: int) -> tuple[Path, Path]:
    """LiteLLM's config (the same model names tollgate's clients send) and a
    uvicorn log config that keeps warnings only, as RUST_LOG=warn does for
    tollgate."""
    mock = f"http://127.0.0.1:{mock_port}"
    entries = [
        ("openai/gpt-4o", "openai/gpt-4o", f"{mock}/v1"),
        ("openai/gpt-4o~chunks=20", "openai/gpt-4o~chunks=20", f"{mock}/v1"),
        ("claude-sonnet-4-5", "anthropic/claude-sonnet-4-5", mock),
        ("anthropic/claude-sonnet-4-5", "anthropic/claude-sonnet-4-5", mock),
    ]
    lines = ["model_list:"]
    for name, model, base in entries:
        lines += [f'  - model_name: "{name}"',
                  "    litellm_params:",
                  f'      model: "{model}"',
                  f'      api_base: "{base}"',
                  f'      api_key: "{MOCK_KEY}"']
    lines += ["litellm_settings:", "  telemetry: false", ""]
    config = work / "litellm.yaml"
    config.write_text("\n".join(lines))
    log_config = work / "litellm-logging.json"
    log_config.write_text(json.dumps({
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"stderr": {"class": "logging.StreamHandler"}},
        "loggers": {name: {"handlers": ["stderr"], "level": "WARNING", "propagate": False}
                    for name in ("uvicorn", "uvicorn.error", "uvicorn.access")},
    }))
    return config, log_config


# --------------------------------------------------------------- measuring


def http_post(port: int, req: Request, timeout: float = 30) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", req.path, body=req.body, headers=req.headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def run_wrk(wrk: str, port: int, req: Request, body_file: Path, conc: int, seconds: int,
            load_cpus: set[int]) -> dict:
    argv = [wrk, "-t1", f"-c{conc}", f"-d{seconds}s", "--timeout", "10s",
            "-s", str(WRK_SCRIPT), f"http://127.0.0.1:{port}{req.path}", "--",
            str(body_file)] + [f"{k}: {v}" for k, v in req.headers.items()]
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=seconds + 60,
                       preexec_fn=(lambda: os.sched_setaffinity(0, load_cpus))
                       if load_cpus else None)
    for line in p.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON "):])
    raise RuntimeError(f"wrk printed no figures (exit {p.returncode}):\n{p.stdout[-2000:]}")


class ProbeError(Exception):
    """The time-to-first-byte probe got an answer it cannot use."""


def _recv_more(sock: socket.socket, buf: bytearray) -> None:
    chunk = sock.recv(65536)
    if not chunk:
        raise ProbeError("connection closed mid-answer")
    buf += chunk


def probe_ttfb(port: int, req: Request, count: int, warmup: int,
               budget_s: float) -> list[float]:
    """Sends `req` `warmup + count` times, one at a time on a kept-alive
    connection, and returns for each counted one the microseconds from the
    request's last byte handed to the kernel to the first body byte read.
    Stops early (with fewer samples) when `budget_s` is spent."""
    head_lines = [f"POST {req.path} HTTP/1.1", f"host: 127.0.0.1:{port}",
                  f"content-length: {len(req.body)}"]
    head_lines += [f"{k}: {v}" for k, v in req.headers.items()]
    raw = ("\r\n".join(head_lines) + "\r\n\r\n").encode() + req.body
    samples: list[float] = []
    sock: socket.socket | None = None
    deadline = time.monotonic() + budget_s
    try:
        for i in range(warmup + count):
            if time.monotonic() > deadline and len(samples) >= 20:
                break
            if sock is None:
                sock = socket.create_connection(("127.0.0.1", port), timeout=30)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buf = bytearray()
            sock.sendall(raw)
            t0 = time.perf_counter_ns()
            while True:
                _recv_more(sock, buf)
                end = buf.find(b"\r\n\r\n")
                if end >= 0 and len(buf) > end + 4:
                    t1 = time.perf_counter_ns()
                    break
            head = bytes(buf[:end]).decode("latin-1").split("\r\n")
            status = int(head[0].split()[1])
            if status != 200:
                raise ProbeError(f"status {status}")
            fields = {}
            for line in head[1:]:
                k, _, v = line.partition(":")
                fields[k.strip().lower()] = v.strip().lower()
            pos = end + 4
            if "chunked" in fields.get("transfer-encoding", ""):
                while True:  # walk the chunks to the last one
                    while (nl := buf.find(b"\r\n", pos)) < 0:
                        _recv_more(sock, buf)
                    size = int(bytes(buf[pos:nl]).split(b";")[0], 16)
                    pos = nl + 2
                    if size == 0:
                        while buf.find(b"\r\n", pos) < 0:
                            _recv_more(sock, buf)
                        break
                    while len(buf) < pos + size + 2:
                        _recv_more(sock, buf)
                    pos += size + 2
            elif "content-length" in fields:
                while len(buf) < pos + int(fields["content-length"]):
                    _recv_more(sock, buf)
            else:
                raise ProbeError("answer is neither chunked nor sized")
            if fields.get("connection") == "close":
                sock.close()
                sock = None
            if i >= warmup:
                samples.append((t1 - t0) / 1000)
    finally:
        if sock is not None:
            sock.close()
    return samples


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


# ------------------------------------------------------------------- a run


@dataclass
class Settings:
    smoke: bool
    concurrency: list[int]
    duration: int
    warmup: int
    probe: int
    probe_warmup: int
    probe_budget: float


class Run:
    def __init__(self, settings: Settings, work: Path, wrk: str, load_cpus: set[int],
                 server_cpus: set[int]):
        self.s = settings
        self.work = work
        self.wrk = wrk
        self.load_cpus = load_cpus
        self.server_cpus = server_cpus
        self.points: list[dict] = []
        self.ttfb: list[dict] = []
        self.idle_rss_kb: dict[str, int] = {}
        self.skipped: list[str] = []
        self.failures: list[str] = []
        self.validated: dict[str, set[str]] = {}

    def body_file(self, target: Target, scenario: str) -> Path:
        f = self.work / f"body-{target.name}-{scenario}.json"
        if not f.exists():
            f.write_bytes(target.requests[scenario].body)
        return f

    def fail(self, target: Target, what: str) -> None:
        """A failure: fatal for the mock and tollgate, a skip for peers."""
        line = f"{target.name}: {what}"
        if target.kind == "peer":
            self.skipped.append(line)
        else:
            self.failures.append(line)
        print(("SKIP " if target.kind == "peer" else "FAIL ") + line, flush=True)

    def validate(self, target: Target) -> None:
        """One request per scenario, checked, before any load."""
        ok = set()
        for sc in SCENARIOS:
            req = target.requests.get(sc.id)
            if req is None:
                continue
            try:
                status, body = http_post(target.port, req)
                problem = check_answer(req.answer_format, status, body, sc.api, sc.said,
                                       sc.chunks)
            except OSError as e:
                problem = f"request failed: {e}"
            if problem:
                self.fail(target, f"scenario {sc.id} not served: {problem}")
            else:
                ok.add(sc.id)
        self.validated[target.name] = ok
        print(f"checked {target.name}: {len(ok)}/{len(target.requests)} scenarios answer "
              "as expected", flush=True)

    def idle_rss(self, target: Target) -> None:
        if not target.gateway:
            return
        time.sleep(1.0)
        self.idle_rss_kb[target.name] = status_kb(target.service.pids(), "VmRSS")

    def point(self, target: Target, sc: Scenario, conc: int) -> None:
        if sc.id not in self.validated.get(target.name, set()):
            return
        req = target.requests[sc.id]
        body = self.body_file(target, sc.id)
        svc = target.service if target.gateway else None
        if target.service is not None and not target.service.alive():
            self.fail(target, f"process exited before {sc.id} c={conc}:\n"
                      f"{target.service.log_tail()}")
            return
        try:
            if self.s.warmup > 0:
                run_wrk(self.wrk, target.port, req, body, conc, self.s.warmup, self.load_cpus)
            pids = svc.pids() if svc else []
            reset_peak_rss(pids)
            cpu0 = cpu_snapshot(pids)
            res = run_wrk(self.wrk, target.port, req, body, conc, self.s.duration,
                          self.load_cpus)
            cpu = cpu_used(cpu0, cpu_snapshot(pids)) if svc else None
            peak = status_kb(pids, "VmHWM") if svc else None
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            self.fail(target, f"{sc.id} c={conc}: {e}")
            return
        n = res["requests"]
        errors = sum(res["errors"].values())
        point = {
            "scenario": sc.id, "target": target.name, "kind": target.kind,
            "concurrency": conc, "requests": n,
            "duration_s": res["duration_us"] / 1e6,
            "rps": n / (res["duration_us"] / 1e6) if res["duration_us"] else 0.0,
            "latency_us": res["latency_us"], "errors": res["errors"],
            "cpu_s": cpu,
            "cpu_s_per_1k": cpu / n * 1000 if cpu is not None and n else None,
            "peak_rss_kb": peak,
        }
        self.points.append(point)
        print(f"  {sc.id:8} c={conc:<3} {target.name:22} {point['rps']:9.0f} req/s  "
              f"p50 {res['latency_us']['50']:>7} us  p99 {res['latency_us']['99']:>7} us"
              + (f"  errors {errors}" if errors else ""), flush=True)
        if errors or n == 0:
            self.fail(target, f"{sc.id} c={conc}: {n} requests, errors {res['errors']}")

    def probe(self, target: Target, sc: Scenario) -> None:
        if not sc.stream or sc.id not in self.validated.get(target.name, set()):
            return
        try:
            samples = probe_ttfb(target.port, target.requests[sc.id], self.s.probe,
                                 self.s.probe_warmup, self.s.probe_budget)
        except (OSError, ProbeError, ValueError) as e:
            self.fail(target, f"TTFB probe of {sc.id}: {e}")
            return
        self.ttfb.append({
            "scenario": sc.id, "target": target.name, "kind": target.kind,
            "n": len(samples), "p50_us": percentile(samples, 50),
            "p90_us": percentile(samples, 90),
        })

    def measure(self, targets: list[Target]) -> None:
        """Every scenario and concurrency, the targets interleaved point by
        point, so that the gateway and the direct call are measured as close
        in time as they can be; then the time-to-first-byte probes."""
        for sc in SCENARIOS:
            for conc in self.s.concurrency:
                for t in targets:
                    self.point(t, sc, conc)
        for sc in SCENARIOS:
            for t in targets:
                self.probe(t, sc)


def start_tollgate(binary: Path, layers: str, work: Path, mock_url: str,
                   cpus: set[int], with_key: bool = False) -> Target:
    """tollgate with `--layers layers`. `with_key`: its store holds a gateway
    key (made with `tollgate keys create`) that every request carries, so
    the auth layer checks a key on every request, and a global budget (set
    with `tollgate budgets set`), so every request reserves and settles its
    cost; without, the store is empty and the gateway serves openly on
    loopback. With the default layers every request is metered and written
    to the ledger in the store either way."""
    name = f"tollgate {layers}" + ("+key+budget" if with_key else "")
    slug = name.replace(" ", "-").replace("+", "-")
    port = free_port()
    data = work / f"{slug}-data"
    store = data / "tollgate" / "tollgate.db"  # the default store under XDG_DATA_HOME
    env = dict(os.environ, RUST_LOG="warn", TOLLGATE_BENCH_MOCK=mock_url,
               XDG_DATA_HOME=str(data))
    requests = gateway_requests()
    if with_key:
        made = subprocess.run([str(binary), "keys", "create", "--name", "bench", "--store",
                               str(store)], capture_output=True, text=True, timeout=30)
        if made.returncode != 0:
            raise StartError(f"keys create failed: {made.stderr.strip()}")
        key = made.stdout.strip().splitlines()[0]
        budget = subprocess.run([str(binary), "budgets", "set", "--global", "--usd", "1000000",
                                 "--period", "monthly", "--store", str(store)],
                                capture_output=True, text=True, timeout=30)
        if budget.returncode != 0:
            raise StartError(f"budgets set failed: {budget.stderr.strip()}")
        for req in requests.values():
            for h in ("authorization", "x-api-key"):
                if h in req.headers:
                    req.headers[h] = f"Bearer {key}" if h == "authorization" else key
    config = GATEWAY_CONFIG
    if with_key:
        # Under a hard budget a model without a price is refused, and the
        # mock's model names carry directives (`gpt-4o~chunks=20`) that no
        # price table knows: price each provider's models as a whole.
        config = work / f"{slug}.toml"
        text = GATEWAY_CONFIG.read_text()
        for provider, price in (("openai", "{ input = 2.5, output = 10.0 }"),
                                ("anthropic", "{ input = 3.0, output = 15.0 }")):
            text = text.replace(f"[providers.{provider}]\n",
                                f"[providers.{provider}]\nprice = {price}\n")
        config.write_text(text)
    svc = Service(slug, [str(binary), "serve", "--config", str(config), "--listen",
                         f"127.0.0.1:{port}", "--layers", layers],
                  work / f"{slug}.log", cpus, env).start()
    wait_ready(svc, port, "/health", {}, 30)
    return Target(name, "tollgate", port, svc, requests)


def start_litellm(exe: Path, work: Path, mock_port: int, cpus: set[int]) -> Target:
    config, log_config = litellm_config(work, mock_port)
    port = free_port()
    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_OFFLINE_MODE="true",
               LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS="true", LITELLM_LOG="ERROR",
               LITELLM_DONT_SHOW_FEEDBACK_BOX="true", NO_DOCS="True")
    svc = Service("litellm", [str(exe), "--config", str(config), "--host", "127.0.0.1",
                              "--port", str(port), "--num_workers", "1", "--telemetry",
                              "False", "--log_config", str(log_config)],
                  work / "litellm.log", cpus, env, cwd=work).start()
    wait_ready(svc, port, "/health/liveliness", {}, 120)
    return Target("litellm", "peer", port, svc, gateway_requests())


def start_portkey(script: Path, work: Path, mock_port: int, cpus: set[int]) -> Target:
    port = free_port()
    env = dict(os.environ, NODE_ENV="production")
    svc = Service("portkey", ["node", "--import", str(PORTKEY_PRELOAD), str(script),
                              f"--port={port}", "--headless"],
                  work / "portkey.log", cpus, env, cwd=script.parent).start()
    wait_ready(svc, port, "/", {}, 60)
    return Target("portkey", "peer", port, svc, portkey_requests(mock_port))


# ------------------------------------------------------------------ report


def fmt_us(v) -> str:
    return "—" if v is None or v != v else f"{v:,.0f}"


def fmt_signed(v) -> str:
    return "—" if v is None or v != v else f"{v:+,.0f}"


def fmt_cpu(v) -> str:
    return "—" if v is None else f"{v:.3f}"


def fmt_mb(kb) -> str:
    return "—" if kb is None else f"{kb / 1024:.1f}"


def summarize(run: Run) -> dict:
    """Added latency, throughput ratios and the issue's targets."""
    by = {(p["scenario"], p["target"], p["concurrency"]): p for p in run.points}
    tt = {(t["scenario"], t["target"]): t for t in run.ttfb}
    for p in run.points:
        d = by.get((p["scenario"], "direct", p["concurrency"]))
        if d and p["target"] != "direct":
            p["added_us"] = {q: p["latency_us"][q] - d["latency_us"][q]
                             for q in ("50", "90", "99")}
            p["rps_vs_direct"] = p["rps"] / d["rps"] if d["rps"] else None
    for t in run.ttfb:
        d = tt.get((t["scenario"], "direct"))
        if d and t["target"] != "direct":
            t["added_p50_us"] = t["p50_us"] - d["p50_us"]
            t["added_p90_us"] = t["p90_us"] - d["p90_us"]

    gw = "tollgate default"
    targets = []

    def add(what: str, value, limit: float, unit: str, higher_is_better: bool = False,
            why_missing: str = "not measured") -> None:
        if value is None or value != value:
            targets.append({"target": what, "value": None, "limit": limit, "unit": unit,
                            "result": f"n/a ({why_missing})"})
            return
        held = value >= limit if higher_is_better else value <= limit
        targets.append({"target": what, "value": value, "limit": limit, "unit": unit,
                        "result": "held" if held else "missed"})

    def added(sc: str, conc: int, q: str):
        p = by.get((sc, gw, conc))
        return p["added_us"][q] if p and "added_us" in p else None

    c_low = min(run.s.concurrency)
    c_high = max(run.s.concurrency)
    add(f"small request, c={c_low}, added p50", added("small", c_low, "50"), 30, "µs")
    add(f"small request, c={c_low}, added p99", added("small", c_low, "99"), 150, "µs")
    add(f"large same-format request, c={c_low}, added p50", added("large", c_low, "50"),
        150, "µs")
    t = tt.get(("stream20", gw))
    add("streaming (20 chunks), added TTFB p50", t.get("added_p50_us") if t else None,
        50, "µs")
    for sc in SCENARIOS:
        p = by.get((sc.id, gw, c_high))
        add(f"{sc.id}, c={c_high}, throughput vs direct",
            p.get("rps_vs_direct") if p else None, 0.35, "x", higher_is_better=True)
    # Issue 10: the default stack with auth, budget and ledger on (a key
    # and a global budget, every request metered and written to the
    # ledger) against the routing layers alone, in the same run.
    full, bare = gw + "+key+budget", "tollgate routing"
    for sc in SCENARIOS:
        a, b = by.get((sc.id, bare, c_high)), by.get((sc.id, full, c_high))
        ratio = b["rps"] / a["rps"] if a and b and a["rps"] else None
        add(f"{sc.id}, c={c_high}, throughput with auth, budget and ledger vs routing alone",
            ratio, 0.85, "x", higher_is_better=True)
    for peer, limit in (("portkey", 20), ("litellm", 150)):
        for sc in SCENARIOS:
            p, q = by.get((sc.id, gw, c_high)), by.get((sc.id, peer, c_high))
            ratio = p["rps"] / q["rps"] if p and q and q["rps"] else None
            add(f"{sc.id}, c={c_high}, throughput vs {peer}", ratio, limit, "x",
                higher_is_better=True, why_missing=f"{peer} not measured")
    idle = run.idle_rss_kb.get(gw)
    add("idle RSS after start", idle / 1024 if idle else None, 15, "MB")
    peaks = [p["peak_rss_kb"] for p in run.points
             if p["target"] == gw and p["concurrency"] == c_high and p["peak_rss_kb"]]
    add(f"peak RSS under c={c_high}", max(peaks) / 1024 if peaks else None, 64, "MB")
    return {"targets": targets}


def markdown(meta: dict, run: Run, summary: dict) -> str:
    m = meta["machine"]
    out = [f"# tollgate load benchmark, {meta['started']}", ""]
    out.append(f"- Mode: {'smoke (a check that the harness works, not figures)' if meta['smoke'] else 'full'}; "
               f"command: `{meta['command']}`")
    out.append(f"- Machine: {m['cores']} cores, {m['cpu_model']}, {m['memory_gib']} GiB, "
               f"{m['os']}, Linux {m['kernel']} ({m['arch']})")
    if m["pinned"] and m["server_cpus"] == m["load_cpus"]:
        out.append(f"- Same core (`--same-core`): tollgate, the peers, the mock, wrk and the "
                   f"TTFB probe all on CPU {m['server_cpus']}")
    elif m["pinned"]:
        out.append(f"- Pinned: tollgate and the peers on CPU {m['server_cpus']}; the mock, "
                   f"wrk and the TTFB probe on CPU {m['load_cpus']}")
    else:
        out.append("- Not pinned (fewer than two CPUs available)")
    out.append(f"- tollgate: {meta['tollgate']} (`{meta['binary']}`), `RUST_LOG=warn` so "
               "that no per-request log is measured; the mock is the same binary's "
               "`mock-upstream`")
    for name, v in meta["peers"].items():
        out.append(f"- {name}: {v}")
    out.append(f"- Load: {meta['wrk']}, 1 thread, keep-alive; each point {run.s.duration} s "
               f"after {run.s.warmup} s of warm-up; TTFB: {run.s.probe} sequential requests "
               f"per target after {run.s.probe_warmup} warm-up ones (fewer if the "
               f"{run.s.probe_budget:.0f} s budget ran out)")
    out.append("- `direct` is the mock called without a gateway (the floor). Added = "
               "target − direct in this run. For `cross` the floor is the equivalent "
               "Anthropic request sent to the mock.")
    if any(p["target"] == CALIBRATION for p in run.points):
        out.append(f"- `{CALIBRATION}`: a second mock, on the gateways' core, called "
                   "directly: its added latency is what crossing cores costs by itself "
                   "(wake-ups of the other core); a gateway pays it twice per request, "
                   "client to gateway and gateway to mock.")
    out.append("")
    stall = next((p for p in run.points if p["target"] == "direct"
                  and p["scenario"] == "stream20" and p["latency_us"]["50"] >= 30_000), None)
    if stall:
        out += ["## Warning: delayed-ACK stalls", "",
                f"A 20-chunk stream straight from the mock took {stall['latency_us']['50']:,} µs "
                "(p50): the mock answers in microseconds, so this is a sender waiting for "
                "the receiver's delayed ACK (about 40 ms on Linux) before it sends its next "
                "small write (Nagle's algorithm), i.e. a server socket without TCP_NODELAY. "
                "Until the servers set it, the latency of streams and of the gateways' "
                "answers measures these stalls, not the work done.", ""]
    if run.failures:
        out += ["## Failures", ""] + [f"- {f}" for f in run.failures] + [""]
    if run.skipped:
        out += ["## Skipped", ""] + [f"- {s}" for s in run.skipped] + [""]

    out += ["## Targets (issue 3)", "", "| target | measured | limit | result |",
            "| --- | ---: | ---: | --- |"]
    for t in summary["targets"]:
        cmp = "≥" if t["unit"] == "x" else "≤"
        if t["value"] is None:
            v = "—"
        elif t["unit"] == "x":
            v = f"{t['value']:.2f}x" if t["value"] < 10 else f"{t['value']:.0f}x"
        elif t["unit"] == "MB":
            v = f"{t['value']:.1f} MB"
        else:
            v = f"{t['value']:+,.0f} µs"
        out.append(f"| {t['target']} | {v} | {cmp} {t['limit']:g} {t['unit']} | "
                   f"{t['result']} |")
    out.append("")

    out += ["## Idle RSS after start", "", "| target | RSS MB |", "| --- | ---: |"]
    for name, kb in run.idle_rss_kb.items():
        out.append(f"| {name} | {fmt_mb(kb)} |")
    out.append("")

    for sc in SCENARIOS:
        pts = [p for p in run.points if p["scenario"] == sc.id]
        if not pts:
            continue
        out += [f"## {sc.id}: {sc.title}", "",
                "| target | c | req/s | vs direct | p50 µs | p90 µs | p99 µs | added p50 µs "
                "| added p99 µs | CPU s / 1k req | peak RSS MB | errors |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
                "| ---: | ---: |"]
        for p in sorted(pts, key=lambda p: p["concurrency"]):
            lat = p["latency_us"]
            add = p.get("added_us", {})
            ratio = p.get("rps_vs_direct")
            out.append(
                f"| {p['target']} | {p['concurrency']} | {p['rps']:,.0f} | "
                f"{'—' if ratio is None else f'{ratio:.2f}'} | {fmt_us(lat['50'])} | "
                f"{fmt_us(lat['90'])} | {fmt_us(lat['99'])} | {fmt_signed(add.get('50'))} | "
                f"{fmt_signed(add.get('99'))} | "
                f"{fmt_cpu(p['cpu_s_per_1k'])} | "
                f"{fmt_mb(p['peak_rss_kb'])} | {sum(p['errors'].values())} |")
        tts = [t for t in run.ttfb if t["scenario"] == sc.id]
        if tts:
            out += ["", "Time to first body byte (sequential requests):", "",
                    "| target | n | p50 µs | p90 µs | added p50 µs | added p90 µs |",
                    "| --- | ---: | ---: | ---: | ---: | ---: |"]
            for t in tts:
                out.append(f"| {t['target']} | {t['n']} | {fmt_us(t['p50_us'])} | "
                           f"{fmt_us(t['p90_us'])} | {fmt_signed(t.get('added_p50_us'))} | "
                           f"{fmt_signed(t.get('added_p90_us'))} |")
        out.append("")
    return "\n".join(out)


# -------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true",
                    help="a check that takes seconds: no peers, one concurrency, 1 s points")
    ap.add_argument("--bin", type=Path,
                    help="the tollgate binary (default: cargo build --release, or a debug "
                         "build with --smoke)")
    ap.add_argument("--peers", default=None,
                    help="comma-separated peers to run: litellm,portkey (default: both; "
                         "none with --smoke); 'none' for none")
    ap.add_argument("--concurrency", default=None,
                    help="comma-separated connection counts (default 1,32; 8 with --smoke)")
    ap.add_argument("--duration", type=int, default=None,
                    help="seconds per point (default 6; 1 with --smoke)")
    ap.add_argument("--warmup", type=int, default=None,
                    help="seconds of warm-up before each point (default 1; 0 with --smoke)")
    ap.add_argument("--probe", type=int, default=None,
                    help="TTFB probe requests per target and stream (default 300; 20 with "
                         "--smoke)")
    ap.add_argument("--same-core", action="store_true",
                    help="run everything on one CPU (the gateway, the mock, wrk, the probe): "
                         "measures the gateway's own work without the cost of waking another core")
    ap.add_argument("--keep-logs", action="store_true",
                    help="keep the work directory (logs, configs, bodies)")
    return ap.parse_args()


def main() -> int:
    args = parse_args()
    smoke = args.smoke
    settings = Settings(
        smoke=smoke,
        concurrency=[int(c) for c in (args.concurrency or ("8" if smoke else "1,32")).split(",")],
        duration=args.duration or (1 if smoke else 6),
        warmup=args.warmup if args.warmup is not None else (0 if smoke else 1),
        probe=args.probe or (20 if smoke else 300),
        probe_warmup=3 if smoke else 20,
        probe_budget=10.0 if smoke else 30.0,
    )
    peers_arg = args.peers if args.peers is not None else ("none" if smoke else
                                                           "litellm,portkey")
    peers = [] if peers_arg == "none" else [p.strip() for p in peers_arg.split(",") if p]
    for p in peers:
        if p not in ("litellm", "portkey"):
            sys.exit(f"unknown peer {p!r}: litellm or portkey")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    cpus = sorted(os.sched_getaffinity(0))
    pinned = len(cpus) >= 2
    server_cpus = {cpus[0]} if pinned else set()
    load_cpus = {cpus[1]} if pinned else set()
    if args.same_core:
        pinned = True
        server_cpus = load_cpus = {cpus[0]}
    if pinned:
        # The orchestrator (and so the TTFB probe) stays off the gateway's core.
        os.sched_setaffinity(0, load_cpus)

    wrk = ensure_wrk()
    started = datetime.now(timezone.utc)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    work = Path(tempfile.mkdtemp(prefix=f"tollgate-bench-{stamp}-"))
    binary_src = (args.bin.resolve() if args.bin else build_tollgate(release=not smoke))
    if not binary_src.is_file():
        sys.exit(f"no tollgate binary at {binary_src}")
    # A private copy: other builds sharing the target directory cannot
    # replace the binary in the middle of the run.
    binary = work / "tollgate"
    shutil.copy2(binary_src, binary)

    meta = {
        "started": started.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "smoke": smoke,
        "command": "python3 bench/run.py " + " ".join(sys.argv[1:]),
        "machine": machine_info(pinned, server_cpus, load_cpus),
        "tollgate": command_version([str(binary), "--version"]),
        "binary": str(binary_src),
        "wrk": command_version([wrk, "-v"]).split(" [")[0],
        "peers": {},
        "settings": settings.__dict__,
    }
    print(f"machine: {meta['machine']}", flush=True)
    print(f"work directory: {work}", flush=True)

    run = Run(settings, work, wrk, load_cpus, server_cpus)
    try:
        mock_port = free_port()
        mock = Service("mock", [str(binary), "mock-upstream", "--listen",
                                f"127.0.0.1:{mock_port}"], work / "mock.log", load_cpus,
                       dict(os.environ, RUST_LOG="warn")).start()
        wait_ready(mock, mock_port, "/v1/models", client_headers("openai"), 30)
        mock_url = f"http://127.0.0.1:{mock_port}"
        direct = Target("direct", "direct", mock_port, None, direct_requests())

        # Phase 1: the floor and tollgate, interleaved point by point.
        targets = [direct]
        if pinned and not smoke and server_cpus != load_cpus:
            # The calibration: the mock alone on the gateway's core, for
            # what crossing cores costs by itself (a gateway crosses twice
            # per request in this layout: client -> gateway -> mock).
            port2 = free_port()
            mock2 = Service("mock-cpu0", [str(binary), "mock-upstream", "--listen",
                                          f"127.0.0.1:{port2}"], work / "mock-cpu0.log",
                            server_cpus, dict(os.environ, RUST_LOG="warn")).start()
            wait_ready(mock2, port2, "/v1/models", client_headers("openai"), 30)
            both = direct_requests()
            targets.append(Target(CALIBRATION, "calibration", port2, mock2,
                                  {k: both[k] for k in ("small", "stream20")}))
        for layers, with_key in (("none", False), ("routing", False), ("default", False),
                                 ("default", True)):
            try:
                targets.append(start_tollgate(binary, layers, work, mock_url, server_cpus,
                                              with_key))
            except StartError as e:
                run.failures.append(f"tollgate --layers {layers} (key: {with_key}) did not "
                                    f"start: {e}")
        for t in targets:
            run.idle_rss(t)
            run.validate(t)
        print(f"measuring {', '.join(t.name for t in targets)}", flush=True)
        run.measure(targets)
        for t in targets:
            if t.service:
                t.service.stop()

        # Phase 2: each peer alone on the gateway's core.
        for peer in peers:
            log = work / f"install-{peer}.log"
            if peer == "litellm":
                exe, version = install_litellm(log)
            else:
                exe, version = install_portkey(log)
            if exe is None:
                run.skipped.append(f"{peer}: not installed: {version}")
                print(f"SKIP {peer}: {version}", flush=True)
                continue
            if peer == "litellm":
                meta["peers"]["LiteLLM proxy"] = (
                    f"litellm[proxy]=={version}, 1 uvicorn worker, LITELLM_LOG=ERROR and "
                    "uvicorn logs at WARNING, offline cost map, no database")
            else:
                node = command_version(["node", "--version"])
                meta["peers"]["Portkey gateway"] = (
                    f"@portkey-ai/gateway@{version} on node {node}, NODE_ENV=production, "
                    "--headless, @hono/node-server 1.13.8 (newer ones fail its streams "
                    "with `TypeError: immutable` on node 20)")
            try:
                target = (start_litellm(exe, work, mock_port, server_cpus) if peer == "litellm"
                          else start_portkey(exe, work, mock_port, server_cpus))
            except StartError as e:
                run.skipped.append(f"{peer}: did not start: {e}")
                print(f"SKIP {peer}: did not start: {e}", flush=True)
                continue
            run.idle_rss(target)
            run.validate(target)
            print(f"measuring {target.name}", flush=True)
            run.measure([target])
            target.service.stop()
        mock.stop()
    except StartError as e:
        run.failures.append(f"the mock did not start: {e}")
    finally:
        Service.stop_all()

    summary = summarize(run)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    name = stamp + ("-smoke" if smoke else "")
    md = markdown(meta, run, summary)
    (RESULTS_DIR / f"{name}.md").write_text(md + "\n")
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps({
        "meta": meta, "points": run.points, "ttfb": run.ttfb,
        "idle_rss_kb": run.idle_rss_kb, "targets": summary["targets"],
        "skipped": run.skipped, "failures": run.failures,
    }, indent=2) + "\n")
    print()
    print(md)
    print(f"results: {RESULTS_DIR / name}.md and .json")
    if run.failures or args.keep_logs:
        print(f"logs: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    if run.failures:
        print(f"{len(run.failures)} failure(s): see above", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
