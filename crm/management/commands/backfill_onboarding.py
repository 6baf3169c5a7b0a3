"""Onboard the paid Checkout Sessions in Stripe's history, through the webhook path's service."""

import json
import time
from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError, OutputWrapper
from tqdm import tqdm

from crm.backfill import BackfillBusy, BackfillError, BackfillProgress, default_rate, onboarding_backfill


def utc_instant(value: str) -> datetime:
    """An ISO date or date-time; naive values are UTC."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"Not an ISO date: {value!r} (e.g. 2024-01-31)") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


class ProgressDisplay:
    """tqdm's bar on stderr when it is a terminal (and not --json); plain lines, one per page, otherwise.

    `stream` is the command's OutputWrapper for the plain lines (so call_command(stdout=…) captures
    them); `bar_stream` the one tqdm draws on.
    """

    BAR_FORMAT = "{percentage:3.0f}%|{bar:30}| [{elapsed}<{remaining}{postfix}]"

    def __init__(self, stream: OutputWrapper, *, bar_stream: OutputWrapper | None, dry_run: bool):
        self.stream = stream
        self.dry_run = dry_run
        self.started = time.monotonic()
        self.pages = 0
        # tqdm writes "\r…" itself: it gets the wrapped stream (an OutputWrapper would add newlines).
        # The bar's unit is the share of the time window walked: Stripe gives no total count.
        self.bar = tqdm(
            total=100,
            file=getattr(bar_stream, "_out", bar_stream),
            disable=bar_stream is None or not bar_stream.isatty(),
            bar_format=self.BAR_FORMAT,
            mininterval=0.1,
            dynamic_ncols=True,
        )

    def __call__(self, event: BackfillProgress) -> None:
        if self.dry_run and event.outcome not in ("already_onboarded", "other_service"):
            self.line(f"would {self.verb(event.outcome)}: {event.session_id} {event.email}")
        rate = event.seen / max(0.001, time.monotonic() - self.started)
        text = f"{event.seen} sessions, {event.pages} pages, {rate:.0f}/s"
        if not self.bar.disable:
            self.bar.set_postfix_str(text, refresh=False)
            self.bar.update(event.fraction * 100 - self.bar.n)
        elif event.pages != self.pages:
            self.pages = event.pages
            self.line(f"page {event.pages}: {text}, {event.fraction:.0%} of the window")

    @staticmethod
    def verb(outcome: str) -> str:
        if outcome.startswith("held:"):
            return f"hold ({outcome.removeprefix('held:')})"
        return {
            "onboarded_now": "onboard",
            "awaiting_payment": "record as awaiting payment",
            "payment_failed": "record as payment failed",
            "failed": "fail",
        }.get(outcome, outcome)

    def line(self, text: str) -> None:
        self.bar.clear()
        self.stream.write(text)
        self.stream.flush()
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


class Command(BaseCommand):
    help = (
        "Onboard complete Checkout Sessions created in [--since, --until) from the Stripe API, through "
        "the same idempotent service as webhooks. Rerun with the same arguments to resume."
    )

    def add_arguments(self, parser):
        parser.add_argument("--since", required=True, type=utc_instant, help="ISO date (UTC), inclusive")
        parser.add_argument("--until", type=utc_instant, help="ISO date (UTC), exclusive; default: now")
        parser.add_argument("--dry-run", action="store_true", help="Print what would change; write nothing")
        parser.add_argument(
            "--no-email", action="store_true", help="Skip welcome emails (staff can send them from the admin)"
        )
        parser.add_argument("--service", default="", help="Only sessions with this metadata.serviceId")
        parser.add_argument(
            "--rate",
            type=float,
            help="Stripe requests per second (default 20 in test mode, 80 live; 0: none)",
        )
        parser.add_argument("--json", action="store_true", help="Print the summary as one JSON object")

    def handle(self, *args, since, until, dry_run, no_email, service, rate, **options):
        as_json = options["json"]
        # With --json, stdout carries only the JSON: plain progress lines go to stderr, and no bar.
        display = ProgressDisplay(
            self.stderr if as_json else self.stdout,
            bar_stream=None if as_json else self.stderr,
            dry_run=dry_run,
        )
        rate = default_rate() if rate is None else rate
        try:
            summary = onboarding_backfill(
                since=since,
                until=until,
                service_ref=service.strip(),
                no_email=no_email,
                dry_run=dry_run,
                rate=rate,
                progress=display,
            )
        except KeyboardInterrupt:
            display.close()
            raise CommandError(
                "Interrupted. The checkpoint is saved: run the same command again to continue.",
                returncode=130,
            ) from None
        except BackfillBusy as exc:
            display.close()
            raise CommandError(str(exc)) from exc
        except BackfillError as exc:
            display.close()
            run = f" (run #{exc.run.pk})" if exc.run is not None and exc.run.pk else ""
            raise CommandError(f"Backfill stopped{run}: {exc}") from exc
        display.close()
        if as_json:
            self.stdout.write(self.to_json(summary.as_dict()))
        else:
            self.stdout.write(self.to_text(summary.as_dict(), rate=rate))

    @staticmethod
    def to_json(summary: dict) -> str:
        return json.dumps(summary, sort_keys=True)

    @staticmethod
    def to_text(summary: dict, *, rate: float) -> str:
        counts = summary["counts"]
        held = counts["held"]
        title = "Dry run (nothing written)" if summary["dry_run"] else f"Backfill run #{summary['run_id']}"
        lines = [
            f"{title}: {summary['status']}, window {summary['since']} .. {summary['window_end']}",
            f"  resumed after:        {summary['resumed_after']}" if summary["resumed_after"] else "",
            f"  sessions seen:        {counts['seen']}"
            + (f" (+{counts['other_service']} of other services)" if counts["other_service"] else ""),
            f"  already onboarded:    {counts['already_onboarded']}",
            f"  onboarded now:        {counts['onboarded_now']}",
            f"  held for review:      {sum(held.values())}",
            *(f"    {reason}: {n}" for reason, n in sorted(held.items())),
            f"  awaiting payment:     {counts['awaiting_payment']}",
            f"  payment failed:       {counts['payment_failed']}",
            f"  rejected earlier:     {counts['rejected']}" if counts["rejected"] else "",
            f"  failed (errors):      {counts['failed']}",
            *(f"    {session_id}" for session_id in summary["failed_sessions"]),
            "  ledger (recorded once; already known ones unchanged): "
            + ", ".join(f"{kind} {n}" for kind, n in counts.get("ledger", {}).items()),
            f"  Stripe: {summary['pages']} pages, {summary['stripe_requests']} list requests"
            f" (limit {rate:g}/s), {summary['seconds']:.1f} s",
        ]
        return "\n".join(line for line in lines if line)
