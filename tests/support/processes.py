"""Helpers for tests that run the project's commands as real processes (demo, sandbox)."""

import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_until(proc: subprocess.Popen, text: str, timeout: float) -> str:
    """What the process printed (stdout, a binary pipe) up to and including `text`.

    Reads the pipe's file descriptor directly: a buffered readline() would keep lines that
    arrived together in its own buffer, where select() cannot see them, and wait forever.
    """
    output, deadline = b"", time.monotonic() + timeout
    fd = proc.stdout.fileno()
    while time.monotonic() < deadline and text.encode() not in output:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:  # the process closed its output
                break
            output += chunk
    decoded = output.decode(errors="replace")
    assert text in decoded, (
        f"{text!r} not printed within {timeout:.0f} s (exit {proc.poll()}):\n{decoded[-6000:]}"
    )
    return decoded


ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": "x" * 20 + "-production-like-secret-key-0123456789",
    "STRIPE_TEST_SECRET_KEY": "sk_test_" + "a" * 30,
    "DJANGO_ALLOWED_HOSTS": "app.example.com",
    "EMAIL_BACKEND": "anymail.backends.postmark.EmailBackend",
}


def manage(*args: str, env: dict) -> subprocess.CompletedProcess:
    """`manage.py` in a fresh process with only `env`'s DJANGO_/STRIPE_/EMAIL_ variables."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "STRIPE_", "EMAIL_"))}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True
    )
