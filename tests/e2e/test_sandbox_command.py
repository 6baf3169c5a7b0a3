"""`manage.py stripe_sandbox` as a long-running service: started, then stopped by signals."""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.support.processes import ROOT, free_port, read_until


@pytest.mark.parametrize("delay", [0, 0.001, 0.01, 0.03, 0.1])
def test_ctrl_c_then_sigterm_stops_the_sandbox_cleanly(delay):
    """Ctrl-C to the terminal's process group, then a supervisor's SIGTERM: one clean stop.

    Whether the second signal comes at once or while the first is being handled.
    """
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "stripe_sandbox", "--port", str(free_port())],
        cwd=ROOT,
        env={**os.environ, "DJANGO_DEBUG": "1", "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        read_until(proc, "Stripe sandbox listening on", timeout=30)
        proc.send_signal(signal.SIGINT)
        time.sleep(delay)  # the second signal at once, or while the first is being handled
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = (output.decode() for output in proc.communicate(timeout=30))
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Stripe sandbox stopped." in stdout
    assert "Traceback" not in stderr and "Error" not in stderr, stderr
    # 0, or killed by the late SIGTERM while the interpreter was already exiting (its handlers
    # are gone by then): either way after a clean stop.
    assert proc.returncode in (0, -signal.SIGTERM), (proc.returncode, stderr)


def test_settlement_currency_option_sets_the_accounts_currency():
    proc = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "stripe_sandbox",
            "--port",
            str(free_port()),
            "--settlement-currency",
            "EUR",
        ],
        cwd=ROOT,
        env={**os.environ, "DJANGO_DEBUG": "1", "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        announced = read_until(proc, "Ctrl-C to stop.", timeout=30)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "settles in EUR" in announced
