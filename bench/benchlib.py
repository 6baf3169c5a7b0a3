"""Shared plumbing for the bench scripts: database, settings mode, child processes, statistics.

Everything here talks to 127.0.0.1 only. The scripts import this module by name (Python puts
bench/ on sys.path when a script in it is run), and this module puts the repository root on
sys.path so the project's packages import as they do under manage.py.
"""

import contextlib
import io
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://root@127.0.0.1:5432/onboarding_bench"
WEBHOOK_SECRET = "whsec_bench_local_only_secret"
# Written by the reference endpoint of bench/ingest_floor_urls.py; created and dropped by the bench.
FLOOR_TABLE = "bench_ingest_floor"

# Production settings (DJANGO_DEBUG=0) with the secrets they insist on, and no HTTPS redirect
# because the bench speaks plain HTTP to 127.0.0.1. `testserver` is for django.test.Client.
PROD_ENV = {
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": "bench-only-secret-key-not-for-deployment-0123456789abcdef",
    "STRIPE_TEST_SECRET_KEY": "sk_test_benchLocalSandboxKey000000000000",
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
    "DJANGO_SECURE_SSL_REDIRECT": "0",
    # The benches count emails in files: a deliberate local backend, which production must be told.
    "EMAIL_ALLOW_LOCAL_BACKEND": "1",
}
DEBUG_ENV = {"DJANGO_DEBUG": "1"}

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def log(text: str = "") -> None:
    print(text, flush=True)


def emit_json(figures: dict) -> None:
    """The last line of every run: all figures as one line of JSON."""
    print(json.dumps(figures, sort_keys=True, default=str), flush=True)


# --- time bound and signals ---------------------------------------------------------------------


def install_guards(max_seconds: float) -> None:
    """SIGTERM and a hard deadline become SystemExit, so `finally:` blocks stop the children."""

    def _terminate(signum, frame):
        raise SystemExit(f"bench: signal {signum}, stopping")

    def _deadline(signum, frame):
        raise SystemExit(f"bench: hard time limit of {max_seconds:.0f} s reached, stopping")

    signal.signal(signal.SIGTERM, _terminate)
    # Ctrl-C too, even when started in the background with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGALRM, _deadline)
    signal.alarm(max(1, int(max_seconds)))


# --- settings mode and database -------------------------------------------------------------------


