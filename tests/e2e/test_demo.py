"""`manage.py demo` (what `make demo` runs): onboards a checkout; Ctrl-C or a closed terminal stops it all."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from crm.models import Onboarding
from stripe_events.models import StripeWebhookJob
from tests.factories import StripeWebhookJobFactory
from tests.support.processes import ROOT, free_port, read_until

pytestmark = pytest.mark.django_db(transaction=True)


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (from /proc), whatever its process group or session."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


STOPS = {
    # Ctrl-C in the terminal: SIGINT to the whole foreground process group.
    "ctrl-c": lambda pid: os.killpg(pid, signal.SIGINT),
    # The terminal closed: SIGHUP to the demo (its children live in their own sessions).
    "terminal closed": lambda pid: os.kill(pid, signal.SIGHUP),
}


@pytest.mark.parametrize("stop", STOPS)
def test_demo_onboards_then_stopping_it_leaves_no_process(tmp_path, stop):
    """Also on a database an earlier run left a failed webhook job in (`make demo` keeps its file)."""
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("needs the PostgreSQL test database (as in CI), which the demo's processes share")
    database_url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "EMAIL_FILE_PATH": str(tmp_path / "mail"),
        "PYTHONUNBUFFERED": "1",
    }
    StripeWebhookJobFactory(event_id="evt_earlier_run", status=StripeWebhookJob.Status.FAILED)
    # Its own process group, like a terminal's foreground job: Ctrl-C signals the whole group.
    demo = subprocess.Popen(
        [sys.executable, "manage.py", "demo", "--port", str(free_port()), "--sandbox-port", str(free_port())],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    children: set[int] = set()
    try:
        output = read_until(demo, "Serving. Press Ctrl-C to stop.", timeout=120)
        onboarding = Onboarding.objects.get()
        assert onboarding.status == Onboarding.Status.ONBOARDED
        report = output.split("What happened", 1)[1]
        assert f"Onboarding {onboarding.checkout_session_id}: Onboarded" in report
        assert "evt_earlier_run" not in report  # this run's checkout only
        assert "Admin:" in report
        children = descendants(demo.pid)
        assert len(children) >= 3  # sandbox, worker (with its processes), web server

        signalled = time.monotonic()
        STOPS[stop](demo.pid)
        rest = demo.communicate(timeout=60)[0].decode(errors="replace")
        stopped_in = time.monotonic() - signalled
    finally:
        if demo.poll() is None:  # the test failed: leave nothing behind to poll the test database
            for pid in descendants(demo.pid) | {demo.pid}:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(running(pid) for pid in children):
        time.sleep(0.2)
    left = [pid for pid in children if running(pid)]
    for pid in left:  # so that a failure here does not leave them polling the test database
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"demo left processes running after {stop}"
    assert demo.returncode == 0, rest[-3000:]
    assert "Stopping." in rest
    # Gracefully: that takes about a second; the demo's SIGKILL fallback comes only after 15 s.
    assert stopped_in < 12, f"stopping took {stopped_in:.1f} s:\n{rest[-3000:]}"
    assert "Traceback" not in rest


def test_demo_stops_at_once_with_a_clear_error_when_the_sandbox_cannot_start(tmp_path):
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("needs the PostgreSQL test database (as in CI), which the demo's processes share")
    database_url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    with socket.socket() as taken:  # the sandbox's port is already in use
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "manage.py", "demo", "--port", str(free_port())]
            + ["--sandbox-port", str(taken.getsockname()[1])],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": database_url, "EMAIL_FILE_PATH": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode != 0
    assert "stripe_sandbox --port" in result.stderr and "exited with" in result.stderr
    assert time.monotonic() - started < 25  # not the 30 s wait for a server that will never answer


def test_demo_on_sqlite_as_make_demo_runs_it(tmp_path):
    """`make demo` runs on a SQLite file (DATABASE_URL unset): migrated from nothing, the webhook
    stored, worked and onboarded there. (The tests above share the PostgreSQL test database.)"""
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        "DJANGO_DEBUG": "1",
        "EMAIL_FILE_PATH": str(tmp_path / "mail"),
        "PYTHONUNBUFFERED": "1",
    }
    demo = subprocess.Popen(
        [sys.executable, "manage.py", "demo", "--port", str(free_port()), "--sandbox-port", str(free_port())],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        output = read_until(demo, "Serving. Press Ctrl-C to stop.", timeout=400)
        os.killpg(demo.pid, signal.SIGINT)
        rest = demo.communicate(timeout=60)[0].decode(errors="replace")
    finally:
        if demo.poll() is None:
            for pid in descendants(demo.pid) | {demo.pid}:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
    report = output.split("What happened", 1)[1]
    assert ": Onboarded" in report, report
    assert "Traceback" not in output + rest, (output + rest)[-3000:]
    assert list((tmp_path / "mail").iterdir())  # the welcome email, in the file backend
