"""`manage.py stripe_sandbox` as `make demo` runs it: started, then stopped by signals."""

import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_line(proc: subprocess.Popen, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            if text in line:
                return
            if not line and proc.poll() is not None:
                break
    raise AssertionError(f"{text!r} not printed; exit code {proc.poll()}")


@pytest.mark.parametrize("delay", [0, 0.001, 0.01, 0.03, 0.1])
def test_ctrl_c_then_sigterm_stops_the_sandbox_cleanly(delay):
    """Ctrl-C reaches the whole process group and `demo` then sends SIGTERM: one clean stop.

    Whether the second signal comes at once or while the first is being handled.
    """
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "stripe_sandbox", "--port", str(free_port())],
        cwd=ROOT,
        env={**os.environ, "DJANGO_DEBUG": "1", "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_line(proc, "Stripe sandbox listening on")
        proc.send_signal(signal.SIGINT)
        time.sleep(delay)  # `demo` handles its own Ctrl-C first, then terminates its children
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Stripe sandbox stopped." in stdout
    assert "Traceback" not in stderr and "Error" not in stderr, stderr
    # 0, or killed by the late SIGTERM while the interpreter was already exiting (its handlers
    # are gone by then): either way after a clean stop.
    assert proc.returncode in (0, -signal.SIGTERM), (proc.returncode, stderr)