def choose_mode(requested: str, database_url: str, extra_env: dict) -> tuple[str, dict]:
    """Return ("prod"|"debug", env overrides). "prod" is tried first unless debug is requested.

    Production settings are probed in a subprocess (`manage.py check`), because settings can only
    be loaded once per process; if they refuse to load, the run falls back to DEBUG and says so.
    """
    if requested == "debug":
        return "debug", dict(DEBUG_ENV)
    env = {**os.environ, **extra_env, **PROD_ENV, "DATABASE_URL": database_url}
    probe = subprocess.run(
        [sys.executable, str(REPO / "manage.py"), "check"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if probe.returncode == 0:
        return "prod", dict(PROD_ENV)
    log(f"!! production settings do not load ({probe.stderr.strip()[-300:]}); falling back to DEBUG")
    if requested == "prod":
        raise SystemExit("--mode prod was requested but production settings do not load")
    return "debug", dict(DEBUG_ENV)


def ensure_database(database_url: str) -> None:
    """Create the PostgreSQL database named in the URL if it does not exist."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(database_url)
    if not parts.scheme.startswith("postgres"):
        return
    name = parts.path.lstrip("/")
    admin_url = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            log(f"created database {name}")


def django_setup(env: dict) -> None:
    """Load the project's settings in this process with the same environment as the children."""
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "onboarding_project.settings"
    import django

    django.setup()


def migrate() -> float:
    """Apply migrations (about 45 s on an empty database, about 1 s when nothing is left to do)."""
    from django.core.management import call_command

    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    return time.perf_counter() - started


def bench_database_ready(services: list[tuple[str, str]]) -> tuple[int, int]:
    """Empty the queue and the retry schedules an earlier run left, and make `services`
    ((service_id, name)) sellable: active, with the welcome email and the workspace.
    Returns how many queued tasks and retry schedules were purged."""
    from django_q.models import OrmQ, Schedule

    from crm.models import Service

    purged_tasks, _ = OrmQ.objects.all().delete()
    purged_retries, _ = Schedule.objects.filter(name__startswith="retry ").delete()
    for service_id, name in services:
        Service.objects.update_or_create(
            service_id=service_id,
            defaults={"name": name, "active": True, "send_welcome_email": True, "provision_workspace": True},
        )
    return purged_tasks, purged_retries


def cumulative_ms(stats, parts: list[tuple[str, str, str]], per: int) -> dict[str, float]:
    """From cProfile stats: the cumulative ms per unit of each (label, file part, function) found."""
    found = {}
    for label, file_part, function in parts:
        total = sum(
            ct
            for (filename, _, name), (_, _, _, ct, _) in stats.stats.items()
            if file_part in filename and name == function
        )
        if total:
            found[label] = 1000 * total / per
    return found


# --- child processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Children:
    """Subprocesses in their own process groups, logged to files, always stopped on exit."""

    def __init__(self, prefix: str):
        self.dir = Path(tempfile.mkdtemp(prefix=prefix))
        self.procs: list[tuple[str, subprocess.Popen, Path]] = []

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop_all()

    def spawn(self, name: str, args: list[str], env: dict) -> subprocess.Popen:
        logfile = self.dir / f"{name}.log"
        with open(logfile, "wb") as out:
            proc = subprocess.Popen(
                args,
                env=env,
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: we stop it (and its children) by its pid
            )
        self.procs.append((name, proc, logfile))
        return proc

    def manage(self, name: str, args: list[str], env: dict) -> subprocess.Popen:
        return self.spawn(name, [sys.executable, str(REPO / "manage.py"), *args], env)

    def sandbox(self, name: str, port: int, env: dict) -> subprocess.Popen:
        """The fake Stripe API: a DEBUG-only app (stripe_sandbox is not installed in production
        settings), so it runs with DJANGO_DEBUG=1 whatever mode the app under test uses."""
        return self.manage(name, ["stripe_sandbox", "--port", str(port)], {**env, **DEBUG_ENV})

    def check_alive(self) -> None:
        for name, proc, logfile in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail(logfile)}")

    def stop(self, proc: subprocess.Popen, timeout: float = 10) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        # Workers of a group leader that already exited (e.g. qcluster's) go too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    def stop_all(self) -> None:
        for _name, proc, _logfile in reversed(self.procs):
            self.stop(proc)

    def log_of(self, name: str) -> Path:
        return next(logfile for n, _proc, logfile in self.procs if n == name)


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def wait_http(url: str, children: Children, timeout: float = 30) -> None:
    """Poll until `url` answers below 500 (failing fast if a child died)."""
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children.check_alive()
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def gunicorn_args(port: int, workers: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "onboarding_project.wsgi",
        "--workers",
        str(workers),
        "--bind",
        f"127.0.0.1:{port}",
        "--chdir",
        str(REPO),
        "--log-level",
        "warning",
    ]


# --- statistics -----------------------------------------------------------------------------------


def percentile(values, pct: float) -> float | None:
    """Nearest-rank percentile (None for no values).

    Kept by hand: statistics.quantiles only interpolates, and a nearest rank (a latency that was
    observed) keeps these figures comparable with earlier bench results.
    """
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def rounded(value, digits: int = 3):
    return None if value is None else round(value, digits)


class CpuSampler:
    """Whole-machine CPU busy fraction between start() and stop(), from /proc/stat (Linux)."""

    def __init__(self):
        self.begin = None

    @staticmethod
    def _read():
        try:
            fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        except (OSError, ValueError):
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields), idle

    def start(self):
        self.begin = self._read()

    def stop(self) -> float | None:
        end = self._read()
        if not self.begin or not end or end[0] == self.begin[0]:
            return None
        total, idle = end[0] - self.begin[0], end[1] - self.begin[1]
        return 1 - idle / total


def process_cpu_seconds(pids) -> dict[int, float]:
    """utime + stime of each pid, in seconds, from /proc (missing processes are skipped)."""
    ticks = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        seconds[pid] = (int(fields[11]) + int(fields[12])) / ticks
    return seconds


def descendant_pids(parent: int) -> list[int]:
    """The parent and every process below it (e.g. qcluster, its sentinel and its workers)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, added = {parent}, True
    while added:
        below = {pid for pid, ppid in parents.items() if ppid in tree} - tree
        tree |= below
        added = bool(below)
    return sorted(tree)


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two snapshots (processes new in `after` count from zero)."""
    return sum(value - before.get(pid, 0.0) for pid, value in after.items())


def wsgi_post(app, path: str, body: str, signature: str) -> int:
    """POST through Django's real WSGI handler (as gunicorn calls it, request signals included)."""
    data = body.encode()
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "application/json; charset=utf-8",
        "CONTENT_LENGTH": str(len(data)),
        "HTTP_STRIPE_SIGNATURE": signature,
        "HTTP_USER_AGENT": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        "wsgi.input": io.BytesIO(data),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
    }
    status = []
    response = app(environ, lambda line, headers, exc_info=None: status.append(line))
    try:
        b"".join(response)
    finally:
        response.close()  # sends request_finished, like a WSGI server
    return int(status[0].split()[0])


def sandbox_paid_checkout(
    sandbox_url: str, webhook_url: str, checkout: dict, email: str, timeout: float
) -> dict:
    """One paid checkout in the sandbox, which delivers its signed webhook(s) before answering.
    Returns the sandbox's answer (session, events, deliveries); raises requests' errors."""
    import requests

    response = requests.post(
        f"{sandbox_url}/_sandbox/checkouts",
        json={**checkout, "email": email, "webhook_url": webhook_url, "webhook_secret": WEBHOOK_SECRET},
        timeout=timeout,
    )
    response.raise_for_status()
    return response.json()


def deliveries_ok(data: dict) -> bool:
    """Every webhook delivery of a sandbox checkout was answered 2xx."""
    statuses = [d["status"] for d in data["deliveries"]]
    return bool(statuses) and all(s is not None and 200 <= s < 300 for s in statuses)
