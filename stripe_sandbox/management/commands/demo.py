"""`make demo`: the whole pipeline offline, from nothing, then keep serving until Ctrl-C."""

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from crm.models import Onboarding, Service
from stripe_events.models import StripeWebhookJob
from stripe_events.webhook_endpoints import webhook_endpoint_register
from stripe_sandbox.checkout_client import SandboxCheckoutError, failed_deliveries, sandbox_checkout_request
from stripe_sandbox.demo_report import demo_report

DEMO_SECRET = "whsec_demo_offline_sandbox_secret"  # noqa: S105 - the offline demo's own endpoint
DEMO_SERVICE = ("website-care", "Website Care Plan")


def stop_on_signal(signum, frame) -> None:
    raise KeyboardInterrupt


def signal_group(child: subprocess.Popen, signum: int) -> None:
    """Signal a child started in its own process group, and the processes it started."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signum)


def ignore_signal(signum, frame) -> None:
    """While stopping; unlike SIG_IGN, a signal already pending does not raise OSError."""


class Command(BaseCommand):
    help = "Run the offline demo: Stripe sandbox, worker, web server and one paid checkout."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--sandbox-port", type=int, default=12111)
        parser.add_argument("--email", default="ada@example.com")
        parser.add_argument("--name", default="Ada Lovelace")
        parser.add_argument("--amount", type=int, default=49900)
        parser.add_argument("--currency", default="usd")
        parser.add_argument("--no-wait", action="store_true", help="Exit after the report instead of serving")

    def handle(self, *args, **opts):
        site_url = f"http://127.0.0.1:{opts['port']}"
        sandbox_url = f"http://127.0.0.1:{opts['sandbox_port']}"
        # This process prints links too (the report's set-password link): same base as the server.
        settings.SITE_URL = site_url
        env = {
            **os.environ,
            "STRIPE_API_HOST": sandbox_url,
            "SITE_URL": site_url,
            "DJANGO_DEBUG": "1",
            "EMAIL_FILE_PATH": settings.EMAIL_FILE_PATH,
        }
        self.step("Migrating the database")
        call_command("migrate", verbosity=0)
        password = self.admin_user_ensure()
        Service.objects.get_or_create(service_id=DEMO_SERVICE[0], defaults={"name": DEMO_SERVICE[1]})

        children = []
        # Stop the sandbox, worker and web server on Ctrl-C (even if SIGINT was inherited as
        # ignored, as in a background job), on SIGTERM, and when the terminal closes (SIGHUP: the
        # children, in their own sessions, would not get it).
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, stop_on_signal)
        try:
            self.step(f"Starting the Stripe sandbox on {sandbox_url}")
            children.append(self.spawn(["stripe_sandbox", "--port", str(opts["sandbox_port"])], env))
            self.wait_for(f"{sandbox_url}/_sandbox/health", children[-1])
            self.step("Starting the django-q2 worker (manage.py qcluster)")
            children.append(self.spawn(["qcluster"], env))
            self.step(f"Starting the web server on {site_url}")
            children.append(
                self.spawn(["runserver", "--noreload", "--skip-checks", f"127.0.0.1:{opts['port']}"], env)
            )
            self.wait_for(f"{site_url}/admin/login/", children[-1])

            endpoint, _ = webhook_endpoint_register(secret=DEMO_SECRET, base_url=site_url)
            self.step(f"Webhook endpoint: {endpoint.url}")
            self.step(f"Paying through Stripe Checkout as {opts['email']}")
            try:
                checkout = sandbox_checkout_request(
                    sandbox_url=sandbox_url,
                    email=opts["email"],
                    name=opts["name"],
                    service_id=DEMO_SERVICE[0],
                    amount=opts["amount"],
                    currency=opts["currency"],
                    webhook_url=endpoint.url,
                    webhook_secret=DEMO_SECRET,
                )
            except SandboxCheckoutError as error:
                raise CommandError(str(error)) from error
            for delivery in checkout["deliveries"]:
                self.stdout.write(f"Stripe delivered {delivery['event']}: HTTP {delivery['status']}")
            if failed_deliveries(checkout):
                raise CommandError(f"The webhook was not accepted: {checkout['deliveries']}")
            # This run's checkout only: the demo database keeps earlier runs' data.
            session_id, event_ids = checkout["session"]["id"], checkout["events"]
            self.wait_until_onboarded(session_id=session_id, event_ids=event_ids)
            self.stdout.write(
                demo_report(
                    site_url=site_url, admin_password=password, session_id=session_id, event_ids=event_ids
                )
            )
            if not opts["no_wait"]:
                self.stdout.write(self.style.SUCCESS("Serving. Press Ctrl-C to stop."))
                while all(child.poll() is None for child in children):
                    time.sleep(1)
                raise CommandError("A demo process exited; see its output above.")
        except KeyboardInterrupt:
            self.stdout.write("\nStopping.")
        finally:
            # Stopping takes a few seconds; a second Ctrl-C must not leave the children running.
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(signum, ignore_signal)
            # SIGTERM to each child's main process only: qcluster stops its own workers, and hangs
            # if they are signalled too.
            for child in children:
                child.terminate()
            for child in children:
                try:
                    child.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    signal_group(child, signal.SIGKILL)  # with its worker processes, none orphaned

    def step(self, text: str) -> None:
        self.stdout.write(self.style.MIGRATE_HEADING(f"==> {text}"))

    def spawn(self, args: list[str], env: dict) -> subprocess.Popen:
        manage = Path(settings.BASE_DIR) / "manage.py"
        # Its own process group: Ctrl-C reaches only this command, which stops each child once
        # (a qcluster whose workers get the terminal's signal too can hang while stopping).
        return subprocess.Popen([sys.executable, str(manage), *args], env=env, start_new_session=True)

    def wait_for(self, url: str, child: subprocess.Popen, timeout: float = 30) -> None:
        """Until `url` answers; at once if the child that should serve it exits (e.g. port in use)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if child.poll() is not None:
                raise CommandError(f"{' '.join(child.args[2:])} exited with {child.returncode}; see above")
            try:
                if requests.get(url, timeout=2).status_code < 500:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise CommandError(f"{url} did not answer within {timeout:.0f} s")

    def admin_user_ensure(self) -> str:
        """A superuser `admin` with a fresh random password for this demo run."""
        password = secrets.token_urlsafe(12)
        user, _ = get_user_model().objects.get_or_create(
            username="admin", defaults={"email": "admin@localhost", "is_staff": True, "is_superuser": True}
        )
        user.set_password(password)
        user.save()
        return password

    def wait_until_onboarded(self, *, session_id: str, event_ids: list[str], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        self.step("Waiting for the worker to process the event and onboard the client")
        settled = {Onboarding.Status.ONBOARDED, Onboarding.Status.HELD, Onboarding.Status.FAILED}
        while time.monotonic() < deadline:
            processed = StripeWebhookJob.objects.filter(
                event_id__in=event_ids, status=StripeWebhookJob.Status.SUCCEEDED
            ).count()
            onboarding = Onboarding.objects.filter(checkout_session_id=session_id).first()
            if processed == len(event_ids) and onboarding and onboarding.status in settled:
                return
            time.sleep(0.5)
        raise CommandError(f"Not onboarded within {timeout:.0f} s; see the admin for the job's error.")
