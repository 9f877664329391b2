"""Starts the mock upstream and a gateway for the client SDK tests.

The binary comes from TOLLGATE_BIN (default: target/debug/tollgate).
Both processes listen on free loopback ports and are stopped at the end.
"""

import os
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("TOLLGATE_BIN", str(ROOT / "target" / "debug" / "tollgate"))

# The upstream kinds every parametrized test runs against.
PROVIDERS = ["mock-openai", "mock-anthropic", "mock-gemini", "mock-compat"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, deadline=20.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def wait_http(url, deadline=20.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except Exception:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


@pytest.fixture(scope="session")
def gateway():
    mock_port, gw_port = free_port(), free_port()
    procs = []
    tmp = tempfile.TemporaryDirectory()
    try:
        procs.append(
            subprocess.Popen(
                [BIN, "mock-upstream", "--listen", f"127.0.0.1:{mock_port}"],
                stderr=subprocess.DEVNULL,
            )
        )
        wait_port(mock_port)
        mock = f"http://127.0.0.1:{mock_port}"
        config = Path(tmp.name) / "gateway.toml"
        config.write_text(
            f"""
[providers.mock-openai]
kind = "openai"
base_url = "{mock}/v1"
api_key = "test-openai-key"
[providers.mock-anthropic]
kind = "anthropic"
base_url = "{mock}"
api_key = "test-anthropic-key"
[providers.mock-gemini]
kind = "gemini"
base_url = "{mock}"
api_key = "test-gemini-key"
[providers.mock-compat]
kind = "openai-compatible"
base_url = "{mock}/v1"
api_key = "test-compat-key"
[models]
"claude-*" = "mock-anthropic/*"
"""
        )
        log = open(Path(tmp.name) / "gateway.log", "wb")
        procs.append(
            subprocess.Popen(
                [BIN, "serve", "--config", str(config), "--listen", f"127.0.0.1:{gw_port}"],
                stderr=log,
            )
        )
        wait_http(f"http://127.0.0.1:{gw_port}/health")
        yield f"http://127.0.0.1:{gw_port}"
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        tmp.cleanup()
