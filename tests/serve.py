"""A real `transformers serve` of the embedded model on a free loopback port, for the OpenAI-compatible tests."""

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model_dir: Path) -> tuple[subprocess.Popen, str]:
    """A real `transformers serve` on a free loopback port; returns the process and its root URL once healthy."""
    port = free_port()
    cli = Path(sys.executable).parent / "transformers"  # the console script of transformers[serving]
    process = subprocess.Popen([str(cli), "serve", str(model_dir),
                                "--device", "cpu", "--port", str(port), "--host", "127.0.0.1"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180  # a start-up guard, not a timing
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            return process, url
        except OSError:
            if process.poll() is not None:
                pytest.fail(f"transformers serve exited: {process.stderr.read()[-2000:]}")
            time.sleep(1)
    process.kill()
    pytest.fail("transformers serve did not become healthy within 180 s")


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(timeout=30)
